"""Benchmark of the ``indicators`` stage (issue 4, Performance).

Two measurements:

1. **Province size** (default): 110 counties, 1,000,000 students (grades 4 and 8, ~30 per school),
   2 subjects (2,000,000 score rows), one schools table. Writes the validated tables into a scratch
   root, then times ``eqm indicators`` as a separate process (interpreter start, imports, reading,
   computing and writing included; peak RSS from ``getrusage``) and the in-process core
   (:func:`pipeline.indicators.compute`). Target: the process < 5 s and < 2 GB (best of
   ``--repeat`` runs; the median beside it).
2. **Against R** (``--r``): 8 counties, 32,000 students, 2 subjects. Runs
   ``benchmarks/bench_indicators_r.R`` (survey's ``svyby`` on ``as.svrepdesign(type="JKn")``: the
   county × grade × subject means, level shares and gender means) and reports R's estimation time
   alone next to the whole ``eqm indicators`` process and the in-process computation. Target: the
   whole process ≥ 10× faster than R's estimation alone. Also checks that the county means and SEs
   agree with R's.

Usage: ``.venv/bin/python benchmarks/bench_indicators.py [--r] [--students N] [--counties K]
[--repeat N] [--keep DIR] [--json FILE]``. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _output import emit  # benchmarks/ is on sys.path when a script runs

# as the eqm command does (pipeline/cli.py), for the in-process figures; set before NumPy loads
os.environ.setdefault("NUMPY_MADVISE_HUGEPAGE", "0")
os.environ.setdefault("MIMALLOC_ALLOW_THP", "0")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipeline.config import make_context  # noqa: E402
from pipeline.indicators import IndicatorsParams, compute, stage_params  # noqa: E402
from pipeline.indicators.resources import RESOURCE_FORMULAS  # noqa: E402

SUBJECTS = ("math", "chinese")


def build(
    n_students: int,
    n_counties: int,
    per_school: int = 30,
    seed: int = 1,
    subjects: tuple[str, ...] = SUBJECTS,
):
    """Synthetic validated tables: two-level scores, unequal weights, all subgroup variables."""
    rng = np.random.default_rng(seed)
    counties = np.array([f"{450201 + i:06d}" for i in range(n_counties)])  # never the city code
    n_sch = n_students // per_school
    sch_county = rng.integers(0, n_counties, n_sch)
    sch_grade = np.where(rng.random(n_sch) < 0.5, 4, 8)
    sch_ids = np.array([f"S{i:06d}" for i in range(n_sch)], dtype=object)
    sch_of = np.repeat(np.arange(n_sch), per_school)[:n_students]
    n = len(sch_of)
    u = rng.normal(0, 35, n_sch)
    wsch = rng.uniform(5, 60, n_sch)
    ids = pd.Series(np.arange(n)).map("{:07d}".format).radd("st").to_numpy(dtype=object)
    students = pd.DataFrame(
        {
            "year": np.int64(2022),
            "student_id": ids,
            "county_code": counties[sch_county[sch_of]],
            "school_id": sch_ids[sch_of],
            "grade": sch_grade[sch_of].astype(np.int64),
            "gender": np.where(rng.random(n) < 0.5, "female", "male"),
            "urban_rural": rng.choice(np.array(["urban", "town", "rural"]), n),
            "left_behind": pd.array(rng.random(n) < 0.25, dtype="boolean"),
            "migrant": pd.array(rng.random(n) < 0.15, dtype="boolean"),
            "ses": rng.normal(0, 1, n),
            "weight": wsch[sch_of] * rng.uniform(0.8, 1.25, n),
            "homework_minutes": rng.gamma(4, 15, n),
            "sleep_hours": rng.normal(9.3, 0.8, n),
            "myopia": pd.array(rng.random(n) < 0.5, dtype="boolean"),
            "fitness_score": rng.normal(75, 12, n),
            "source_file": "students/bench.csv",
            "source_row": np.arange(n, dtype=np.int64) + 2,
        }
    )
    scores = pd.concat(
        [
            pd.DataFrame(
                {
                    "year": np.int64(2022),
                    "student_id": ids,
                    "subject": s,
                    "scale_score": 500 + u[sch_of] + rng.normal(0, 90, n),
                    "level": pd.Series(pd.NA, index=range(n), dtype="str"),
                }
            )
            for s in subjects
        ],
        ignore_index=True,
    )
    p = IndicatorsParams()
    stage = np.where(sch_grade == 4, "primary", "junior")
    enrol = rng.integers(60, 2500, n_sch).astype(float)
    schools = pd.DataFrame(
        {
            "year": np.int64(2022),
            "county_code": counties[sch_county],
            "school_id": sch_ids,
            "school_name": sch_ids,
            "stage": stage,
            "school_type": "regular",
            "enrollment": enrol,
            "is_teaching_point": pd.array(np.zeros(n_sch, bool), dtype="boolean"),
            "source_stage": stage,
        }
    )
    for key, (qty, mult) in RESOURCE_FORMULAS.items():
        thr = np.where(
            stage == "primary",
            p.resource_thresholds["primary"][key],
            p.resource_thresholds["junior"][key],
        )
        schools[qty] = thr * rng.uniform(0.6, 1.8, n_sch) * enrol / mult
    return students, scores, schools


def write_root(root: Path, students, scores, schools) -> None:
    shutil.copy(ROOT / "params.yaml", root / "params.yaml")
    vdir = root / "data" / "processed" / "validated"
    vdir.mkdir(parents=True, exist_ok=True)
    students.to_parquet(vdir / "students.parquet")
    scores.to_parquet(vdir / "scores.parquet")
    schools.to_parquet(vdir / "schools.parquet")
    # The tables are written here, not by eqm ingest/validate: stamp them as those stages' outputs
    # (pipeline/generations.py), or eqm indicators refuses them as an incomplete upstream run.
    from pipeline.generations import stamp_existing

    stamp_existing(root, through="validate")


def time_process(root: Path) -> tuple[float, float, float]:
    """Wall seconds, CPU seconds and peak RSS (GB) of ``eqm indicators`` as a fresh process.

    CPU time is reported too because wall time on a shared machine includes waiting for a core.
    The CPU time and the peak RSS are the process's own (``wait4``).
    """
    eqm = Path(sys.executable).with_name("eqm")
    cmd = [str(eqm)] if eqm.exists() else [sys.executable, "-m", "pipeline"]
    t0 = time.perf_counter()
    proc = subprocess.Popen([*cmd, "indicators", "--root", str(root), "--quiet"])
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"eqm indicators failed ({proc.returncode})")
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024**2


def time_processes(root: Path, repeat: int) -> dict:
    """:func:`time_process` ``repeat`` times: best and median wall time, largest peak RSS."""
    runs = [time_process(root) for _ in range(repeat)]
    walls = [r[0] for r in runs]
    return {
        "eqm_indicators_process_s": round(min(walls), 2),
        "eqm_indicators_process_median_s": round(statistics.median(walls), 2),
        "eqm_indicators_process_runs_s": [round(w, 2) for w in walls],
        "eqm_indicators_process_cpu_s": round(min(r[1] for r in runs), 2),
        "peak_rss_gb": round(max(r[2] for r in runs), 2),
    }


def time_core(students, scores, schools, root: Path) -> tuple[float, float]:
    """Wall and CPU seconds of the in-process computation (:func:`compute`)."""
    ctx = make_context(root, quiet=True)
    params = stage_params(ctx)
    t0, c0 = time.perf_counter(), time.process_time()
    compute(students, scores, schools, None, ctx.monitoring, params)
    return time.perf_counter() - t0, time.process_time() - c0


def province(args) -> dict:
    t0 = time.perf_counter()
    students, scores, schools = build(args.students, args.counties)
    logging.info(
        "built %d students, %d score rows, %d schools in %.1f s",
        len(students),
        len(scores),
        len(schools),
        time.perf_counter() - t0,
    )
    root = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="eqm_bench_"))
    root.mkdir(parents=True, exist_ok=True)
    try:
        write_root(root, students, scores, schools)
        process = time_processes(root, args.repeat)
        core, core_cpu = time_core(students, scores, schools, root)
        rows = len(pd.read_parquet(root / "data" / "processed" / "indicators.parquet"))
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    return {
        "students": len(students), "score_rows": len(scores), "counties": args.counties,
        "schools": len(schools), "indicator_rows": rows, **process,
        "in_process_compute_s": round(core, 2), "in_process_compute_cpu_s": round(core_cpu, 2),
        "cpus": os.cpu_count(), "load_average_1min": round(os.getloadavg()[0], 2),
        "targets": {"process": "< 5 s", "peak_rss": "< 2 GB"},
    }  # fmt: skip


def versus_r(args) -> dict:
    students, scores, schools = build(32_000, 8, seed=2)
    root = Path(tempfile.mkdtemp(prefix="eqm_bench_r_"))
    try:
        write_root(root, students, scores, schools)
        wide = students[
            ["student_id", "county_code", "school_id", "grade", "gender", "weight"]
        ].copy()
        cuts = np.array([380.0, 480.0, 580.0])
        for s in SUBJECTS:
            y = scores.loc[scores["subject"] == s, "scale_score"].to_numpy()
            wide[s] = y
            wide[f"{s}_level"] = np.array(["I", "II", "III", "IV"])[
                np.searchsorted(cuts, y, side="right")
            ]
        csv = root / "wide.csv"
        wide.to_csv(csv, index=False)
        r_out = root / "r_means.csv"
        proc = subprocess.run(
            ["Rscript", str(ROOT / "benchmarks" / "bench_indicators_r.R"), str(csv), str(r_out)],
            check=True, capture_output=True, text=True,
        )  # fmt: skip
        r_info = json.loads(proc.stdout.strip().splitlines()[-1])
        r_sec, r_cpu = float(r_info["estimation_s"]), float(r_info["estimation_cpu_s"])
        process = time_processes(root, args.repeat)
        wall, cpu = process["eqm_indicators_process_s"], process["eqm_indicators_process_cpu_s"]
        core, core_cpu = min(time_core(students, scores, schools, root) for _ in range(3))
        ind = pd.read_parquet(root / "data" / "processed" / "indicators.parquet")
        r = pd.read_csv(r_out, dtype={"county_code": str})
        mine = ind.loc[(ind["indicator"] == "mean_score") & (ind["group_var"] == "")]
        both = r.merge(mine, on=["county_code", "grade", "subject"], suffixes=("_r", ""))
        rel_est = float((both["estimate"] / both["estimate_r"] - 1).abs().max())
        rel_se = float((both["se"] / both["se_r"] - 1).abs().max())
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return {
        "students": len(students), "counties": 8, "r_replicates": r_info["replicates"],
        "r_svyby_estimation_s": round(r_sec, 2), "r_svyby_estimation_cpu_s": round(r_cpu, 2),
        **{k: v for k, v in process.items() if k != "peak_rss_gb"},
        "in_process_compute_s": round(core, 3), "in_process_compute_cpu_s": round(core_cpu, 3),
        "process_speedup": round(r_sec / wall, 1), "compute_speedup": round(r_sec / core, 1),
        "process_speedup_cpu": round(r_cpu / cpu, 1), "compute_speedup_cpu": round(r_cpu / core_cpu, 1),
        "cpus": os.cpu_count(), "load_average_1min": round(os.getloadavg()[0], 2),
        "county_means_compared": len(both), "max_rel_diff_estimate_vs_r": rel_est,
        "max_rel_diff_se_vs_r": rel_se,
        "targets": {"process_speedup": ">= 10x (whole eqm indicators process vs R estimation alone)"},
    }  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--r", action="store_true", help="compare with R survey on 8 counties / 32k students"
    )
    ap.add_argument("--students", type=int, default=1_000_000)
    ap.add_argument("--counties", type=int, default=110)
    ap.add_argument("--repeat", type=int, default=3, help="eqm indicators processes to time")
    ap.add_argument("--keep", help="scratch root to keep (default: a temporary directory)")
    ap.add_argument("--json", help="also write the result to this file")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    result = versus_r(args) if args.r else province(args)
    emit(result, args.json)


if __name__ == "__main__":
    main()
