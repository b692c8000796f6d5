"""The whole DAG on the demo round, the way an analyst runs it: demo data, then DVC.

One session-scoped round is built with `eqm demo-data` + `dvc repro` in a temporary git + DVC copy of
the project (``dvc_round`` in conftest.py, shared with test_demo_findings); the tests below read its
outputs, check that a second `dvc repro` does nothing, and that changing only an evidence threshold
re-runs only `evidence` and `report`.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml
from conftest import REPO, e2e_env, sh

pytestmark = pytest.mark.slow


def test_repro_builds_every_output_and_the_reports(dvc_round: Path):
    years = sorted(p.name for p in (dvc_round / "reports").iterdir() if p.is_dir())
    assert years == ["2020", "2022"]
    for year in years:
        names = {p.name for p in (dvc_round / "reports" / year).iterdir()}
        for county in ("450107", "450110", "450125", "450181"):
            assert {f"{county}.html", f"{county}.pdf"} <= names
        assert {
            "summary.html",
            "summary.pdf",
            "validation.html",
            "ledger",
        } <= names
        ledgers = {p.name for p in (dvc_round / "reports" / year / "ledger").iterdir()}
        assert ledgers == {"city.xlsx", "450107.xlsx", "450110.xlsx", "450125.xlsx", "450181.xlsx"}


def test_ingest_reconciles_and_writes_no_pii(dvc_round: Path):
    manifest = json.loads(
        (dvc_round / "data/processed/ingest_manifest.json").read_text(encoding="utf-8")
    )
    assert manifest["dataset"]["synthetic"] is True
    for f in (
        manifest["files"].values() if isinstance(manifest["files"], dict) else manifest["files"]
    ):
        assert f["rows_read"] == f["rows_kept"] + f["rows_quarantined"]
    students = pd.read_parquet(dvc_round / "data/processed/students.parquet")
    assert not {"name", "id_number"} & set(students.columns)


def test_second_repro_does_nothing(dvc_round: Path):
    done = sh("dvc", "repro", cwd=dvc_round)
    assert "Running stage" not in done.stdout
    status = sh("dvc", "status", cwd=dvc_round)
    assert "changed" not in status.stdout


def test_changing_an_evidence_threshold_reruns_only_evidence_and_report(
    dvc_round: Path, tmp_path: Path
):
    root = tmp_path / "copy"
    shutil.copytree(dvc_round, root, symlinks=True)
    params = yaml.safe_load((root / "params.yaml").read_text(encoding="utf-8"))
    # the first probability-like threshold of the evidence section (e.g. alpha), halved in place
    key = next(k for k, v in params["evidence"].items() if isinstance(v, float) and 0 < v < 1)
    lines = (root / "params.yaml").read_text(encoding="utf-8").splitlines(keepends=True)
    start = next(i for i, line in enumerate(lines) if line.startswith("evidence:"))
    i = next(i for i in range(start + 1, len(lines)) if lines[i].lstrip().startswith(f"{key}:"))
    indent = lines[i][: len(lines[i]) - len(lines[i].lstrip())]
    lines[i] = f"{indent}{key}: {params['evidence'][key] / 2}  # changed by the test\n"
    (root / "params.yaml").write_text("".join(lines), encoding="utf-8")
    diff = sh("dvc", "params", "diff", cwd=root)
    assert f"evidence.{key}" in diff.stdout
    done = sh("dvc", "repro", cwd=root)
    ran = {
        line.split("'")[1] for line in done.stdout.splitlines() if line.startswith("Running stage")
    }
    assert ran == {"evidence", "report"}
    metrics = sh("dvc", "metrics", "show", cwd=root)
    assert "summary.json" in metrics.stdout
    # only evidence changed: validation counts and indicator headlines are the same as committed
    assert sh("dvc", "metrics", "diff", cwd=root).stdout.strip() == ""


def test_living_notebooks_run_on_the_demo_round(dvc_round: Path):
    """The three notebooks execute top to bottom (nbmake, the venv's kernel) on the real demo outputs."""
    env = e2e_env()
    env["EQM_ROOT"] = str(dvc_round)
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "--nbmake", "-q", "-p", "no:cacheprovider", str(REPO / "notebooks")],
        cwd=dvc_round, env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert "3 passed" in done.stdout


