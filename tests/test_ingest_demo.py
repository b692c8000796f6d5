"""Ingest through the CLI, and on the demo round (`eqm demo-data` + `eqm ingest` in tmp_path)."""

from __future__ import annotations

import json
import re

import pandas as pd
import pytest
from _ingest_fixtures import all_output_bytes, make_root, minimal_schools
from typer.testing import CliRunner

from pipeline import ingest
from pipeline.cli import app
from pipeline.config import make_context


def test_cli_error_is_chinese_without_traceback(tmp_path, monkeypatch):
    monkeypatch.setenv("EQM_SALT", "s")
    root = make_root(tmp_path)
    minimal_schools(root)
    (root / "data/raw/schools/x.xls").write_bytes(b"old excel")
    result = CliRunner().invoke(app, ["ingest", "--root", str(root), "--quiet"])
    assert result.exit_code == 1
    out = result.output + (result.stderr if result.stderr_bytes is not None else "")
    assert "schools/x.xls" in out and "不支持的文件格式" in out and "Traceback" not in out
    assert not (root / "data/processed").exists()


def test_cli_success(tmp_path, monkeypatch):
    monkeypatch.setenv("EQM_SALT", "s")
    root = make_root(tmp_path)
    minimal_schools(root)
    result = CliRunner().invoke(app, ["ingest", "--root", str(root), "--quiet"])
    assert result.exit_code == 0, result.output
    assert (root / "data/processed/schools.parquet").is_file()


@pytest.mark.slow
def test_demo_round_ingests(tmp_path, monkeypatch):
    monkeypatch.setenv("EQM_SALT", "demo-salt")
    root = make_root(tmp_path)
    runner = CliRunner()
    assert runner.invoke(app, ["demo-data", "--root", str(root), "--quiet"]).exit_code == 0
    # the "< 10 s" target is measured by benchmarks/bench_demo_round.py, not by a timed test
    result = runner.invoke(app, ["ingest", "--root", str(root), "--quiet"])
    assert result.exit_code == 0, result.output
    manifest = json.loads(
        (root / "data/processed/ingest_manifest.json").read_text(encoding="utf-8")
    )
    assert manifest["dataset"].get("synthetic") is True
    formats = {m["format"] for m in manifest["files"].values()}
    assert {"csv", "xlsx", "sav"} <= formats
    for src, m in manifest["files"].items():
        assert m["rows_read"] == m["rows_kept"] + m["rows_quarantined"], src
        assert m["rows_read"] > 0, src
    for table in ("students", "scores", "schools", "county_reports", "previous_problems"):
        assert manifest["tables"][table] > 0, table
    students = pd.read_parquet(root / "data/processed/students.parquet")
    assert students["student_id"].str.fullmatch(r"[0-9a-f]{16}").all()
    assert set(students["year"]) == {2020, 2022}
    scores = pd.read_parquet(root / "data/processed/scores.parquet")
    assert (
        scores.merge(students[["year", "student_id"]], how="left", indicator=True)["_merge"]
        .eq("both")
        .mean()
        > 0.95
    )
    schools = pd.read_parquet(root / "data/processed/schools.parquet")
    assert (schools["source_stage"] == "nine_year").any() and set(schools["stage"]) <= {
        "primary",
        "junior",
    }
    # no raw id / name / ID number from the raw students files appears in any output
    blob = all_output_bytes(root)
    ctx = make_context(root, quiet=True)
    params = ctx.section(ingest.IngestParams, "ingest")
    sources = ingest.load_sources(ctx.paths.sources_file)
    lookups = ingest.build_lookups(ctx.monitoring, sources.aliases)
    raw_dir = ctx.paths.raw
    n_checked = 0
    tokens = set(re.split(r"[^0-9A-Za-z\u4e00-\u9fff]+", blob.decode("utf-8", errors="ignore")))
    for path in sorted((raw_dir / "students").iterdir()):
        raw = ingest.read_raw_file("students", path, raw_dir, sources, params, lookups)
        pii_cols = [
            c
            for c in raw.data.columns
            if (t := ingest.header_target("students", c, lookups, raw.hint.aliases)) is not None
            and (t.kind == "pii" or t.column == "student_id")
        ]
        assert len(pii_cols) >= 2, (path.name, list(raw.data.columns))  # raw id + name at least
        secrets = {v for c in pii_cols for v in ingest.as_text(raw.data[c]) if v is not None}
        n_checked += len(secrets)
        # every secret against the output's tokens, and a sample by plain substring search
        leaked = [v for v in secrets if v in tokens]
        leaked += [v for v in sorted(secrets)[::25] if v.encode("utf-8") in blob]
        assert not leaked, leaked[:5]
    assert n_checked > 4000
