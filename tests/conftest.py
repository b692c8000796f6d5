"""Shared test helpers: a throw-away project root with the repository's params.yaml."""

from __future__ import annotations

import os
import shutil
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
