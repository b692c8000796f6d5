"""Shared test helpers: a throw-away project root with the repository's params.yaml."""

from __future__ import annotations

import concurrent.futures
import multiprocessing
import os
import shutil
from collections.abc import Callable, Iterable
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("DVC_NO_ANALYTICS", "1")


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