def test_raw_data_kept_out_of_git_and_last_round_rerun_exactly(dvc_round: Path, tmp_path: Path):
    """The README's recipe: `dvc add data/raw`, a local remote, `dvc push`; later `git checkout`,
    `dvc pull`, `dvc repro` restores the raw files byte for byte and has nothing to rerun."""
    root = tmp_path / "office"
    shutil.copytree(dvc_round, root, symlinks=True)
    remote = tmp_path / "remote"
    before = {
        p.relative_to(root): p.read_bytes() for p in (root / "data/raw").rglob("*") if p.is_file()
    }
    sh("dvc", "add", "data/raw", cwd=root)
    sh("dvc", "remote", "add", "-d", "office", str(remote), cwd=root)
    sh("dvc", "push", cwd=root)
    tracked = ["data/raw.dvc", ".dvc/config", "dvc.lock"]
    tracked += ["data/.gitignore"] if (root / "data/.gitignore").exists() else []
    sh("git", "add", *tracked, cwd=root)
    sh("git", "commit", "-qm", "round 2022: raw data tracked by dvc", cwd=root)
    tag = sh("git", "rev-parse", "HEAD", cwd=root).stdout.strip()
    assert "data/raw" not in sh("git", "ls-files", cwd=root).stdout.replace("data/raw.dvc", "")
    shutil.rmtree(root / "data/raw")
    shutil.rmtree(root / ".dvc/cache")
    sh("git", "checkout", "-q", tag, cwd=root)
    sh("dvc", "pull", cwd=root)
    after = {
        p.relative_to(root): p.read_bytes() for p in (root / "data/raw").rglob("*") if p.is_file()
    }
    assert after == before
    done = sh("dvc", "repro", cwd=root)
    assert "Running stage" not in done.stdout


def test_demo_county_pdfs_carry_name_sdr_and_every_county_problem_title(dvc_round: Path):
    """Issue 6 on the demo data itself (the report tests use crafted fixtures for the rest)."""
    import re

    import pypdf

    problems = pd.read_parquet(dvc_round / "data/processed/problems.parquet")
    names = {"450107": "西乡塘区", "450110": "武鸣区", "450125": "上林县", "450181": "横州市"}
    for year in (2020, 2022):
        summary = pypdf.PdfReader(dvc_round / "reports" / str(year) / "summary.pdf")
        assert "部分达标" not in "".join(p.extract_text() or "" for p in summary.pages)
        for code, name in names.items():
            reader = pypdf.PdfReader(dvc_round / "reports" / str(year) / f"{code}.pdf")
            text = re.sub(r"\s+", "", "".join(p.extract_text() or "" for p in reader.pages))
            assert name in text and "校际差异率" in text
            assert "部分达标" not in text  # the quality item is 达标 or 未达标 (issue 11)
            # issue 14: every county report has the 相关因素 chapter with the demo's questionnaires
            assert "三、相关因素" in text and "本轮未收集相关因素问卷数据" not in text
            assert text.count("不能据此推断因果关系") == 1  # the causality caveat, once
            html = (dvc_round / "reports" / str(year) / f"{code}.html").read_text(encoding="utf-8")
            assert 'id="s-factors"' in html and "学习兴趣指数" in html
            mine = problems[(problems["county_code"] == code) & (problems["year"] == year)]
            for title in mine.loc[mine["rule_id"] != "SCHOOL", "title"]:
                assert re.sub(r"\s+", "", title) in text, (year, code, title)


def test_validation_pages_show_the_planted_defects_where_they_are(dvc_round: Path):
    """Issue 3 on the demo: each planted defect is on its year's page with its file and row, and the
    page's counts reconcile (rows read = passed + set aside, per file)."""
    truth = json.loads((dvc_round / "data/raw/demo_truth.json").read_text(encoding="utf-8"))
    summary = json.loads(
        (dvc_round / "data/processed/validation/summary.json").read_text(encoding="utf-8")
    )
    assert summary["quarantine_rows"]["validate"] >= len(truth["defects"])
    assert summary["reconciled"] is True and summary["ingest_reconciled"] is True
    for entry in summary["files"].values():
        for t in entry["tables"].values():
            assert t["rows_in"] == t["passed"] + t["quarantined"]
    for defect in truth["defects"]:
        page = (dvc_round / "reports" / str(defect["year"]) / "validation.html").read_text(
            encoding="utf-8"
        )
        assert defect["file"] in page
        # the planted duplicate is an identical copy: the first is kept, the second set aside
        rows = defect["source_rows"][1:] if defect["kind"] == "duplicate_student" else None
        for row in rows or defect["source_rows"]:
            assert f">{row}</td>" in page, (defect["kind"], row)
        assert defect["raw_student_id"] not in page  # the page names the row, never the raw id
