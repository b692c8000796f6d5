"""Time the demo round the way an analyst runs it: whole ``eqm`` processes.

Usage: python benchmarks/bench_demo_round.py [--repeat N] [--json FILE]

Builds the demo round (``eqm demo-data``) in a temporary root and measures, best of ``--repeat``
(median beside it):

* each stage as its own process (``eqm ingest`` … ``eqm report``: interpreter start, imports,
  reading, work and writing), and how long each took to *start*: from launch to its ``▶`` log
  line, printed once the stage module is imported and the parameters are read (issue: every
  command starts in under a second);
* ``eqm run`` as one process, all five stages (issue: the demo round end to end in 15 s, of which
  ``eqm report`` in 8 s);
* beside every wall time, the CPU time (user + system) of the process and the worker processes it
  waited for: on a machine other jobs share, the wall time grows with their load, the CPU time
  much less (the report stage renders on every CPU, so its CPU time exceeds its wall time);
* the validate stage split in a fresh process: the Great Expectations import apart from the work
  beyond it (reading, GX suites, pandas checks, pages, writing; issue: < 2 s beyond the import);
* how many times one ``eqm run`` process imports Great Expectations (``python -X importtime``;
  issue: once per run, not once per stage).

Prints one JSON object (and writes it to ``--json``).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _output import emit  # benchmarks/ is on sys.path when a script runs

REPO = Path(__file__).resolve().parents[1]
EQM = Path(sys.executable).parent / "eqm"
STEPS = ("demo-data", "ingest", "validate", "indicators", "evidence", "report")
ENV = dict(os.environ, EQM_SALT="bench", DVC_NO_ANALYTICS="1", COLUMNS="200")

VALIDATE_SPLIT = r"""
import json, sys, time
from pathlib import Path
t0 = time.perf_counter()
import pipeline.validate as v
from pipeline.config import make_context
t1 = time.perf_counter()
import great_expectations  # noqa: F401

t2 = time.perf_counter()
v.run(make_context(Path(sys.argv[1]), quiet=True))
t3 = time.perf_counter()
print(json.dumps({"import_stage_s": t1 - t0, "import_gx_s": t2 - t1, "work_s": t3 - t2}))
"""


def _eqm() -> list[str]:
    return [str(EQM)] if EQM.exists() else [sys.executable, "-m", "pipeline"]


def _children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def run_step(step: str, root: Path) -> tuple[float, float | None, float]:
    """Wall seconds of ``eqm <step>``, seconds until its ``▶`` line (None if it logs none) and the
    CPU seconds (user + system) of the process and of the worker processes it waited for."""
    cpu0 = _children_cpu()
    t0 = time.perf_counter()
    started = None
    with subprocess.Popen(
        [*_eqm(), step, "--root", str(root)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=ENV, text=True,
    ) as proc:  # fmt: skip
        assert proc.stderr is not None
        tail = []
        for line in proc.stderr:
            tail = [*tail[-20:], line.rstrip()]
            if started is None and "▶" in line:
                started = time.perf_counter() - t0
        code = proc.wait()
    if code != 0:
        raise SystemExit(f"eqm {step} failed ({code}):\n" + "\n".join(tail))
    return time.perf_counter() - t0, started, _children_cpu() - cpu0


def stage_round(root: Path) -> tuple[dict[str, float], dict[str, float], dict[str, float]]:
    shutil.copy(REPO / "params.yaml", root / "params.yaml")
    times, starts, cpus = {}, {}, {}
    for step in STEPS:
        times[step], starts[step], cpus[step] = run_step(step, root)
    return times, starts, cpus


def whole_run(root: Path) -> tuple[float, float]:
    """``eqm run`` on an already built demo round (raw files from ``eqm demo-data``): wall, CPU."""
    shutil.rmtree(root / "data" / "processed", ignore_errors=True)
    shutil.rmtree(root / "reports", ignore_errors=True)
    wall, _, cpu = run_step("run", root)
    return wall, cpu


def validate_split(root: Path) -> dict[str, float]:
    done = subprocess.run(
        [sys.executable, "-c", VALIDATE_SPLIT, str(root)],
        check=True, capture_output=True, text=True, env=ENV,
    )  # fmt: skip
    return json.loads(done.stdout.strip().splitlines()[-1])


def gx_imports_per_run(root: Path) -> int:
    """Top-level imports of great_expectations in one ``eqm run`` process (-X importtime)."""
    shutil.rmtree(root / "data" / "processed", ignore_errors=True)
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "pipeline", "run", "--root", str(root), "-q"],
        check=True, capture_output=True, text=True, env=ENV,
    )  # fmt: skip
    return sum(1 for line in done.stderr.splitlines() if line.endswith("| great_expectations"))


def _stats(values: list[float]) -> dict[str, float]:
    return {"best": round(min(values), 2), "median": round(statistics.median(values), 2)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--json", help="also write the result to this file")
    args = ap.parse_args()
    stage_runs, start_runs, cpu_runs, run_runs, run_cpus, splits = [], [], [], [], [], []
    gx_imports = None
    load = [os.getloadavg()[0]]
    for i in range(args.repeat):
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            times, starts, cpus = stage_round(root)
            stage_runs.append(times)
            start_runs.append(starts)
            cpu_runs.append(cpus)
            splits.append(validate_split(root))
            wall, cpu = whole_run(root)
            run_runs.append(wall)
            run_cpus.append(cpu)
            load.append(os.getloadavg()[0])
            if i == 0:
                gx_imports = gx_imports_per_run(root)
    result = {
        "repeat": args.repeat,
        "stage_process_s": {s: _stats([r[s] for r in stage_runs]) for s in STEPS},
        "stage_process_cpu_s": {s: _stats([r[s] for r in cpu_runs]) for s in STEPS},
        "stage_start_s": {
            s: _stats([r[s] for r in start_runs if r[s] is not None])
            for s in STEPS
            if all(r[s] is not None for r in start_runs)
        },
        "eqm_run_process_s": _stats(run_runs),
        "eqm_run_process_cpu_s": _stats(run_cpus),
        "validate_split_s": {
            k: _stats([sp[k] for sp in splits]) for k in ("import_stage_s", "import_gx_s", "work_s")
        },
        "gx_imports_per_eqm_run": gx_imports,
        "cpus": os.cpu_count(),
        "load_average_1min": round(os.getloadavg()[0], 2),
        "load_average_1min_max": round(max(load), 2),  # other jobs on the machine while measuring
        "targets": {
            "stage start": "< 1 s",
            "eqm run": "< 15 s",
            "validate work beyond the GX import": "< 2 s",
            "GX imports per eqm run": "1",
            "ingest": "< 10 s",
            "report": "< 8 s",
        },
    }
    emit(result, args.json)


if __name__ == "__main__":
    main()
