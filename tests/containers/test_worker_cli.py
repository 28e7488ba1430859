"""The shop worker's command line: bad settings end in one line on stderr and exit 2, before any work."""

from __future__ import annotations

import pytest

from scenarios.shop.worker import main


@pytest.mark.parametrize(
    ("argv", "env", "message"),
    [
        (["--redis-url", "redis://127.0.0.1:1/0"], {}, "no Redis answers at redis://127.0.0.1:1/0"),
        (["stats", "--redis-url", "redis://:secret@127.0.0.1:1/0"], {}, "redis://:***@127.0.0.1:1/0"),
        (["stats"], {"SHOP_RETRY_DELAY_SCALE": "soon"}, "SHOP_RETRY_DELAY_SCALE must be a number, not 'soon'"),
        (["enqueue-order", "--queue-prefix", "a-b"], {}, "the queue prefix may hold letters, digits and _ only"),
        (["work", "--retry-delay-scale", "-1"], {}, "the retry delay scale cannot be negative"),
    ],
)
def test_bad_settings_exit_2_with_a_reason(
    argv: list[str], env: dict[str, str], message: str, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("shop worker: ") and message in err and err.count("\n") == 1, err
    assert "secret" not in err


def test_an_unknown_option_is_refused_not_guessed(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["enqueue-order", "--stag", "naive"])
    assert exited.value.code == 2 and "unrecognized arguments: --stag" in capsys.readouterr().err
