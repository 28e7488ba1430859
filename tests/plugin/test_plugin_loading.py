"""The pytest plugin loads light, validates its options and markers, and its fixtures work."""

from __future__ import annotations

import subprocess
import sys
import textwrap


def test_loading_the_plugin_imports_no_engine_or_web_framework():
    code = textwrap.dedent(
        """
        import sys
        import harness.pytest_plugin
        heavy = {"dramatiq", "rq", "celery", "starlette", "uvicorn", "hypothesis", "httpx"}
        loaded = sorted(heavy & {name.split(".")[0] for name in sys.modules})
        print(",".join(loaded))
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"loading the plugin imported {out.stdout.strip()}"


def test_options_are_in_the_harness_group(pytester):
    result = pytester.runpytest_subprocess("--help")
    text = result.stdout.str()
    for option in ("--harness-engine", "--harness-seed", "--harness-services-url", "--harness-redis-url"):
        assert option in text


def test_an_unknown_engine_is_refused_with_the_choices(pytester):
    pytester.makepyfile("def test_nothing():\n    pass\n")
    result = pytester.runpytest_subprocess("--harness-engine", "sidekiq")
    assert result.ret != 0
    result.stderr.fnmatch_lines(["*invalid choice*sidekiq*"])


def test_a_misspelt_marker_argument_fails_with_a_clear_message(pytester):
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.harness(engnie="rq")
        def test_marked(harness):
            pass
        """
    )
    result = pytester.runpytest_subprocess()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*engnie*known arguments: engine, seed, depth, examples*"])


def test_marker_and_option_choose_engine_and_seed(pytester):
    pytester.makepyfile(
        """
        import pytest

        def test_default(harness_engine_name, harness_seed):
            assert (harness_engine_name, harness_seed) == ("sim", 9)

        @pytest.mark.harness(seed=4)
        def test_marked(harness_seed):
            assert harness_seed == 4
        """
    )
    result = pytester.runpytest_subprocess("--harness-seed", "9")
    result.assert_outcomes(passed=2)


def test_the_hypothesis_profiles_load_from_the_command_line(pytester):
    pytester.makepyfile(
        """
        from hypothesis import settings

        def test_profile():
            assert settings.get_current_profile_name() == "harness-ci"
            assert settings().derandomize and settings().deadline is None and settings().database is None
        """
    )
    pytester.runpytest_subprocess("--hypothesis-profile=harness-ci").assert_outcomes(passed=1)


def test_a_conftest_can_load_a_profile_at_import(pytester):
    pytester.makeconftest(
        """
        from hypothesis import settings
        from harness.pytest_plugin import register_hypothesis_profiles

        register_hypothesis_profiles()
        settings.load_profile("harness-dev")
        """
    )
    pytester.makepyfile(
        """
        from hypothesis import settings

        def test_profile():
            assert settings.get_current_profile_name() == "harness-dev" and settings().deadline is None
        """
    )
    pytester.runpytest_subprocess().assert_outcomes(passed=1)
