"""Start-up stays cheap: each stage imports only what it uses (structure, not timing).

The timings themselves are benchmarks (``make bench``), not tests. What is tested is the import
graph that makes them possible: ``eqm --help`` loads no data library; no stage module loads another
stage's heavy dependency when imported (Great Expectations is paid by the validate stage only, when
it runs, once per process; the PDF, Excel and SPSS libraries only inside the functions that read or
write those formats); nothing loads ``scipy.stats`` (the statistics use ``scipy.special``).
Each check runs in a fresh interpreter, so what other tests imported does not matter.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

HEAVY = (
    "great_expectations",
    "scipy.stats",
    "statsmodels",
    "typst",
    "matplotlib",
    "openpyxl",
    "pyreadstat",
    "xlsxwriter",
)
ALLOWED = {"report": {"matplotlib"}}  # the report module draws its charts with matplotlib


def _loaded_after(code: str, modules: tuple[str, ...]) -> list[str]:
    probe = (
        f"import sys, json\n{code}\nprint(json.dumps([m for m in {modules!r} if m in sys.modules]))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=120
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_help_loads_no_data_library():
    code = "from pipeline.cli import app\ntry:\n    app(['--help'])\nexcept SystemExit:\n    pass"
    assert _loaded_after(code, ("pandas", "numpy", "pyarrow", "scipy", *HEAVY)) == []


@pytest.mark.parametrize(
    "stage", ["ingest", "validate", "indicators", "evidence", "report", "demo", "explore"]
)
def test_stage_module_imports_no_heavy_library(stage: str):
    loaded = _loaded_after(f"import pipeline.{stage}", HEAVY)
    assert set(loaded) <= ALLOWED.get(stage, set()), f"pipeline.{stage} imports {loaded}"


def test_demo_data_does_not_load_scipy():
    """`eqm demo-data` imports the indicator parameters only: no scipy at all."""
    assert _loaded_after("import pipeline.demo", ("scipy",)) == []


def test_indicators_compute_uses_scipy_special_only():
    """Running the indicator core (t quantiles, logit intervals) loads scipy.special, not stats."""
    code = """
import numpy as np, pandas as pd
from pipeline.config import MonitoringParams, build_params
from pipeline.indicators import IndicatorsParams, compute
mon = build_params(MonitoringParams, {
    "counties": {"450107": "西乡塘区"}, "county_aliases": {}, "city_code": "450100",
    "city_name": "南宁市", "rotation": {}, "default_scale": {"cut_scores": [380, 480, 580],
    "plausible_range": [100, 900]}}, "monitoring")
rng = np.random.default_rng(0)
n = 120
students = pd.DataFrame({"year": 2022, "student_id": [f"s{i}" for i in range(n)],
    "county_code": "450107", "school_id": [f"K{i % 6}" for i in range(n)], "grade": 4,
    "gender": np.where(np.arange(n) % 2, "male", "female"), "weight": 1.0 + rng.random(n)})
scores = pd.DataFrame({"year": 2022, "student_id": students["student_id"], "subject": "math",
    "scale_score": rng.normal(500, 100, n)})
schools = pd.DataFrame({"year": [2022], "county_code": ["450107"], "school_id": ["K0"],
    "stage": ["primary"], "enrollment": [300.0]})
ind = compute(students, scores, schools, None, mon, IndicatorsParams())[0]
assert ind["ci_low"].notna().any()
"""
    assert _loaded_after(code, ("scipy.special", "scipy.stats")) == ["scipy.special"]


def test_great_expectations_is_imported_by_the_validate_core_only():
    """Importing validate does not pay for GX; its core does, once per process."""
    assert _loaded_after("import pipeline.validate", ("great_expectations",)) == []
    code = "import pipeline.validate as v\nv._gx_failures({}, {})"
    assert _loaded_after(code, ("great_expectations",)) == ["great_expectations"]
