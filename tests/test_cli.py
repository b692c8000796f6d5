"""The CLI: exit codes, Chinese messages, and no traceback ever reaching the user."""

from __future__ import annotations

import subprocess
import sys
import types
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pipeline.cli import STAGES, app
from pipeline.errors import EqmError

runner = CliRunner()


def test_help_lists_every_stage_and_demo_data():
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for name in (*STAGES, "run", "demo-data"):
        assert name in result.output


@pytest.mark.parametrize("command", ["ingest", "run", "report"])
def test_missing_params_is_a_clear_error_not_a_traceback(tmp_path: Path, command: str):
    result = runner.invoke(app, [command, "--root", str(tmp_path)])
    assert result.exit_code == 1
    assert "找不到参数文件" in result.output and f"eqm init {tmp_path}" in result.output.replace(
        "\n", ""
    )
    assert "Traceback" not in result.output


def _fake_stage(monkeypatch, name: str, exc: BaseException | None, calls: list[str]):
    def run(ctx):
        calls.append(name)
        if exc is not None:
            raise exc

    monkeypatch.setitem(sys.modules, f"pipeline.{name}", types.SimpleNamespace(run=run))


def test_user_error_exits_1_and_stops_the_run(monkeypatch, project_root: Path):
    calls: list[str] = []
    _fake_stage(monkeypatch, "ingest", None, calls)
    _fake_stage(
        monkeypatch,
        "validate",
        EqmError("缺少必需列「学生权重（weight）」", file="students/a.csv"),
        calls,
    )
    _fake_stage(monkeypatch, "indicators", None, calls)
    result = runner.invoke(app, ["run", "--root", str(project_root), "--quiet"])
    assert result.exit_code == 1
    assert calls == ["ingest", "validate"]
    assert "文件 students/a.csv" in result.output and "学生权重" in result.output


def test_internal_error_exits_2_with_log_and_no_traceback(monkeypatch, project_root: Path):
    _fake_stage(monkeypatch, "indicators", ZeroDivisionError("division by zero"), [])
    result = runner.invoke(app, ["indicators", "--root", str(project_root)])
    assert result.exit_code == 2
    assert "内部错误" in result.output and "Traceback" not in result.output
    log = (project_root / "data" / "eqm.log").read_text(encoding="utf-8")
    assert "Traceback" in log and "ZeroDivisionError" in log


def test_python_dash_m_entry_point_works():
    done = subprocess.run(
        [sys.executable, "-m", "pipeline", "--help"], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0 and "demo-data" in done.stdout
