"""Every command the README shows is exercised by a test.

Commands are read from the README's ```bash blocks. The cheap ones run here against a fresh round;
the others are run by the tests named in COVERED (which must exist), so a command added to the README
without a test fails this file.
"""

from __future__ import annotations

import ast
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent

# README command -> the test that runs it (file::function); `make` targets are checked with make -n.
COVERED = {
    "dvc repro": "test_round_e2e.py::test_second_repro_does_nothing",
    "dvc params diff": "test_round_e2e.py::test_changing_an_evidence_threshold_reruns_only_evidence_and_report",
    "dvc metrics diff": "test_round_e2e.py::test_changing_an_evidence_threshold_reruns_only_evidence_and_report",
    "dvc add data/raw": "test_round_e2e.py::test_raw_data_kept_out_of_git_and_last_round_rerun_exactly",
    "dvc remote add -d office /path/to/内网共享盘/eqm-dvc":
        "test_round_e2e.py::test_raw_data_kept_out_of_git_and_last_round_rerun_exactly",
    "dvc push": "test_round_e2e.py::test_raw_data_kept_out_of_git_and_last_round_rerun_exactly",
    "git checkout <上一轮的提交或标签>": "test_round_e2e.py::test_raw_data_kept_out_of_git_and_last_round_rerun_exactly",
    "dvc pull": "test_round_e2e.py::test_raw_data_kept_out_of_git_and_last_round_rerun_exactly",
    "source .venv/bin/activate": "test_readme.py::test_venv_activation_puts_eqm_and_dvc_on_path",
    "eqm run --root ../监测2022": "test_readme.py::test_eqm_commands_from_the_readme",
    "python -m pipeline report --quiet": "test_readme.py::test_eqm_commands_from_the_readme",
    "eqm init ../监测2025 --year 2025 --counties 450107,450110,450125,450181":
        "test_collect.py::test_readme_commands_make_a_round_and_its_templates",
    "eqm templates --root ../监测2025": "test_collect.py::test_readme_commands_make_a_round_and_its_templates",
    "eqm check 西乡塘区_学生数据.xlsx --root ../监测2025": "test_check.py::test_readme_command_checks_a_filled_template",
    "make demo": "test_readme.py::test_make_targets_exist_and_do_what_the_readme_says",
    "make test": "test_readme.py::test_make_targets_exist_and_do_what_the_readme_says",
    "make lint": "test_readme.py::test_make_targets_exist_and_do_what_the_readme_says",
    "make bench": "test_readme.py::test_make_targets_exist_and_do_what_the_readme_says",
}  # fmt: skip


def readme_commands() -> list[str]:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S):
        for line in block.splitlines():
            line = line.split("  #")[0].strip()
            if line and not line.startswith("#"):
                commands.append(line)
    return commands


def _test_exists(ref: str) -> bool:
    file, func = ref.split("::")
    tree = ast.parse((REPO / "tests" / file).read_text(encoding="utf-8"))
    return any(isinstance(n, ast.FunctionDef) and n.name == func for n in tree.body)


def test_every_readme_command_is_covered_by_an_existing_test():
    commands = readme_commands()
    assert commands[:2] == ["make demo", "make test"], "the two commands come first"
    missing = [c for c in commands if c not in COVERED]
    assert not missing, f"README commands without a test: {missing}"
    for command in set(commands):
        assert _test_exists(COVERED[command]), COVERED[command]


def _run(args: list[str], cwd: Path, **kw) -> subprocess.CompletedProcess:
    env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", EQM_SALT="readme")
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, check=False, **kw)


@pytest.mark.slow
def test_eqm_commands_from_the_readme(tmp_path: Path):
    """`eqm run --root ../监测2022` from a sibling folder, then `python -m pipeline report --quiet` inside it."""
    round_dir = tmp_path / "监测2022"
    round_dir.mkdir()
    (round_dir / "params.yaml").write_bytes((REPO / "params.yaml").read_bytes())
    here = tmp_path / "工作目录"
    here.mkdir()
    assert _run(["eqm", "demo-data", "--root", "../监测2022", "--quiet"], cwd=here).returncode == 0
    done = _run(shlex.split("eqm run --root ../监测2022"), cwd=here)
    assert done.returncode == 0, done.stderr[-3000:]
    assert (round_dir / "reports" / "2022" / "450107.pdf").is_file()
    done = _run([sys.executable, *shlex.split("-m pipeline report --quiet")], cwd=round_dir)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip() == ""  # --quiet prints nothing on success


def test_venv_activation_puts_eqm_and_dvc_on_path():
    activate = REPO / ".venv" / "bin" / "activate"
    assert activate.is_file()
    done = subprocess.run(
        ["bash", "-c", f"source {shlex.quote(str(activate))} && command -v eqm && command -v dvc"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 0
    assert all(line.startswith(str(REPO / ".venv")) for line in done.stdout.split())


@pytest.mark.parametrize(
    ("target", "must_run"),
    [
        ("demo", ["eqm demo-data", "eqm run"]),
        ("test", ["pytest"]),
        ("lint", ["ruff check", "ruff format --check"]),
        ("bench", ["benchmarks/bench_ingest.py", "benchmarks/bench_validate.py", "benchmarks/bench_indicators.py"]),
        ("bench-r", ["benchmarks/bench_indicators.py --r"]),
    ],
)  # fmt: skip
def test_make_targets_exist_and_do_what_the_readme_says(target: str, must_run: list[str]):
    """`make -n` prints what a target would run (the demo itself runs in test_round_e2e via DVC and in
    test_eqm_commands_from_the_readme; running `make test` inside the tests would recurse)."""
    done = _run(["make", "-n", "-W", "requirements.lock", target], cwd=REPO)
    assert done.returncode == 0, done.stderr
    for piece in must_run:
        assert piece in done.stdout, f"make {target} does not run {piece}"
    assert "uv pip sync" in done.stdout  # every target installs from the lock file first
