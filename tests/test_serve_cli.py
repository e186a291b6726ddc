"""``valuechain serve`` refuses unsafe or impossible setups before it loads anything."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from valuechain.cli import app


@pytest.fixture()
def runner(monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.delenv("VALUECHAIN_API_KEYS", raising=False)
    monkeypatch.delenv("VALUECHAIN_API_KEYS_FILE", raising=False)
    return CliRunner()


def test_serve_without_an_api_key_exits_2(runner: CliRunner, tmp_path: Path) -> None:
    res = runner.invoke(app, ["serve", "--spec", str(tmp_path)])
    assert res.exit_code == 2
    assert "VALUECHAIN_API_KEYS" in res.output and "Traceback" not in res.output


def test_several_workers_need_redis(runner: CliRunner, tmp_path: Path) -> None:
    res = runner.invoke(app, ["serve", "--spec", str(tmp_path), "--workers", "2"],
                        env={"VALUECHAIN_API_KEYS": "k"})
    assert res.exit_code == 2 and "--state" in res.output and "redis://" in res.output


def test_unknown_state_and_missing_key_file(runner: CliRunner, tmp_path: Path) -> None:
    res = runner.invoke(app, ["serve", "--spec", str(tmp_path), "--api-keys-file",
                              str(tmp_path / "nope.txt")])
    assert res.exit_code == 2 and "nope.txt" in res.output
    from valuechain.errors import SpecError
    from valuechain.serve.service import open_state

    with pytest.raises(SpecError, match="redis://"):
        open_state("postgres://x", "ns")
