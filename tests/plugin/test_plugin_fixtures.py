"""The fixtures other projects adopt: services in-process and on a socket, worlds, exploration."""

from __future__ import annotations

import os
import pathlib

import pytest

PLANTED = (pathlib.Path(__file__).parent.parent / "explore" / "planted.py").read_text()


def test_fake_services_fixture_is_fresh_per_test(pytester):
    pytester.makepyfile(
        """
        import httpx
        from fake_services import ServicesTransport
        from fake_services.clients import PaymentsClient

        def _charge(services):
            http = httpx.Client(transport=ServicesTransport(services), base_url="http://fake-services")
            PaymentsClient(http=http).charge(customer_id=1, payment_method_id=1, amount_cents=100)

        def test_one(fake_services):
            _charge(fake_services)
            assert len(fake_services.payments.records()) == 1

        def test_two(fake_services):
            assert fake_services.payments.records() == []
        """
    )
    pytester.runpytest_subprocess("-p", "no:randomly").assert_outcomes(passed=2)


def test_services_on_a_socket_are_reset_between_tests(pytester):
    pytester.makepyfile(
        """
        import httpx

        def test_one(fake_services_url):
            body = {"customer_id": 1, "payment_method_id": 1, "amount_cents": 100, "metadata": {}}
            assert httpx.post(fake_services_url + "/payments/charge", json=body).status_code == 201

        def test_two(fake_services_url):
            journal = httpx.get(fake_services_url + "/journal").json()
            entries = journal["entries"] if isinstance(journal, dict) else journal
            assert [e for e in entries if e["operation"] == "charge"] == []
        """
    )
    pytester.runpytest_subprocess().assert_outcomes(passed=2)


def test_explore_fixture_reports_the_planted_bug_and_passes_the_fix(pytester):
    pytester.makepyfile(planted=PLANTED)
    pytester.makepyfile(
        test_jobs="""
        import planted

        def test_fixed(harness):
            harness.explore(planted.SAFE).assert_safe()

        def test_naive(harness):
            harness.explore(planted.NAIVE).assert_safe()
        """
    )
    result = pytester.runpytest_subprocess()
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*planted.naive on sim (seed 0): UNSAFE*", "*payments.charge*"])


def test_a_scheduled_fault_that_never_fired_fails_at_teardown(pytester):
    pytester.makepyfile(
        """
        from fake_services import FaultRule

        def test_forgot_to_call(harness):
            world = harness.world()
            harness.schedule(world, "payments", FaultRule(fault="503", phase="before", next=1))
        """
    )
    result = pytester.runpytest_subprocess()
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(["*never fired*payments*"])


def test_a_rule_that_fired_passes_and_only_the_one_that_did_not_is_named(pytester):
    pytester.makepyfile(
        """
        import pytest
        from fake_services import FaultRule
        from fake_services.clients import PaymentsClient, TransientServiceError

        def test_one_struck_one_waited(harness):
            world = harness.world()
            harness.schedule(world, "payments", FaultRule(fault="503", next=1))
            harness.schedule(world, "payments", FaultRule(fault="429", nth=3))
            with pytest.raises(TransientServiceError):
                PaymentsClient("http://fake-services", http=world.http).charge(
                    customer_id=1, payment_method_id=1, amount_cents=100)

        def test_both_struck(harness):
            world = harness.world()
            harness.schedule(world, "payments", FaultRule(fault="503", next=1))
            harness.schedule(world, "payments", FaultRule(fault="429", nth=2))
            client = PaymentsClient("http://fake-services", http=world.http)
            for _ in range(2):
                with pytest.raises(TransientServiceError):
                    client.charge(customer_id=1, payment_method_id=1, amount_cents=100)
        """
    )
    result = pytester.runpytest_subprocess()
    result.assert_outcomes(passed=2, errors=1)
    result.stdout.fnmatch_lines(["*never fired*payments rule payments-2 (fault='429'*nth=3*saw 1 calls)*"])
    result.stdout.no_fnmatch_line("*payments-1*")


def test_service_handles_toggle_the_socket_services_and_check_their_rules(pytester):
    pytester.makepyfile(
        """
        import httpx

        BODY = {"customer_id": 1, "payment_method_id": 1, "amount_cents": 100, "metadata": {}}

        def test_crash_then_recover(fake_services_handle, fake_services_url):
            fake_services_handle.payments.behave(crash=True)
            assert httpx.post(fake_services_url + "/payments/charge", json=BODY).status_code >= 500
            fake_services_handle.payments.behave(crash=False)
            assert httpx.post(fake_services_url + "/payments/charge", json=BODY).status_code == 201
            assert len(fake_services_handle.payments.effects("charge")) == 1

        def test_behaviours_were_reset(fake_services_handle):
            assert fake_services_handle.payments.behaviour()["crash"] is False

        def test_unfired_rule(fake_services_handle):
            fake_services_handle.email.schedule({"fault": "503", "next": 1})
        """
    )
    result = pytester.runpytest_subprocess()
    result.assert_outcomes(passed=3, errors=1)
    result.stdout.fnmatch_lines(["*ERROR at teardown of test_unfired_rule*", "*never fired*email rule email-1*"])


