"""Benchmark: validate 1 million student rows (issue 3 target: under 10 s on a 2-core machine).

    .venv/bin/python benchmarks/bench_validate.py [--students 1000000] [--scores-per-student 0]
        [--json FILE]

Builds a synthetic ingested round in memory (4 counties, 30 students per school, ~0.1 % planted
defects: negative weights, missing school ids, duplicated students, out-of-range questionnaire
values), then times the pure core ``validate_tables`` (GX suites + pandas checks + quarantine +
findings + summary) and the page rendering. The Great Expectations import (~3-4 s, paid once per
process) is timed separately. Not a test: prints the figures (and writes them to ``--json``).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from pipeline.config import MonitoringParams, build_params
from pipeline.schemas import RESOURCE_QUANTITIES

ROOT = Path(__file__).resolve().parents[1]


def build(n: int, scores_per_student: int, seed: int = 1) -> dict[str, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    counties = np.array(["450107", "450110", "450125", "450181"])
    school = np.arange(n) // 30
    grade = np.where(school % 2 == 0, 4, 8)
    students = pd.DataFrame(
        {
            "year": np.full(n, 2022, dtype="int64"),
            "student_id": pd.array([f"{i:016x}" for i in range(n)], dtype="str"),
            "county_code": pd.array(counties[school % 4], dtype="str"),
            "school_id": pd.array([f"S{s:06d}" for s in school], dtype="str"),
            "grade": grade.astype("int64"),
            "gender": pd.array(np.where(rng.random(n) < 0.5, "male", "female"), dtype="str"),
            "urban_rural": pd.array(rng.choice(["urban", "town", "rural"], n), dtype="str"),
            "left_behind": pd.array(rng.random(n) < 0.2, dtype="boolean"),
            "ses": rng.normal(size=n),
            "weight": rng.uniform(5, 50, n),
            "homework_minutes": rng.uniform(0, 150, n),
            "sleep_hours": rng.uniform(6, 11, n),
            "myopia": pd.array(rng.random(n) < 0.5, dtype="boolean"),
            "fitness_score": rng.uniform(40, 110, n),
            "source_file": pd.array(
                [f"students/part{p}.csv" for p in np.arange(n) // 100_000], dtype="str"
            ),
            "source_row": (np.arange(n) % 100_000 + 2).astype("int64"),
        }
    )
    k = max(n // 4000, 1)  # ~0.1 % defects in total
    idx = rng.choice(n, size=4 * k, replace=False)
    students.loc[idx[:k], "weight"] = -1.0
    students.loc[idx[k : 2 * k], "school_id"] = pd.NA
    students.loc[idx[2 * k : 3 * k], "homework_minutes"] = 9999.0
    dup = students.iloc[idx[3 * k :]].assign(source_row=lambda d: d["source_row"] + 200_000)
    students = pd.concat([students, dup], ignore_index=True)

    n_sch = int(school.max()) + 1
    schools = pd.DataFrame(
        {
            "year": np.full(n_sch, 2022, dtype="int64"),
            "county_code": pd.array(counties[np.arange(n_sch) % 4], dtype="str"),
            "school_id": pd.array([f"S{s:06d}" for s in range(n_sch)], dtype="str"),
            "stage": pd.array(
                np.where(np.arange(n_sch) % 2 == 0, "primary", "junior"), dtype="str"
            ),
            "school_type": pd.array(["regular"] * n_sch, dtype="str"),
            "enrollment": rng.uniform(100, 2000, n_sch),
            **{q: rng.uniform(1, 100, n_sch) for q in RESOURCE_QUANTITIES},
            "source_file": pd.array(["schools/stats.xlsx"] * n_sch, dtype="str"),
            "source_row": np.arange(2, n_sch + 2, dtype="int64"),
        }
    )
    tables = {"students": students, "schools": schools}
    if scores_per_student:
        base = students.iloc[:n]
        subjects = ["chinese", "arts", "english"][:scores_per_student]
        scores = pd.concat(
            [
                pd.DataFrame(
                    {
                        "year": base["year"].to_numpy(),
                        "student_id": base["student_id"].array,
                        "subject": pd.array([s] * n, dtype="str"),
                        "scale_score": rng.normal(500, 100, n).clip(150, 850),
                    }
                )
                for s in subjects
            ],
            ignore_index=True,
        )
        scores = scores.assign(
            source_file=pd.array(["scores/all.csv"] * len(scores), dtype="str"),
            source_row=np.arange(2, len(scores) + 2, dtype="int64"),
        )
        tables["scores"] = scores
    return tables


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--students", type=int, default=1_000_000)
    ap.add_argument("--scores-per-student", type=int, default=0, choices=[0, 1, 2, 3])
    ap.add_argument("--json", help="also write the figures to this file")
    args = ap.parse_args()
    params_yaml = yaml.safe_load((ROOT / "params.yaml").read_text(encoding="utf-8"))
    from pipeline import validate as v

    mon = build_params(MonitoringParams, params_yaml["monitoring"], "monitoring")
    params = build_params(v.ValidateParams, params_yaml["validate"], "validate")

    t0 = time.perf_counter()
    tables = build(args.students, args.scores_per_student)
    t1 = time.perf_counter()
    import great_expectations  # noqa: F401  (timed apart: paid once per process)

    t2 = time.perf_counter()
    res = v.validate_tables(tables, None, None, params, mon)
    t3 = time.perf_counter()
    pages = v.render_pages(res, mon, None, params.page_max_rows_per_rule)
    t4 = time.perf_counter()
    n_rows = sum(len(df) for df in tables.values())
    print(f"rows in: {n_rows:,} (students {len(tables['students']):,})")
    print(f"quarantined by validate: {res.summary['quarantine_rows']['validate']:,}; "
          f"findings error={res.summary['findings']['error']} warn={res.summary['findings']['warn']}")  # fmt: skip
    print(f"build synthetic data: {t1 - t0:6.2f} s")
    print(f"import great_expectations: {t2 - t1:6.2f} s")
    print(f"validate_tables (core): {t3 - t2:6.2f} s")
    print(f"render {len(pages)} pages: {t4 - t3:6.2f} s")
    print(f"validate total incl. GX import and pages: {t4 - t1:6.2f} s")
    if args.json:
        figures = {
            "students": len(tables["students"]),
            "rows_in": n_rows,
            "import_gx_s": round(t2 - t1, 2),
            "validate_tables_s": round(t3 - t2, 2),
            "render_pages_s": round(t4 - t3, 2),
            "total_s": round(t4 - t1, 2),
            "cpus": os.cpu_count(),
            "load_average_1min": round(os.getloadavg()[0], 2),
            "target": "< 10 s",
        }
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(figures, fh, indent=2)


if __name__ == "__main__":
    main()
