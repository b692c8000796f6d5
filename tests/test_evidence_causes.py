"""Cause hints (pipeline/evidence/causes.py): related factors significantly associated with the
problem's outcome and significantly worse than national, worded as association.

Every p-value and q-value below is worked by hand (BH: q_(i) = min_{j>=i} m p_(j) / j)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
from test_evidence import cr, fired, ind, problems

from pipeline import schemas
from pipeline.evidence.causes import PREFIX, cause_hints, factor_tests


def frow(**kw) -> dict:
    d = dict(
        year=2022, county_code="450107", grade=8, subject="", factor="interest", level="student",
        kind="value", statistic="", estimate=2.70, se=0.05, df=19.0, p_value=1e-6, national=3.00,
        national_se=np.nan, n_students=600, n_schools=20, group_high="", group_low="",
        r_squared=np.nan, r_squared_se=np.nan, method="JKn", suppressed=False,
    )  # fmt: skip
    d.update(kw)
    return d


def coef(factor, estimate, p, subject="math", kind="coef", statistic="adjusted", **kw) -> dict:
    return frow(factor=factor, kind=kind, statistic=statistic, subject=subject, estimate=estimate,
                p_value=p, national=np.nan, **kw)  # fmt: skip


def factors(rows) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=schemas.FACTORS.names)


# an ACH problem: 8th-grade math mean 450 (SE 5) against the national 500 (z = -10)
ACH_IND = [ind(estimate=450.0, se=5.0)]
ACH_CR = [cr(value=500.0)]


def with_factors(rows, ind_rows=ACH_IND, cr_rows=ACH_CR):
    out = problems(ind_rows, cr_rows)
    hints = cause_hints(out, factors(rows), alpha=0.05)
    return out.assign(cause_hint=hints)


def test_hint_names_only_associated_worse_and_coherent_factors():
    rows = [
        # 学习兴趣: worse (2.70 < 3.00, lower is worse) and higher interest goes with higher scores
        frow(factor="interest"), coef("interest", 18.2, 1e-5),
        # 校外培训: "worse" (45% > 30%, higher is worse) but goes with HIGHER scores: incoherent
        frow(factor="tutoring", estimate=45.0, national=30.0), coef("tutoring", 12.0, 1e-5),
        # 师生关系: associated, but better than national
        frow(factor="relation", estimate=3.30, national=3.00), coef("relation", 10.0, 1e-5),
        # 校园欺凌: worse, not associated (p = 0.60)
        frow(factor="bullying", estimate=1.60, national=1.40), coef("bullying", -2.0, 0.60),
    ]  # fmt: skip
    out = with_factors(rows)
    hint = fired(out, "MEAN")["cause_hint"].iloc[0]
    assert hint.startswith(PREFIX)
    assert "学习兴趣指数本县为2.70，显著低于全国（3.00）" in hint
    assert "学习兴趣指数每高1，八年级数学成绩平均高18.2分（p<0.001）" in hint
    for other in ("校外培训", "师生关系", "校园欺凌"):
        assert other not in hint
    assert "因果" in hint and "导致" not in hint  # association wording


def test_hint_is_per_subject_and_grade():
    rows = [frow(factor="interest"), coef("interest", 18.2, 1e-5, subject="chinese")]
    out = with_factors(rows)
    assert fired(out, "MEAN")["cause_hint"].iloc[0] == ""  # math problem, chinese association


def test_bh_within_the_round_decides():
    # two adjusted-coefficient tests: p = 0.03 and 0.04 -> q = 0.04 and 0.04 (m = 2): both < 0.05.
    both = [frow(factor="interest"), coef("interest", 5.0, 0.03),
            frow(factor="confidence"), coef("confidence", 5.0, 0.04)]  # fmt: skip
    hint = fired(with_factors(both), "MEAN")["cause_hint"].iloc[0]
    assert "学习兴趣" in hint and "学习自信心" in hint
    # three tests: p = 0.03, 0.04, 0.90 -> q = 0.06, 0.06, 0.90: none below 0.05 (raw p would be)
    three = [*both, frow(factor="relation"), coef("relation", 1.0, 0.90)]
    assert fired(with_factors(three), "MEAN")["cause_hint"].iloc[0] == ""


def test_value_test_is_one_sided_in_the_worse_direction():
    # two-sided p = 0.04 in the worse direction -> one-sided 0.02; against it -> 0.98
    v = factors([frow(factor="interest", p_value=0.04),
                 frow(factor="confidence", estimate=3.2, p_value=0.04)])  # fmt: skip
    values, _ = factor_tests(v)
    got = dict(zip(values["factor"], values["p_worse"], strict=True))
    assert np.isclose(got["interest"], 0.02) and np.isclose(got["confidence"], 0.98)
    # BH over m = 2: q = (2·0.02/1, 0.98) -> 0.04 and 0.98
    assert np.allclose(sorted(values["q_worse"]), [0.04, 0.98])


def test_suppressed_estimates_give_no_hint():
    rows = [frow(factor="interest", suppressed=True), coef("interest", 18.2, 1e-5)]
    assert fired(with_factors(rows), "MEAN")["cause_hint"].iloc[0] == ""


def test_icc_hint_uses_school_factors_of_the_two_level_model():
    ind_rows = [ind(indicator="school_difference_rate", estimate=0.30, se=0.05)]
    rows = [
        frow(factor="p_pe_art", level="principal", estimate=40.0, national=80.0),
        coef("p_pe_art", 25.0, 0.001, kind="two_level", statistic="coef", level="principal"),
        # the student-level regression does not count for ICC
        frow(factor="interest"), coef("interest", 18.2, 1e-5),
    ]  # fmt: skip
    out = with_factors(rows, ind_rows, [])
    hint = fired(out, "ICC")["cause_hint"].iloc[0]
    assert "所在学校音体美专任教师配齐的学生比例本县为40.0%，显著低于全国（80.0%）" in hint
    assert (
        "分析八年级数学校际差异的两水平模型显示，音体美专任教师配齐的学校与未配齐的学校相比，"
        "学校平均成绩高25.0分（p=0.001）"
    ) in hint
    assert "学习兴趣" not in hint


def test_other_rules_get_no_hint_and_co_occurrence_is_gone():
    # a SLEEP and a HOMEWORK problem of the same county and grade: the old co-occurrence hint
    # ("可能相关：同一区县同一学段同时存在问题…") named the homework problem; it is gone.
    out = problems([
        ind(indicator="pct_homework_over_limit", subject="", estimate=40.0, se=2.0),
        ind(indicator="pct_sleep_sufficient", subject="", estimate=50.0, se=2.0),
    ])  # fmt: skip
    s = fired(out, "SLEEP")
    assert len(s) == 1 and json.loads(s["evidence"].iloc[0])["cause_hint"] == ""


def test_build_problems_carries_hints_into_evidence_json():
    from test_evidence import CITY, NAMES, PARAMS, frame

    from pipeline.evidence import build_problems

    out = build_problems(
        frame(ACH_IND, schemas.INDICATORS), frame([], schemas.RESOURCE_BALANCE),
        frame([], schemas.SCHOOL_COMPLIANCE), frame(ACH_CR, schemas.COUNTY_REPORTS),
        pd.DataFrame(), PARAMS, NAMES, CITY,
        factors([frow(factor="interest"), coef("interest", 18.2, 1e-5)]),
    )  # fmt: skip
    ev = json.loads(fired(out, "MEAN")["evidence"].iloc[0])
    assert ev["cause_hint"].startswith(PREFIX) and "学习兴趣" in ev["cause_hint"]


def test_hint_numbers_print_as_the_report_chapter_prints_them():
    # the report's decimals come from params.yaml (report.decimals): the hint must follow them
    from conftest import REPO

    from pipeline.catalogue import FACTORS
    from pipeline.config import make_context
    from pipeline.evidence.causes import value_text
    from pipeline.report import stage_params
    from pipeline.report.formats import Fmt

    fmt = Fmt(stage_params(make_context(REPO, quiet=True)).rules())
    for f in FACTORS.values():
        for x in (0.0, -0.004, -0.35, 2.345, 16.45, 73.05, 100.0):
            assert value_text(f, x) == fmt.factor(x, f.measure, f.index), (f.id, x)
