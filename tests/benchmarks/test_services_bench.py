"""The services benchmark's comparison with the seed's server: wrk's report read right, the seed found or
refused with a reason, and a Sinatra app started and loaded the way the seed would be."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from bench import bench_services

WRK_REPORT = """\
Running 3s test @ http://127.0.0.1:4567/payments/charge
  2 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency    84.00ms  104.11ms 474.78ms   79.49%
    Req/Sec     1.26k   592.04     2.84k    64.65%
  Latency Distribution
     50%    8.94ms
     75%  162.39ms
     90%  249.69ms
     99%  {p99}
  24975 requests in 10.02s, 5.37MB read
{extra}Requests/sec:   2493.17
Transfer/sec:    549.18KB
"""


@pytest.mark.parametrize(("shown", "seconds"), [("345.40ms", 0.3454), ("812.00us", 0.000812), ("1.02s", 1.02)])
def test_wrk_rate_and_p99_are_read_in_every_unit(shown, seconds):
    rate, p99 = bench_services.parse_wrk(WRK_REPORT.format(p99=shown, extra=""))
    assert rate == 2493.17
    assert p99 == pytest.approx(seconds)


@pytest.mark.parametrize("extra", ["  Non-2xx or 3xx responses: 12\n",
                                   "  Socket errors: connect 0, read 3, write 0, timeout 0\n"])
def test_a_run_with_failed_charges_is_refused_not_counted(extra):
    with pytest.raises(RuntimeError, match=r"not answered|Socket errors"):
        bench_services.parse_wrk(WRK_REPORT.format(p99="9.00ms", extra=extra))


def test_a_run_with_no_socket_error_is_counted():
    report = WRK_REPORT.format(p99="9.00ms", extra="  Socket errors: connect 0, read 0, write 0, timeout 0\n")
    assert bench_services.parse_wrk(report)[0] == 2493.17


def test_a_report_without_figures_is_an_error():
    with pytest.raises(RuntimeError, match="no rate"):
        bench_services.parse_wrk("unable to connect to 127.0.0.1:1 Connection refused\n")


def test_without_the_setting_the_seed_is_skipped_with_the_reason(monkeypatch, capsys):
    monkeypatch.delenv(bench_services.SEED_ENV, raising=False)
    assert bench_services.seed_missing() == f"{bench_services.SEED_ENV} is not set"
    assert bench_services.vs_seed(quick=True) == {}
    assert "services.vs_seed_ratio not measured" in capsys.readouterr().err


def test_a_setting_that_names_no_seed_is_an_error_not_a_skip(monkeypatch, tmp_path):
    monkeypatch.setenv(bench_services.SEED_ENV, str(tmp_path))
    with pytest.raises(RuntimeError, match=r"holds no app/fake_api_server\.rb"):
        bench_services.seed_missing()


def _sinatra_loads() -> bool:
    if shutil.which("ruby") is None:
        return False
    return subprocess.run(["ruby", "-e", 'require "sinatra/base"'], capture_output=True).returncode == 0


# A stand-in with the seed's shape: a checkout whose app/fake_api_server.rb is a classic Sinatra app
# reading BINDING and PORT, answering the status page and a charge.
STAND_IN = """\
require "sinatra"
require "json"
set :bind, ENV.fetch("BINDING")
set :port, ENV.fetch("PORT")
set :logging, false
get "/payments/status" do
  "{}"
end
post "/payments/charge" do
  JSON.parse(request.body.read)
  [201, {"Content-Type" => "application/json"}, [{status: "success", charge_id: "ch_1"}.to_json]]
end
"""


@pytest.mark.slow
@pytest.mark.skipif(not _sinatra_loads(), reason="needs ruby with Sinatra (Debian: ruby, ruby-sinatra)")
def test_a_seed_shaped_sinatra_app_is_started_and_loaded_beside_ours(monkeypatch, tmp_path):
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "fake_api_server.rb").write_text(STAND_IN)
    monkeypatch.setenv(bench_services.SEED_ENV, str(tmp_path))
    figures = bench_services.vs_seed(quick=True)
    ratio = figures["services.vs_seed_ratio"]
    assert ratio["value"] > 0
    assert "req/s" in ratio["note"] and "Sinatra" in ratio["note"]
    assert figures["services.vs_seed_p99_ratio"]["value"] > 0