def test_explore_takes_a_bare_job_with_its_args_and_invariants(pytester):
    pytester.makepyfile(planted=PLANTED)
    pytester.makepyfile(
        test_jobs="""
        import pytest
        import planted
        from harness.invariants import exactly_once

        ONE_CHARGE = exactly_once("payments", "charge", key="order_id")

        def test_naive(harness):
            report = harness.explore(planted.charge_then_email, [7], configure=planted.configure,
                                     invariants=[ONE_CHARGE], targets=["planted"])
            assert report.found(text="charge"), report.to_text()
            assert "Explorer(<scenario planted.charge_then_email>, engine='sim', seed=0).replay(" in report.to_text()
            report.assert_safe()

        def test_fixed(harness):
            harness.explore(planted.charge_then_email_safely, [7], configure=planted.configure,
                            invariants=[ONE_CHARGE], targets=["planted"]).assert_safe()

        def test_a_scenario_with_extra_args_is_refused(harness):
            with pytest.raises(pytest.UsageError, match="carries its own args"):
                harness.explore(planted.SAFE, [8])

        def test_routing_matrix(harness):
            report = harness.routing(planted.SAFE)
            rows = {row["fault"]: row for row in report.routing}
            assert set(rows) >= {"transient 503", "permanent", "exhausted"}, rows
            assert rows["transient 503"]["ok"] and rows["transient 503"]["retried"], rows
            # planted jobs install no error handler: the permanent failure reaches nobody, and it shows
            assert not rows["permanent"]["ok"] and rows["permanent"]["reported"] == 0, rows
            assert not report.safe
        """
    )
    result = pytester.runpytest_subprocess()
    result.assert_outcomes(passed=3, failed=1)
    result.stdout.fnmatch_lines(["*planted.charge_then_email on sim (seed 0): UNSAFE*"])


def test_the_redis_url_option_is_read_and_a_silent_redis_skips_with_the_reason(pytester):
    pytester.makepyfile(
        """
        def test_url(harness_redis_url):
            assert harness_redis_url == "redis://127.0.0.1:1/0"
        """
    )
    result = pytester.runpytest_subprocess("--harness-redis-url", "redis://127.0.0.1:1/0", "-rs")
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(["*no Redis answers at redis://127.0.0.1:1/0*"])
    refused = pytester.runpytest_subprocess("--harness-redis-url", "localhost:6379")
    assert refused.ret == pytest.ExitCode.USAGE_ERROR
    refused.stderr.fnmatch_lines(["*--harness-redis-url='localhost:6379': give a redis:// URL*"])
    refused = pytester.runpytest_subprocess("--harness-services-url", "localhost:8000")
    assert refused.ret == pytest.ExitCode.USAGE_ERROR
    refused.stderr.fnmatch_lines(["*--harness-services-url='localhost:8000': give an http:// URL*"])


@pytest.mark.redis
@pytest.mark.slow
def test_real_worker_on_the_option_s_redis_is_killed_and_closed(pytester):
    from harness.engines.workers import redis_available

    url = "redis://127.0.0.1:6379/8"
    if not redis_available(url):
        if os.environ.get("CI"):
            raise RuntimeError(f"Redis is not reachable at {url} and CI is set")
        pytest.skip(f"no Redis at {url}")
    pytester.makepyfile(
        """
        def test_kill(harness, harness_redis_url):
            worker = harness.real_worker("rq", retries=1)
            assert worker.redis_url == harness_redis_url
            report = worker.kill_mid_job()
            assert report.signal == "SIGKILL" and report.outcome == "recovered" and report.runs == 2
        """
    )
    pytester.runpytest_subprocess("--harness-redis-url", url).assert_outcomes(passed=1)


def test_rules_on_the_in_process_fixtures_that_never_fired_fail_too(pytester):
    pytester.makepyfile(
        """
        from fake_services import FaultRule

        def test_services_unfired(fake_services):
            fake_services.schedule("chat", FaultRule(fault="503", next=1))

        def test_world_unfired(harness_world):
            harness_world.services.schedule("fulfillment", FaultRule(fault="timeout", next=1))

        def test_cleared_is_fine(fake_services):
            fake_services.schedule("chat", FaultRule(fault="503", next=1))
            fake_services.clear_faults("chat")
        """
    )
    result = pytester.runpytest_subprocess()
    result.assert_outcomes(passed=3, errors=2)
    result.stdout.fnmatch_lines(["*never fired*chat rule chat-1*", "*never fired*fulfillment rule fulfillment-1*"])


def test_a_long_exploration_shows_progress_lines_in_pytest_output(pytester, monkeypatch):
    pytester.makepyfile(planted=PLANTED)
    pytester.makepyfile(
        test_jobs="""
        import planted

        def test_fixed(harness):
            harness.explore(planted.SAFE, depth=2).assert_safe()
        """
    )
    monkeypatch.setenv("HARNESS_PROGRESS_EVERY", "0")
    result = pytester.runpytest_subprocess("-q")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        ["harness: planted.safe: depth 1, 1 of * plans (*%)", "harness: planted.safe: depth 2, *"]
    )
    monkeypatch.setenv("HARNESS_PROGRESS_EVERY", "600")
    quiet = pytester.runpytest_subprocess("-q")
    quiet.assert_outcomes(passed=1)
    assert "harness: planted.safe" not in quiet.stdout.str()


def test_a_services_url_where_nothing_answers_fails_with_one_sentence(pytester):
    pytester.makepyfile(
        """
        def test_uses_services(fake_services_url):
            pass
        """
    )
    result = pytester.runpytest_subprocess("--harness-services-url", "http://127.0.0.1:9")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*--harness-services-url http://127.0.0.1:9: the fake services do not answer*"])
    assert "Traceback" not in result.stdout.str() and "ConnectError(" not in result.stdout.str()
