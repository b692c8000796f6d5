"""Shared test helpers: a throw-away project root with the repository's params.yaml."""

from __future__ import annotations

import concurrent.futures
import multiprocessing
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterable
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent

os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("DVC_NO_ANALYTICS", "1")

# `make test` runs the suite on every core (pytest-xdist). Each test module goes to one worker, so
# its module fixtures are built once; the modules that share the session's demo round
# (``dvc_round``) go to the same worker, so that round is built once too.
SHARED_ROUND_MODULES = {"test_round_e2e", "test_demo_findings"}
# The modules that take longest (seconds of one worker, `pytest --durations` on 2 cores), handed out
# first; the others follow in collection order.
LONGEST_FIRST = (
    "dvc_round", "test_readme", "test_demo_recovery", "test_collect", "test_report",
    "test_check", "test_generations", "test_demo_factors", "test_validate_properties",
)  # fmt: skip


@pytest.hookimpl(optionalhook=True)  # only with pytest-xdist
def pytest_xdist_make_scheduler(config, log):
    from xdist.scheduler import LoadScopeScheduling

    class ModuleScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            module = nodeid.split("::", 1)[0]
            return "dvc_round" if Path(module).stem in SHARED_ROUND_MODULES else module

        def _assign_work_unit(self, node) -> None:
            # longest first (LPT): a long module started last would leave the other worker idle
            for stem in LONGEST_FIRST:
                scope = next((s for s in self.workqueue if Path(s).stem == stem), None)
                if scope is not None:
                    self.workqueue.move_to_end(scope, last=False)
                    break
            super()._assign_work_unit(node)

    return ModuleScheduling(config, log)


@pytest.fixture
def project_root(tmp_path: Path) -> Path:
    """An empty round folder holding only a copy of the repository's params.yaml."""
    shutil.copy(REPO / "params.yaml", tmp_path / "params.yaml")
    return tmp_path


@pytest.fixture
def ingest_salt(monkeypatch):
    """The pseudonymisation salt of the ingest tests (``_ingest_fixtures.SALT``), set in the env."""
    from _ingest_fixtures import SALT

    monkeypatch.setenv("EQM_SALT", SALT)


def parallel_map(fn: Callable, *iterables: Iterable) -> list:
    """``[fn(*args) ...]`` computed in forked processes, one per CPU (in this one without ``fork``
    or with one CPU), results in the order of the arguments.

    For fixtures that build several independent demo rounds: on the 2-core machine the rounds run
    side by side. An exception raised in a worker (a failed assertion included) is raised here.
    """
    calls = list(zip(*iterables, strict=True))
    n = min(os.cpu_count() or 1, len(calls))
    if n <= 1 or "fork" not in multiprocessing.get_all_start_methods():
        return [fn(*args) for args in calls]
    ctx = multiprocessing.get_context("fork")
    with concurrent.futures.ProcessPoolExecutor(max_workers=n, mp_context=ctx) as pool:
        return list(pool.map(fn, *zip(*calls, strict=True)))


# ------------------------------------------------------------------------------------------------
# The demo round of the session: eqm demo-data + dvc repro in a temporary git + DVC copy of the
# project, built once and read by every module that needs a whole default round (test_round_e2e,
# test_demo_findings). Tests that change files work on a copy of it.
# ------------------------------------------------------------------------------------------------


def e2e_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env["DVC_NO_ANALYTICS"] = "1"
    env["EQM_SALT"] = "test-salt"
    env["GIT_AUTHOR_NAME"] = env["GIT_COMMITTER_NAME"] = "eqm-test"
    env["GIT_AUTHOR_EMAIL"] = env["GIT_COMMITTER_EMAIL"] = "eqm-test@example.invalid"
    return env


def sh(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    done = subprocess.run(args, cwd=cwd, env=e2e_env(), capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise AssertionError(
            f"{' '.join(args)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}"
        )
    return done


@pytest.fixture(scope="session")
def dvc_round(tmp_path_factory) -> Path:
    """The default demo round (seed of params.yaml, ``EQM_SALT=test-salt``) built by DVC; read-only."""
    root = tmp_path_factory.mktemp("round")
    for name in ("dvc.yaml", "params.yaml", ".dvcignore"):
        shutil.copy(REPO / name, root / name)
    shutil.copytree(
        REPO / "pipeline", root / "pipeline", ignore=shutil.ignore_patterns("__pycache__")
    )
    (root / ".gitignore").write_text("/data/raw/\n/.eqm_salt\n/data/eqm.log\n", encoding="utf-8")
    sh("git", "init", "-q", cwd=root)
    sh("dvc", "init", "-q", cwd=root)
    sh("eqm", "demo-data", "--root", ".", "--quiet", cwd=root)
    sh("git", "add", "-A", cwd=root)
    sh("git", "commit", "-qm", "round", cwd=root)
    sh("dvc", "repro", cwd=root)
    sh("git", "add", "-A", cwd=root)
    sh("git", "commit", "-qm", "repro", cwd=root)
    return root
