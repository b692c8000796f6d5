"""Time the demo round stage by stage, the way an analyst runs it (whole `eqm` processes).

Usage: python benchmarks/bench_demo_round.py [--repeat N]

Builds the demo round in a temporary root and times `eqm demo-data` and each of the five stages as
separate processes (interpreter start and imports included). Targets: ingest < 10 s (issue 2),
report < 60 s for all demo reports (issue 6). Prints one JSON object; the README quotes it.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
EQM = Path(sys.executable).parent / "eqm"
STEPS = ("demo-data", "ingest", "validate", "indicators", "evidence", "report")


def run_round(root: Path) -> dict[str, float]:
    shutil.copy(REPO / "params.yaml", root / "params.yaml")
    env = dict(os.environ, EQM_SALT="bench", DVC_NO_ANALYTICS="1")
    times = {}
    for step in STEPS:
        t0 = time.perf_counter()
        subprocess.run([str(EQM), step, "--root", str(root), "--quiet"], check=True, env=env)
        times[step] = round(time.perf_counter() - t0, 2)
    return times


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=2)
    args = ap.parse_args()
    runs = []
    for _ in range(args.repeat):
        with tempfile.TemporaryDirectory() as tmp:
            runs.append(run_round(Path(tmp)))
    best = {step: min(r[step] for r in runs) for step in STEPS}
    result = {
        "best_of": args.repeat,
        "seconds": best,
        "total_seconds": round(sum(best.values()), 2),
        "cpus": os.cpu_count(),
        "load_average_1min": round(os.getloadavg()[0], 2),
        "targets": {"ingest": "< 10 s", "report": "< 60 s"},
    }
    print(json.dumps(result, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
