"""Benchmark: ``eqm run`` on a province-size round, raw parquet files through reports.

    .venv/bin/python benchmarks/bench_province_run.py [--students 1000000] [--counties 110]
        [--keep DIR] [--json FILE]

Builds a raw round under a scratch root: ``data/raw/students/students.parquet`` (1,000,000
students, grades 4 and 8, ~30 per school, every background and questionnaire column),
``scores/scores.parquet`` (2 subjects of the 2022 rotation: 2,000,000 rows),
``schools/schools.parquet`` (one row per sampled school with the 7 resource quantities) and
``county_reports/county_reports.csv`` (each county's copy of one demo county report: national,
provincial and county values, so the evidence stage has benchmarks to test against). The
``params.yaml`` is the repository's with ``monitoring.counties`` naming the synthetic counties.

Then times one ``eqm run`` process (ingest from parquet, validate, indicators, evidence, report:
every county's HTML and PDF), with the stage split read from the run's own log lines (each
``▶`` line is timestamped as it arrives) and the peak RSS from ``getrusage``. No target: the
issue asks for the figure to be measured and put in the README. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import yaml
from _output import emit  # benchmarks/ is on sys.path when a script runs

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))

from bench_indicators import build  # noqa: E402

SUBJECTS = ("chinese", "arts")  # the 2022 rotation for grades 4 and 8 (params.yaml)
STAGES = ("ingest", "validate", "indicators", "evidence", "report")


def county_reports(counties: list[str]) -> pd.DataFrame | None:
    """Every county gets the 2022 rows of one demo county report (values unchanged)."""
    sys.path.insert(0, str(REPO))
    from pipeline import demo
    from pipeline.config import make_context

    with tempfile.TemporaryDirectory() as tmp:
        shutil.copy(REPO / "params.yaml", Path(tmp) / "params.yaml")
        demo.run(make_context(Path(tmp), quiet=True))
        files = sorted((Path(tmp) / "data" / "raw" / "county_reports").glob("*.csv"))
        if not files:
            return None
        raw = pd.read_csv(files[0], dtype=str, encoding="utf-8-sig")
    year, code = raw.columns[0], raw.columns[1]
    one = raw.loc[(raw[year] == "2022") & (raw[code] == raw.loc[raw[year] == "2022", code].iloc[0])]
    parts = [one.assign(**{code: c, raw.columns[2]: f"县{c}"}) for c in counties]
    return pd.concat(parts, ignore_index=True)


def write_round(root: Path, n_students: int, n_counties: int) -> dict:
    students, scores, schools = build(n_students, n_counties, subjects=SUBJECTS)
    counties = sorted(students["county_code"].unique())
    raw = root / "data" / "raw"
    for d in ("students", "scores", "schools", "county_reports"):
        (raw / d).mkdir(parents=True, exist_ok=True)
    students.drop(columns=["source_file", "source_row"]).to_parquet(
        raw / "students" / "students.parquet"
    )
    scores.drop(columns=["level"]).to_parquet(raw / "scores" / "scores.parquet")
    schools.drop(columns=["source_stage"]).to_parquet(raw / "schools" / "schools.parquet")
    reports = county_reports(counties)
    if reports is not None:
        reports.to_csv(raw / "county_reports" / "county_reports.csv", index=False)
    (raw / "sources.yaml").write_text(
        "dataset: {synthetic: true, label: 省级规模基准测试合成数据}\n", encoding="utf-8"
    )
    params = yaml.safe_load((REPO / "params.yaml").read_text(encoding="utf-8"))
    params["monitoring"]["counties"] = {c: f"县{c}" for c in counties}
    params["monitoring"]["county_aliases"] = {}
    (root / "params.yaml").write_text(
        yaml.safe_dump(params, allow_unicode=True, sort_keys=False), encoding="utf-8"
    )
    return {
        "students": len(students),
        "score_rows": len(scores),
        "schools": len(schools),
        "counties": len(counties),
        "county_report_rows": 0 if reports is None else len(reports),
    }


def time_run(root: Path) -> dict:
    """One ``eqm run`` process; stage times from the arrival of its ``▶ …（stage）`` log lines."""
    eqm = Path(sys.executable).with_name("eqm")
    cmd = [str(eqm)] if eqm.exists() else [sys.executable, "-m", "pipeline"]
    env = dict(os.environ, EQM_SALT="bench", DVC_NO_ANALYTICS="1", COLUMNS="200")
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    marks: list[tuple[str, float]] = []
    tail: list[str] = []
    with subprocess.Popen(
        [*cmd, "run", "--root", str(root)],
        stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, env=env, text=True,
    ) as proc:  # fmt: skip
        assert proc.stderr is not None
        for line in proc.stderr:
            tail = [*tail[-20:], line.rstrip()]
            if "▶" in line:
                stage = next((s for s in STAGES if f"（{s}）" in line), None)
                if stage:
                    marks.append((stage, time.perf_counter() - t0))
        code = proc.wait()
    wall = time.perf_counter() - t0
    if code != 0:
        raise SystemExit(f"eqm run failed ({code}):\n" + "\n".join(tail))
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    ends = [t for _, t in marks[1:]] + [wall]
    stages = {s: round(end - start, 2) for (s, start), end in zip(marks, ends, strict=True)}
    return {
        "eqm_run_process_s": round(wall, 2),
        "start_until_first_stage_s": round(marks[0][1], 2) if marks else None,
        "stage_s": stages,
        "cpu_s": round((after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), 2),
        "peak_rss_gb": round(after.ru_maxrss / 1024**2, 2),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--students", type=int, default=1_000_000)
    ap.add_argument("--counties", type=int, default=110)
    ap.add_argument("--keep", help="scratch root to keep (default: a temporary directory)")
    ap.add_argument("--json", help="also write the result to this file")
    args = ap.parse_args()
    root = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="eqm_province_"))
    if root.exists() and any(root.iterdir()):
        shutil.rmtree(root)
    root.mkdir(parents=True, exist_ok=True)
    try:
        t0 = time.perf_counter()
        size = write_round(root, args.students, args.counties)
        build_s = time.perf_counter() - t0
        timing = time_run(root)
        reports = root / "reports"
        n_pdf = len(list(reports.rglob("*.pdf"))) if reports.exists() else 0
        n_html = len(list(reports.rglob("*.html"))) if reports.exists() else 0
        problems = root / "data" / "processed" / "problems.parquet"
        n_problems = len(pd.read_parquet(problems)) if problems.exists() else None
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    result = {
        **size,
        "build_raw_files_s": round(build_s, 2),
        **timing,
        "report_files": {"html": n_html, "pdf": n_pdf},
        "problems": n_problems,
        "cpus": os.cpu_count(),
        "load_average_1min": round(os.getloadavg()[0], 2),
        "target": "measured (no target)",
    }
    emit(result, args.json)


if __name__ == "__main__":
    main()
