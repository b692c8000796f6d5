"""Benchmark of the related-factor estimates (相关因素, issue 14) at province scale.

The synthetic round of :mod:`bench_indicators` (110 counties, 1,000,000 students, 2 subjects) with
questionnaire columns added: three 学习兴趣 items (1–4), 校外培训 (yes/no) and 体育锻炼 minutes for
every student, and a principal questionnaire (课程开齐开足, 课后服务天数) for every school. Times the
pure core :func:`pipeline.indicators.factor_estimates.factor_estimates` in-process (value rows,
group gaps, regressions with/without SES and the two-level model per county × grade × subject) and
reports its peak RSS. No target yet: measured (README speed table).

Usage: ``.venv/bin/python benchmarks/bench_factors.py [--students N] [--counties K] [--json FILE]``.
Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).parent))
from bench_indicators import build  # noqa: E402

from pipeline.config import make_context  # noqa: E402
from pipeline.indicators import stage_params  # noqa: E402
from pipeline.indicators.factor_estimates import factor_estimates  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def with_questionnaires(students: pd.DataFrame, seed: int = 5):
    rng = np.random.default_rng(seed)
    n = len(students)
    st = students.assign(
        **{f"interest_{k}": rng.integers(1, 5, n).astype(float) for k in (1, 2, 3)},
        tutoring=pd.array(rng.random(n) < 0.3, dtype="boolean"),
        exercise_minutes=rng.integers(0, 13, n) * 10.0,
    )
    sch = st[["year", "school_id"]].drop_duplicates()
    principals = sch.assign(
        curriculum_complete=pd.array(rng.random(len(sch)) < 0.8, dtype="boolean"),
        after_school_days=rng.integers(3, 6, len(sch)).astype(float),
    )
    return st, principals


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--students", type=int, default=1_000_000)
    ap.add_argument("--counties", type=int, default=110)
    ap.add_argument("--json", help="also write the result to this file")
    args = ap.parse_args()
    students, scores, _ = build(args.students, args.counties)
    students, principals = with_questionnaires(students)
    ctx = make_context(REPO, quiet=True)
    t = time.perf_counter()
    out = factor_estimates(
        students, scores, None, principals, None, ctx.monitoring, stage_params(ctx)
    )
    seconds = time.perf_counter() - t
    result = {
        "students": int(len(students)),
        "counties": args.counties,
        "factors": int(out["factor"].replace("", np.nan).nunique()),
        "rows": int(len(out)),
        "seconds": round(seconds, 2),
        "peak_rss_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6, 2),
    }
    text = json.dumps(result, ensure_ascii=False)
    print(text)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(text + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
