"""Evidence stage: official values without an SE, single-source regulatory thresholds, and the
previous-round change test's SE.

Expected numbers are hand calculations written beside them. Margins: scale SD 100 × 0.2 = 20 points
for scores and gaps (params.yaml evidence.scale_sd / effect_size_sd); 5 percentage points for
percentages (evidence.no_se_margin_pct_points). Regulatory thresholds: 教督〔2017〕6号.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml
from conftest import REPO
from test_evidence import (
    CITY,
    EVIDENCE_RAW,
    PARAMS,
    cr,
    fired,
    frame,
    ind,
    prev,
    problems,
    rb,
    school,
)

from pipeline import schemas
from pipeline.evidence import candidates, evidence_text

RAW = yaml.safe_load((REPO / "params.yaml").read_text(encoding="utf-8"))


def official(**kw) -> dict:
    """A county-scope value printed in a county report, without an SE (no student data)."""
    return cr(**{"scope": "county", "se": np.nan, **kw})


def cands(cr_rows, ind_rows=()):
    return candidates(
        frame(list(ind_rows), schemas.INDICATORS), frame([], schemas.RESOURCE_BALANCE),
        frame([], schemas.SCHOOL_COMPLIANCE), frame(list(cr_rows), schemas.COUNTY_REPORTS),
        PARAMS, CITY,
    )  # fmt: skip


# ------------------------------------------------------------------------------------------------
# 1. Official-only values without an SE: decided by a margin, outside the BH family
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "fires"),
    [(480.0, True), (480.1, False), (429.0, True)],  # 500 − 480 = 20 = 0.2 × 100: fires (≥)
)
def test_mean_official_without_se_uses_effect_size_margin(value, fires):
    out = problems(cr_rows=[official(value=value), cr(value=500.0, se=2.0)])
    f = fired(out, "MEAN")
    assert len(f) == int(fires)
    if fires:
        r = f.iloc[0]
        assert np.isnan(r["p_value"]) and np.isnan(r["q_value"])
        ev = json.loads(r["evidence"])
        assert "官方报告未给出标准误，按差值是否超过0.2个标准差（20.0分）判定" in ev["note"]
        assert "官方报告未给出标准误，按差值是否超过" in evidence_text(r["evidence"])
        assert "显著" not in r["title"] and "官方报告未给出标准误" in r["title"]


@pytest.mark.parametrize(("value", "fires"), [(80.0, True), (80.1, False)])
def test_medium_official_without_se_uses_point_margin(value, fires):
    # 85 − 80 = 5 percentage points = the margin: fires; 4.9 does not
    rows = [official(indicator="pct_medium_or_above", value=value),
            cr(indicator="pct_medium_or_above", value=85.0)]  # fmt: skip
    f = fired(problems(cr_rows=rows), "MEDIUM")
    assert len(f) == int(fires)
    if fires:
        assert "5个百分点" in json.loads(f["evidence"].iloc[0])["note"]


@pytest.mark.parametrize(
    ("rule", "indicator", "value", "fires"),
    [
        ("HOMEWORK", "pct_homework_over_limit", 15.0, True),  # configured ceiling 10 (+5 points)
        ("HOMEWORK", "pct_homework_over_limit", 14.9, False),
        ("SLEEP", "pct_sleep_sufficient", 75.0, True),  # configured floor 80 (−5 points)
        ("SLEEP", "pct_sleep_sufficient", 75.1, False),
        # 视力不良 has no configured standard (the 2030 targets are 近视率, another measure):
        # without a national 视力不良 figure it is never a problem
        ("MYOPIA", "pct_myopia", 95.0, False),
        ("FITNESS", "pct_fitness_pass", 85.0, True),  # floor 90
        ("FITNESS", "pct_fitness_pass", 85.1, False),
    ],
)
def test_burden_official_without_se(rule, indicator, value, fires):
    out = problems(cr_rows=[official(indicator=indicator, subject="", value=value)])
    assert len(fired(out, rule)) == int(fires)


@pytest.mark.parametrize(
    ("g", "bench", "fires"),
    [(30.0, 10.0, True), (29.9, 10.0, False), (20.0, None, True), (19.9, None, False)],
)
def test_gap_official_without_se(g, bench, fires):
    # with a national gap: |g| − |b| ≥ 20; without one: |g| ≥ 20 (0.2 SD)
    k = dict(indicator="gap_mean_score", group_var="gender", group_value="female-male")
    rows = [official(value=-g, **k)]
    if bench is not None:
        rows.append(cr(value=-bench, se=1.0, **k))
    assert len(fired(problems(cr_rows=rows), "GAP")) == int(fires)


def test_no_se_rows_are_outside_the_bh_family():
    tested = [ind(estimate=483.0, se=10.0, n_schools=np.nan)]  # z = −1.7, p = Φ(−1.7) = 0.04457
    bench = [cr(value=500.0), cr(subject="science", value=500.0)]
    alone = cands(bench, tested)
    both = cands(bench + [official(subject="science", value=400.0)], tested)
    q = both.set_index("subject")["q_value"]
    # m = 1 in both cases: q = p = 0.04457 (Φ(−1.70), normal table)
    assert q["math"] == pytest.approx(0.04457, abs=1e-4)
    assert alone.set_index("subject")["q_value"]["math"] == pytest.approx(q["math"])
    assert np.isnan(q["science"]) and bool(both.set_index("subject")["fires"]["science"])


def test_official_with_se_is_still_tested():
    # an official value that prints an SE: t-test as before (no n_schools: normal reference)
    # z = (483 − 500)/10 = −1.7 → p = 0.04457 < 0.05 fires
    c = cands([official(value=483.0, se=10.0), cr(value=500.0)])
    r = c[c["rule_id"] == "MEAN"].iloc[0]
    assert r["p_value"] == pytest.approx(0.04457, abs=1e-4) and bool(r["fires"])
    assert np.isnan(r["margin"])


def test_icc_requires_significance_without_se_falls_back_to_the_value():
    from pipeline.config import build_params
    from pipeline.evidence import EvidenceParams

    p2 = build_params(
        EvidenceParams, {**EVIDENCE_RAW, "icc_requires_significance": True}, "evidence"
    )
    rows = [official(indicator="school_difference_rate", value=0.16),
            official(indicator="school_difference_rate", value=0.14, subject="science")]  # fmt: skip
    out = problems(cr_rows=rows, params=p2)
    assert list(fired(out, "ICC")["subject"]) == ["math"]


def test_demo_repro_other_year_reports_fire(tmp_path):
    """Repro from the review: 450125 grade-4 语文 official 429 vs national 503 (no SE) fires."""
    rows = [official(year=2022, county_code="450125", grade=4, subject="chinese", value=429.0),
            cr(year=2022, county_code="450125", grade=4, subject="chinese", value=503.0)]  # fmt: skip
    c = cands(rows, [ind(year=2020)])
    r = c[(c["rule_id"] == "MEAN") & (c["county_code"] == "450125")].iloc[0]
    assert bool(r["fires"]) and r["gap"] == pytest.approx(-74.0)


# ------------------------------------------------------------------------------------------------
# 2. One source for the regulatory thresholds: the indicators stage's verdicts
# ------------------------------------------------------------------------------------------------


def test_res_follows_the_indicators_verdict_and_threshold():
    out = problems(
        rb_rows=[
            # indicators configured 0.45 for this stage: 0.48 fails there, so it fires here
            rb(indicator="L1", cv=0.48, threshold=0.45, passes=False),
            # indicators configured 0.60: 0.55 passes there, so nothing here
            rb(indicator="L2", cv=0.55, threshold=0.60, passes=True),
            # 差异系数 not computable: indicators fails it, the title says data are missing
            rb(indicator="L3", cv=np.nan, passes=False),
        ]
    )
    f = fired(out, "RES").set_index("indicator")
    assert sorted(f.index) == ["L1", "L3"]
    assert "0.45" in f.loc["L1", "title"] and f.loc["L1", "benchmark"] == pytest.approx(0.45)
    assert "数据缺失" in f.loc["L3", "title"]


# primary-school values meeting every standard of params.yaml (indicators.resource_thresholds)
OK_PRIMARY = {"L1": 5.0, "L2": 1.2, "L3": 1.0, "L4": 5.0, "L5": 8.0, "L6": 2500.0, "L7": 2.5}


def test_school_follows_the_indicators_verdict():
    out = problems(
        sc_rows=[
            # a missing quantity: indicators fails the school although 6 are met
            school(
                school_id="S01",
                **{**OK_PRIMARY, "L3": np.nan},
                n_met=6,
                min_ratio_unmet=np.nan,
                passes=False,
            ),
            # indicators configured a looser rule: it passes there, so nothing here
            school(school_id="S02", n_met=5, min_ratio_unmet=0.9, passes=True),
        ]
    )
    f = fired(out, "SCHOOL")
    assert list(f["problem_id"]) == ["SCH-450107-S01"]
    assert "资源配置数据不全，无法判定" in f["title"].iloc[0]
    assert "每百名学生拥有体育、艺术专任教师数无数据" in f["title"].iloc[0]  # never read as unmet


def test_evidence_reads_no_copy_of_the_resource_thresholds():
    ev = RAW["evidence"]
    for key in ("res_cv_threshold", "school_min_met", "school_min_ratio"):
        assert key not in ev


def test_icc_threshold_is_declared_once():
    # 教督〔2017〕6号: 校际差异率 below 0.15 — one key, monitoring.icc_threshold; no stage keeps a copy
    assert RAW["monitoring"]["icc_threshold"] == 0.15
    assert "icc_threshold" not in RAW["indicators"] and "icc_threshold" not in RAW["evidence"]
    assert "quality_sdr_max" not in RAW["report"]


class _Stop(Exception):
    pass


@pytest.mark.parametrize(
    ("module", "section", "field"),
    [
        ("pipeline.indicators", "indicators", "icc_threshold"),
        ("pipeline.evidence", "evidence", "icc_threshold"),
        ("pipeline.report", "report", "quality_sdr_max"),
    ],
)
def test_stages_take_the_threshold_from_monitoring(tmp_path, monkeypatch, module, section, field):
    """Each stage's run() builds its params with monitoring.icc_threshold (set to 0.3 here)."""
    import importlib

    from pipeline.config import RunContext, make_context

    raw = yaml.safe_load((REPO / "params.yaml").read_text(encoding="utf-8"))
    raw["monitoring"]["icc_threshold"] = 0.3
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw, allow_unicode=True), "utf-8")
    seen = {}
    real = RunContext.section

    def spy(self, cls, name, **shared):
        params = real(self, cls, name, **shared)
        if name == section:
            seen["value"] = getattr(params, field)
            raise _Stop
        return params

    monkeypatch.setattr(RunContext, "section", spy)
    with pytest.raises(_Stop):
        importlib.import_module(module).run(make_context(tmp_path, quiet=True))
    assert seen["value"] == 0.3


# ------------------------------------------------------------------------------------------------
# 3. The change test uses the indicator's own SE, not the SE of the difference from the benchmark
# ------------------------------------------------------------------------------------------------


def test_change_test_uses_own_se_when_a_benchmark_se_exists():
    # now 470 (se 5) vs national 500 (se 5); last round 480 (se 5). Lower is worse:
    # z = (480 − 470) / sqrt(5² + 5²) = 10 / 7.071 = 1.414 (not 10 / sqrt(50 + 25) = 1.155)
    out = problems([ind(estimate=470.0, se=5.0)], [cr(value=500.0, se=5.0)], prev_rows=[prev()])
    ev = json.loads(out.set_index("previous_problem_id").loc["X", "evidence"])["previous"]
    assert ev["change_z"] == pytest.approx(10 / np.sqrt(50))
    # the problem's own SE column stays the SE of the difference from the benchmark
    assert out["se"].iloc[0] == pytest.approx(np.sqrt(50))
