"""Benchmark: start-up of the ``eqm`` command (issue: every command starts in under a second).

    .venv/bin/python benchmarks/bench_startup.py [--repeat 5] [--json FILE]

Measures, each in fresh processes (best of ``--repeat``, median beside it):

* ``eqm --help`` as a whole process (target < 0.5 s);
* the import of each stage module (``python -X importtime -c "import pipeline.<stage>"``: the
  cumulative time of the top-level import, what a stage pays before doing any work), and the
  heaviest third-party packages among them;
* whether every module those imports load has up-to-date bytecode: a module without it is compiled
  at each start when bytecode cannot be written (``PYTHONDONTWRITEBYTECODE``, a read-only
  checkout), otherwise on the first start only. ``make install`` compiles site-packages
  (``uv pip sync --compile-bytecode``); the project's own package is listed apart.

Prints one JSON object (and writes it to ``--json``).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

from _output import emit  # benchmarks/ is on sys.path when a script runs

REPO = Path(__file__).resolve().parents[1]
EQM = Path(sys.executable).with_name("eqm")
STAGES = ("ingest", "validate", "indicators", "evidence", "report", "demo")

BYTECODE_PROBE = r"""
import importlib.util, json, os, sys
import pipeline.cli

for s in sys.argv[1:]:
    __import__("pipeline." + s)
missing = {"project": [], "third_party": []}
for name, mod in list(sys.modules.items()):
    src = getattr(mod, "__file__", None)
    if not src or not src.endswith(".py"):
        continue
    try:
        pyc = importlib.util.cache_from_source(src)
    except NotImplementedError:
        continue
    if not os.path.exists(pyc) or os.path.getmtime(pyc) < os.path.getmtime(src):
        kind = "project" if name == "pipeline" or name.startswith("pipeline.") else "third_party"
        missing[kind].append(name)
print(json.dumps({k: sorted(v) for k, v in missing.items()}))
"""


def _eqm() -> list[str]:
    return [str(EQM)] if EQM.exists() else [sys.executable, "-m", "pipeline"]


def _timed(cmd: list[str], repeat: int) -> list[float]:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        times.append(time.perf_counter() - t0)
    return times


def import_times(stage: str, repeat: int) -> tuple[list[float], dict[str, float]]:
    """Seconds of ``import pipeline.<stage>`` (top-level cumulative) and its heaviest packages."""
    runs, heavy = [], {}
    for _ in range(repeat):
        done = subprocess.run(
            [sys.executable, "-X", "importtime", "-c", f"import pipeline.{stage}"],
            check=True, capture_output=True, text=True,
        )  # fmt: skip
        top: dict[str, float] = {}
        for line in done.stderr.splitlines():
            m = re.match(r"import time:\s+\d+ \|\s+(\d+) \| (\s*)(\S+)", line)
            if m and len(m.group(2)) <= 2:  # top level (1 space) and its direct imports
                top[m.group(3)] = int(m.group(1)) / 1e6
        runs.append(top.get(f"pipeline.{stage}", float("nan")))
        if not heavy:
            heavy = {
                k: round(v, 3)
                for k, v in sorted(top.items(), key=lambda kv: -kv[1])
                if not k.startswith(("pipeline", "site", "__editable__")) and v >= 0.02
            }
    return runs, heavy


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--json", help="also write the result to this file")
    args = ap.parse_args()
    env_note = {k: os.environ[k] for k in ("PYTHONDONTWRITEBYTECODE",) if k in os.environ}
    help_runs = _timed([*_eqm(), "--help"], args.repeat)
    imports = {}
    for stage in STAGES:
        runs, heavy = import_times(stage, args.repeat)
        imports[stage] = {
            "best_s": round(min(runs), 3),
            "median_s": round(statistics.median(runs), 3),
            "heaviest_imports_s": heavy,
        }
    probe = subprocess.run(
        [sys.executable, "-c", BYTECODE_PROBE, *STAGES], check=True, capture_output=True, text=True
    )
    missing = json.loads(probe.stdout.strip().splitlines()[-1])
    result = {
        "eqm_help_s": {
            "best": round(min(help_runs), 3),
            "median": round(statistics.median(help_runs), 3),
            "target": "< 0.5 s",
        },
        "import_s": imports,
        "modules_without_bytecode": {
            "third_party": len(missing["third_party"]),
            "third_party_names": missing["third_party"][:20],
            "project": len(missing["project"]),
        },
        "environment": env_note,
        "cpus": os.cpu_count(),
        "load_average_1min": round(os.getloadavg()[0], 2),
    }
    emit(result, args.json)


if __name__ == "__main__":
    main()
