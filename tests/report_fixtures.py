"""A realistic set of processed tables for the report stage, independent of the other stages.

Shapes follow ``/work/shared/data-contract.md`` and :mod:`pipeline.schemas`; the evidence JSON and
status words follow the evidence stage. Values are drawn from a seeded generator within plausible
ranges, except a few planted cells the tests look for:

* ``SUPPRESSED_VALUES``: estimates of rows flagged ``suppressed`` (or below 10 students) that must
  never appear on a page, with values no other cell can produce (scores 400–600, rates < 0.5 …).
* ``SCRIPT_SCHOOL``: a school name that must be shown escaped.
* an official 校际差异率 row that must win over the computed one (both are shown).
* ``LEVEL_II_CELL``: level Ⅱ with a 校际差异率 of 0.015 (the issue's 「达标」 that is not met).
* ``NONPOS_CELL``: a local ANOVA 校际差异率 of −0.010 (printed as 0 with a footnote).
* ``HOMEWORK_NO_DIFF``: a grade-4 homework value on the better side of the national figure whose
  comparison says no significant difference (the report must not call it 优于全国).
* ``problems`` in the new contract (schemas.PROBLEMS, 待整改 / 整改中 / 建议销号) with close-outs;
  ``comparisons`` (schemas.COMPARISONS); ``tables(old_format=True)`` gives an older run's problems
  (no previous_* / unit columns, a 待复核 row, no comparisons file).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline import schemas
from pipeline.config import Paths
from pipeline.generations import stamp_existing
from pipeline.io import dump_json, table_to_bytes_stable

CITY = "450100"
REPORTS_FILE = "county_reports/reports.csv"
N_STUDENTS = 30  # validated student rows per county and year (validated())
SCHOOL_UNMET = ("L2", "L5")  # the first county's failing school (n_met 5): its two unmet items
OFFICIAL_MEAN_SHIFT = 2.5  # first county's printed grade-4 mean minus the computed one
SCRIPT_SCHOOL = "<script>alert(1)</script>"
# estimate -> how it would print if it leaked (scores 1 decimal, rates 3, percentages 1)
SUPPRESSED_VALUES = {"gap": "987.6", "unflagged_small": "876.5", "sdr": "0.987", "pct": "123.4%"}
OFFICIAL_SDR = 0.161  # official 450107 grade-8 Chinese 校际差异率 (computed one is 0.1404)
LOCAL_SDR = 0.1404
LEVEL_II_CELL = (4, "chinese")  # of the last county: level Ⅱ and 校际差异率 0.015
NONPOS_CELL = (8, "arts")  # of the last county: local 校际差异率 −0.010, CI −0.025～0.025
HOMEWORK_NO_DIFF = 12.8  # first county, grade 4: national 18.0, comparison "no_difference"
SLEEP_BETTER = 70.0  # first county, grade 4: national 60.0, comparison "better"
ROTATION = {2020: {4: ["science", "moral"], 8: ["science", "moral"]},
            2022: {4: ["chinese", "arts"], 8: ["chinese", "arts", "english"]}}  # fmt: skip
NAMES = {"450107": "西乡塘区", "450110": "武鸣区", "450125": "上林县", "450181": "横州市"}


def _ind_row(year, county, grade, subject, indicator, est, se, n_st, n_sc, gv="", gval="",
             source="computed", suppressed=False, method="jackknife_JKn") -> dict:  # fmt: skip
    lo = est - 1.96 * se if se == se else np.nan
    hi = est + 1.96 * se if se == se else np.nan
    return dict(
        year=year, county_code=county, grade=grade, subject=subject, indicator=indicator,
        group_var=gv, group_value=gval, estimate=est, se=se, ci_low=lo, ci_high=hi,
        n_students=n_st, n_schools=n_sc, method=method, source=source, suppressed=suppressed,
    )  # fmt: skip


def indicators(counties, years, rng) -> pd.DataFrame:
    rows = []
    for year in years:
        for county in [*counties, CITY]:
            k = len(counties) if county == CITY else 1
            for grade in (4, 8):
                n_sc = (12 if grade == 4 else 8) * k
                n_st = n_sc * 30
                for subject in ROTATION[year][grade]:
                    mean = float(rng.uniform(460, 540))
                    rows.append(
                        _ind_row(
                            year,
                            county,
                            grade,
                            subject,
                            "mean_score",
                            mean,
                            4.0 + rng.uniform(0, 3),
                            n_st,
                            n_sc,
                        )
                    )
                    shares = rng.dirichlet([2, 4, 5, 3]) * 100
                    for lv, sh in zip(schemas.LEVELS, shares, strict=True):
                        rows.append(
                            _ind_row(
                                year,
                                county,
                                grade,
                                subject,
                                f"pct_level_{lv}",
                                float(sh),
                                1.5,
                                n_st,
                                n_sc,
                            )
                        )
                    rows.append(
                        _ind_row(
                            year,
                            county,
                            grade,
                            subject,
                            "pct_medium_or_above",
                            float(shares[1:].sum()),
                            1.8,
                            n_st,
                            n_sc,
                        )
                    )
                    rows.append(
                        _ind_row(
                            year,
                            county,
                            grade,
                            subject,
                            "pct_good_or_above",
                            float(shares[2:].sum()),
                            2.0,
                            n_st,
                            n_sc,
                        )
                    )
                    rows.append(
                        _ind_row(
                            year,
                            county,
                            grade,
                            subject,
                            "achievement_level",
                            float(rng.integers(2, 5)),
                            np.nan,
                            n_st,
                            n_sc,
                            method="mean_vs_cuts",
                        )
                    )
                    sdr = (
                        0.1404
                        if (county == "450107" and grade == 8 and subject == "chinese")
                        else float(rng.uniform(0.06, 0.24))
                    )
                    for ind, val in (
                        ("school_difference_rate", sdr),
                        ("eta_squared", sdr + 0.02),
                        ("school_mean_cv", sdr / 3),
                    ):
                        rows.append(
                            _ind_row(
                                year,
                                county,
                                grade,
                                subject,
                                ind,
                                val,
                                0.02,
                                n_st,
                                n_sc,
                                method="anova_icc1",
                            )
                        )
                    for gv, gval in (("gender", "female-male"), ("urban_rural", "rural-urban"),
                                     ("left_behind", "true-false"), ("ses_quartile", "Q4-Q1")):  # fmt: skip
                        rows.append(
                            _ind_row(
                                year,
                                county,
                                grade,
                                subject,
                                "gap_mean_score",
                                float(rng.uniform(-35, 35)),
                                6.0,
                                n_st,
                                n_sc,
                                gv,
                                gval,
                            )
                        )
                    rows.append(
                        _ind_row(
                            year,
                            county,
                            grade,
                            subject,
                            "mean_score",
                            mean + 5,
                            5.0,
                            n_st // 2,
                            n_sc,
                            "gender",
                            "female",
                        )
                    )
                for ind, lo, hi in (("pct_homework_over_limit", 8, 40), ("pct_sleep_sufficient", 40, 85),
                                    ("pct_myopia", 20, 70), ("pct_fitness_pass", 80, 95)):  # fmt: skip
                    rows.append(
                        _ind_row(
                            year,
                            county,
                            grade,
                            "",
                            ind,
                            float(rng.uniform(lo, hi)),
                            1.7,
                            n_st,
                            n_sc,
                            method="jackknife_JKn",
                        )
                    )
                rows.append(
                    _ind_row(
                        year,
                        county,
                        grade,
                        "",
                        "mean_homework_minutes",
                        float(rng.uniform(40, 90)),
                        2.0,
                        n_st,
                        n_sc,
                    )
                )
    df = pd.DataFrame(rows)
    y = max(years)
    planted = [
        # flagged suppressed: a left-behind gap in grade 8 English of 上林县 with 7 students
        _ind_row(y, counties[-1], 8, "english", "gap_mean_score", 987.6, 9.0, 7, 3, "migrant", "true-false", suppressed=True),
        # not flagged but only 8 students: the report's safety net must hide it
        _ind_row(y, counties[-1], 4, "arts", "gap_mean_score", 876.5, 9.0, 8, 3, "migrant", "true-false"),
        # official 校际差异率 printed in the county report
        _ind_row(y, counties[0], 8, "chinese", "school_difference_rate", OFFICIAL_SDR, 0.015, 240, 8, source="official", method="official"),
    ]  # fmt: skip
    df = pd.concat([df, pd.DataFrame(planted)], ignore_index=True)
    # a suppressed 校际差异率 and a suppressed questionnaire percentage (flag only)
    sup = (df["year"] == y) & (df["county_code"] == counties[-1]) & (df["grade"] == 4)
    m1 = (
        sup
        & (df["subject"] == "arts")
        & (df["indicator"] == "school_difference_rate")
        & (df["source"] == "computed")
    )
    m2 = sup & (df["subject"] == "") & (df["indicator"] == "pct_myopia")
    df.loc[m1, ["estimate", "ci_low", "ci_high", "suppressed"]] = [0.987, 0.95, 1.02, True]
    df.loc[m2, ["estimate", "ci_low", "ci_high", "suppressed"]] = [123.4, 121.0, 125.8, True]
    last = (df["year"] == y) & (df["county_code"] == counties[-1]) & (df["source"] == "computed")
    g, s = LEVEL_II_CELL
    cell = last & (df["grade"] == g) & (df["subject"] == s)
    df.loc[cell & (df["indicator"] == "achievement_level"), "estimate"] = 2.0
    df.loc[cell & (df["indicator"] == "school_difference_rate"), ["estimate", "ci_low", "ci_high"]] = [0.015, 0.002, 0.05]  # fmt: skip
    g, s = NONPOS_CELL
    cell = last & (df["grade"] == g) & (df["subject"] == s)
    df.loc[cell & (df["indicator"] == "school_difference_rate"), ["estimate", "ci_low", "ci_high"]] = [-0.010, -0.025, 0.025]  # fmt: skip
    first = (df["year"] == y) & (df["county_code"] == counties[0]) & (df["grade"] == 4)
    df.loc[first & (df["indicator"] == "pct_homework_over_limit"), "estimate"] = HOMEWORK_NO_DIFF
    df.loc[first & (df["indicator"] == "pct_sleep_sufficient"), "estimate"] = SLEEP_BETTER
    return df.astype(
        {
            "year": "int64",
            "grade": "int64",
            "n_students": "int64",
            "n_schools": "int64",
            "suppressed": "bool",
        }
    )


def benchmarks(counties, years, rng) -> pd.DataFrame:
    rows = []
    for year in years:
        for county in counties:
            for grade in (4, 8):
                for subject in [*ROTATION[year][grade], ""]:
                    inds = (
                        [("mean_score", 500.0, 505.0), ("pct_medium_or_above", 80.0, 78.0)]
                        + [(f"pct_level_{lv}", v, v + 1 - i) for i, (lv, v) in enumerate(zip(schemas.LEVELS, (12.0, 35.0, 38.0, 15.0), strict=True))]
                        if subject else
                        [("pct_homework_over_limit", 18.0, 20.0), ("pct_sleep_sufficient", 60.0, 58.0),
                         ("pct_myopia", 45.0, 47.0), ("pct_fitness_pass", 88.0, 86.0)]
                    )  # fmt: skip
                    if subject:  # national gaps (the county report prints no gap for 城乡, 留守)
                        inds = [*inds, ("gap_mean_score|gender|female-male", 10.0, 9.0),
                                ("gap_mean_score|ses_quartile|Q4-Q1", 60.0, 55.0)]  # fmt: skip
                    for spec, nation, province in inds:
                        ind, gv, gval = (spec.split("|") + ["", ""])[:3]
                        for scope, val in (("nation", nation), ("province", province)):
                            rows.append(dict(
                                year=year, county_code=county, county_name=NAMES.get(county, county), grade=grade,
                                subject=subject, indicator=ind, group_var=gv, group_value=gval, scope=scope,
                                value=val, se=np.nan, n=np.nan, source_page="12", source_file=REPORTS_FILE,
                            ))  # fmt: skip
    return pd.DataFrame(rows).astype({"year": "int64", "grade": "int64"})


def resource_balance(counties, years, rng) -> pd.DataFrame:
    rows = []
    for year in years:
        for county in counties:
            for stage, thr, n in (("primary", 0.50, 12), ("junior", 0.45, 8)):
                for i in range(1, 8):
                    cv = float(rng.uniform(0.15, 0.45)) if i != 5 else float(thr + 0.08)
                    rows.append(dict(
                        year=year, county_code=county, stage=stage, indicator=f"L{i}",
                        county_value=float(rng.uniform(1, 10)) * (1000 if i == 6 else 1), cv=cv,
                        threshold=thr, passes=cv <= thr, n_schools=n,
                    ))  # fmt: skip
    return pd.DataFrame(rows).astype({"year": "int64", "n_schools": "int64"})


def school_compliance(counties, years, rng) -> pd.DataFrame:
    rows = []
    for year in years:
        for county in counties:
            for stage, n in (("primary", 12), ("junior", 8)):
                for j in range(n):
                    sid = f"{county}{'P' if stage == 'primary' else 'J'}{j + 1:02d}"
                    name = f"{NAMES.get(county, county)}第{j + 1}{'小学' if stage == 'primary' else '中学'}"
                    if county == counties[0] and stage == "primary" and j == 3:
                        name = SCRIPT_SCHOOL
                    n_met = 7 if j % 4 else 5
                    rows.append(dict(
                        year=year, county_code=county, school_id=sid, school_name=name, stage=stage,
                        **{f"L{i}": float(rng.uniform(1, 9)) for i in range(1, 8)},
                        n_met=n_met, min_ratio_unmet=np.nan if n_met == 7 else 0.78, passes=n_met >= 6,
                    ))  # fmt: skip
    return pd.DataFrame(rows).astype({"year": "int64", "n_met": "int64"})


def _ev(rule, rows, bench=(), previous=None, note="", cause="", measures=(), trend=None,
        unmatched=False) -> str:  # fmt: skip
    """Evidence JSON in the evidence stage's new shape (keys listed in the contract)."""
    return json.dumps(
        {"rule_id": rule, "note": note, "measures": list(measures), "rows": list(rows),
         "benchmark_rows": list(bench), "cause_hint": cause, "previous": previous,
         "trend": trend, "unmatched": unmatched},
        ensure_ascii=False, sort_keys=True,
    )  # fmt: skip


def _measure(rule, indicator, value, benchmark, bench_label, gap, se, p, q, fires) -> dict:
    return dict(rule_id=rule, indicator=indicator, value=value, benchmark=benchmark,
                bench_label=bench_label, gap=gap, se=se, p_value=p, q_value=q, fires=fires)  # fmt: skip


def school_measure(stage: str, unmet: tuple[str, ...]) -> dict:
    """A SCHOOL problem's measure as the evidence stage writes it: each of L1–L7 met or not."""
    return {"rule_id": "SCHOOL", "stage": stage,
            "details": [{"indicator": f"L{i}", "met": f"L{i}" not in unmet, "standard": 1.0,
                         "value": 0.5 if f"L{i}" in unmet else 1.5} for i in range(1, 8)]}  # fmt: skip


def _units(lead, *support) -> dict:
    return dict(
        lead_unit=lead,
        support_units="、".join(support),
        responsible_unit=f"牵头：{lead}" + (f"；配合：{'、'.join(support)}" if support else ""),
    )


def problems(counties, years, ind: pd.DataFrame, rng) -> pd.DataFrame:
    """The new contract: problems (待整改 / 整改中) and close-outs (建议销号, severity empty)."""
    rows = []
    none = dict(previous_problem_id="", previous_year=pd.NA, previous_value=np.nan,
                change_p=np.nan, change_q=np.nan)  # fmt: skip
    for year in years:
        for county in counties:
            name = NAMES.get(county, county)
            sdr = ind[(ind["year"] == year) & (ind["county_code"] == county) & (ind["grade"] == 8)
                      & (ind["indicator"] == "school_difference_rate") & (ind["source"] == "computed")].iloc[0]  # fmt: skip
            subj = schemas.SUBJECT_LABELS[sdr["subject"]]
            base = dict(
                year=year,
                county_code=county,
                group_var="",
                group_value="",
                deadline="待定（请在整改方案中填写完成时限）",
            )
            ev_row = {k: (v.item() if hasattr(v, "item") else v) for k, v in sdr.items()}
            icc_id = f"ICC-{county}-G8-{sdr['subject']}"
            prev = {"problem_id": f"NN{year - 2}-{county[-3:]}", "year": year - 2, "value": 0.2,
                    "se": 0.03, "change_z": -2.1, "change_p": 0.02, "change_q": 0.03,
                    "test": "两侧 z 检验"}  # fmt: skip
            hw = {"year": year, "grade": 8, "subject": "", "indicator": "pct_homework_over_limit",
                  "estimate": 30.0, "se": 1.7, "n_students": 240, "n_schools": 8, "suppressed": False}  # fmt: skip
            rows += [
                dict(base, problem_id=icc_id, domain="均衡与公平", rule_id="ICC",
                     title=f"{name}八年级{subj}校际差异率为{sdr['estimate']:.3f}，未达到优质均衡“低于0.15”的要求",
                     grade=8, subject=sdr["subject"], indicator="school_difference_rate", value=0.2, benchmark=0.15,
                     gap=0.05, se=0.02, p_value=0.01, q_value=0.02, severity="高",
                     evidence=_ev("ICC", [ev_row], cause="同期资源配置差异系数超标（L5）", previous=prev,
                                  trend=[{"year": year - 2, "value": 0.2}, {"year": year, "value": 0.17}]),
                     previous_status="improved", previous_problem_id=prev["problem_id"], previous_year=year - 2,
                     previous_value=0.2, change_p=0.02, change_q=0.03, **_units("基教科", "教研室", "人事科"),
                     status=schemas.STATUS_OPEN),
                dict(base, problem_id=f"RES-{county}-primary-L5", domain="资源配置", rule_id="RES",
                     title=f"{name}小学“生均体育运动场馆面积”差异系数为0.580，超过优质均衡标准0.50",
                     grade=pd.NA, subject="", indicator="L5", value=0.58, benchmark=0.5, gap=0.08, se=np.nan,
                     p_value=np.nan, q_value=np.nan, severity="中",
                     evidence=_ev("RES", [{"year": year, "county_code": county, "stage": "primary", "indicator": "L5",
                                           "cv": 0.58, "county_value": 7.2, "threshold": 0.5, "n_schools": 12}]),
                     previous_status="new", **none, **_units("计财科", "发改局", "财政局"), status=schemas.STATUS_NEW),
                dict(base, problem_id=f"HOMEWORK-{county}-G8", domain="课业负担与身心健康", rule_id="HOMEWORK",
                     title=f"{name}八年级学生书面作业超时比例高于全国",
                     grade=8, subject="", indicator="pct_homework_over_limit", value=30.0, benchmark=18.0, gap=12.0,
                     se=1.7, p_value=0.001, q_value=0.004, severity="中",
                     evidence=_ev("HOMEWORK", [hw], bench=[{"scope": "nation", "value": 18.0, "se": None, "source_page": "12"}],
                                  measures=[_measure("HOMEWORK", "pct_homework_over_limit", 30.0, 18.0, "全国", 12.0, 1.7, 0.001, 0.004, True)]),
                     previous_status="worse", previous_problem_id=f"HOMEWORK-{county}-G8", previous_year=year - 2,
                     previous_value=22.0, change_p=0.01, change_q=0.02, **_units("基教科", "教研室"),
                     status=schemas.STATUS_OPEN),
                dict(base, problem_id=f"FITNESS-{county}-G4", domain="课业负担与身心健康", rule_id="FITNESS",
                     title=f"{name}四年级学生体质健康达标比例偏低（本轮未复测，状态沿用上一轮）",
                     grade=4, subject="", indicator="pct_fitness_pass", value=np.nan, benchmark=np.nan, gap=np.nan,
                     se=np.nan, p_value=np.nan, q_value=np.nan, severity="低",
                     evidence=_ev("FITNESS", [], note="本轮没有与该问题对应的数据，状态沿用上一轮"),
                     previous_status="not re-measured", previous_problem_id="", previous_year=year - 2,
                     previous_value=80.0, change_p=np.nan, change_q=np.nan, **_units("体卫艺科"),
                     status=schemas.STATUS_OPEN),
                # close-outs: earlier problems that now meet their standard (not problems)
                dict(base, problem_id=f"RES-{county}-junior-L2", domain="资源配置", rule_id="RES",
                     title=f"{name}初中“每百名学生拥有县级及以上骨干教师数”差异系数为0.400，已达到优质均衡标准（不超过0.45）",
                     grade=pd.NA, subject="", indicator="L2", value=0.40, benchmark=0.45, gap=-0.05, se=np.nan,
                     p_value=np.nan, q_value=np.nan, severity="",
                     evidence=_ev("RES", [], previous={"problem_id": f"RES-{county}-junior-L2", "year": year - 2,
                                                       "value": 0.55, "census": True}),
                     previous_status="resolved", previous_problem_id="", previous_year=year - 2,
                     previous_value=0.55, change_p=np.nan, change_q=np.nan, **_units("人事科", "教研室"),
                     status=schemas.STATUS_CLOSABLE),
                dict(base, problem_id=f"SLEEP-{county}-G8", domain="课业负担与身心健康", rule_id="SLEEP",
                     title=f"{name}八年级学生睡眠达标比例已不低于全国",
                     grade=8, subject="", indicator="pct_sleep_sufficient", value=61.2, benchmark=60.0, gap=1.2,
                     se=1.7, p_value=0.7, q_value=0.8, severity="",
                     evidence=_ev("SLEEP", [], measures=[_measure("SLEEP", "pct_sleep_sufficient", 61.2, 60.0, "全国", 1.2, 1.7, 0.7, 0.8, False)]),
                     previous_status="resolved", previous_problem_id="", previous_year=year - 2,
                     previous_value=44.5, change_p=0.001, change_q=0.004, **_units("基教科", "体卫艺科"),
                     status=schemas.STATUS_CLOSABLE),
            ]  # fmt: skip
            if county == counties[-1] and year == max(years):  # the planted cell's round
                g, s = LEVEL_II_CELL
                mean = ind[(ind["year"] == year) & (ind["county_code"] == county) & (ind["grade"] == g)
                           & (ind["subject"] == s) & (ind["indicator"] == "mean_score") & (ind["group_var"] == "")].iloc[0]  # fmt: skip
                rows.append(dict(
                    base, problem_id=f"ACH-{county}-G{g}-{s}", domain="学业质量", rule_id="ACH",
                    title=f"{name}四年级语文学业水平为水平Ⅱ，未达到优质均衡要求的水平Ⅲ；平均成绩显著低于全国",
                    grade=g, subject=s, indicator="mean_score", value=float(mean["estimate"]), benchmark=500.0,
                    gap=float(mean["estimate"]) - 500.0, se=5.0, p_value=0.004, q_value=0.01, severity="高",
                    evidence=_ev("ACH", [], measures=[
                        _measure("LEVEL", "achievement_level", 2.0, 3.0, "水平Ⅲ", -1.0, None, None, None, True),
                        _measure("MEAN", "mean_score", float(mean["estimate"]), 500.0, "全国", float(mean["estimate"]) - 500.0, 5.0, 0.004, 0.01, True),
                        _measure("MEDIUM", "pct_medium_or_above", 76.0, 80.0, "全国", -4.0, 1.8, 0.02, 0.06, False),
                    ]),
                    previous_status="new", **none, **_units("教研室", "基教科"), status=schemas.STATUS_NEW,
                ))  # fmt: skip
            if county == counties[0]:
                sc_row = {"year": year, "county_code": county, "school_id": f"{county}P04", "school_name": SCRIPT_SCHOOL,
                          "stage": "primary", "n_met": 5, "min_ratio_unmet": 0.78, "passes": False}  # fmt: skip
                rows.append(dict(
                    base, problem_id=f"SCH-{county}-{county}P04", domain="资源配置", rule_id="SCHOOL",
                    title=f"{name}{SCRIPT_SCHOOL}（小学）资源配置5项达标，未达到优质均衡学校要求",
                    grade=pd.NA, subject="", indicator="school_compliance", value=5.0, benchmark=6.0, gap=-1.0, se=np.nan,
                    p_value=np.nan, q_value=np.nan, severity="中", evidence=_ev("SCHOOL", [sc_row], measures=[school_measure("primary", SCHOOL_UNMET)]),
                    previous_status="new", **none, **_units("计财科"), status=schemas.STATUS_NEW,
                ))  # fmt: skip
    df = pd.DataFrame(rows)
    df = df.assign(
        target=[f"{t[:12]}…达到规定的标准" for t in df["title"]],
        # one text per problem (its number in it), so a test can find every one on the page
        suggestion=[
            f"针对{pid}，由牵头单位制定整改方案，下一轮监测时复查。" for pid in df["problem_id"]
        ],
    )
    # any column the contract gains later: empty, so the fixture keeps the contract's shape
    for c in schemas.PROBLEMS.columns:
        if c.name not in df:
            df[c.name] = "" if c.dtype == "str" else np.nan
    df = df[schemas.PROBLEMS.names]
    return df.astype({"year": "int64", "grade": "Int64", "previous_year": "Int64"})


# the columns of problems.parquet before the evidence stage's rewrite
OLD_PROBLEM_COLUMNS = [
    "problem_id", "year", "county_code", "domain", "rule_id", "title", "grade", "subject",
    "indicator", "group_var", "group_value", "value", "benchmark", "gap", "se", "p_value", "q_value",
    "severity", "evidence", "previous_status", "responsible_unit", "deadline", "status",
]  # fmt: skip


def problems_old_format(new: pd.DataFrame) -> pd.DataFrame:
    """An older evidence run's problems.parquet: no previous_* / unit columns, close-outs with a
    severity and previous_status 'improved', a 待复核 row, evidence with a top-level
    benchmark_label and no measures."""

    def old_ev(text: str) -> str:
        obj = json.loads(text)
        label = next(
            (m["bench_label"] for m in obj.pop("measures", []) if m.get("bench_label")), ""
        )
        obj.pop("trend", None)
        obj.pop("unmatched", None)
        return json.dumps({**obj, "benchmark_label": label}, ensure_ascii=False, sort_keys=True)

    closed = new["status"] == schemas.STATUS_CLOSABLE
    old = new.assign(
        evidence=new["evidence"].map(old_ev),
        severity=new["severity"].where(~closed, "低"),
        previous_status=new["previous_status"].where(~closed, "improved"),
    )
    recheck = old["rule_id"].eq("SLEEP") & closed
    old.loc[recheck & old["county_code"].eq(old["county_code"].iloc[0]), "status"] = "待复核"
    return old[OLD_PROBLEM_COLUMNS]


def comparisons(counties, years, ind: pd.DataFrame, probs: pd.DataFrame) -> pd.DataFrame:
    """The evidence stage's tests (schemas.COMPARISONS), with verdicts chosen per planted cell:

    * MEAN per cell: worse below 480, better above 520, else no difference;
    * GAP: gender no difference, 城乡 better (no national gap: tested against the standard),
      留守 untested, SES worse;
    * burden: grade-8 homework worse (the HOMEWORK problem), grade-4 homework no difference (the
      first county's value is on the better side), grade-4 sleep better, grade-8 sleep no difference,
      myopia no difference, grade-4 fitness untested, grade-8 fitness no row at all.
    """
    nation = {"pct_homework_over_limit": 18.0, "pct_sleep_sufficient": 60.0, "pct_myopia": 45.0,
              "pct_fitness_pass": 88.0}  # fmt: skip
    burden_verdict = {
        (8, "pct_homework_over_limit"): "worse", (4, "pct_homework_over_limit"): "no_difference",
        (4, "pct_sleep_sufficient"): "better", (8, "pct_sleep_sufficient"): "no_difference",
        (4, "pct_myopia"): "no_difference", (8, "pct_myopia"): "no_difference",
        (4, "pct_fitness_pass"): "untested",
    }  # fmt: skip
    rules = {"pct_homework_over_limit": "HOMEWORK", "pct_sleep_sufficient": "SLEEP",
             "pct_myopia": "MYOPIA", "pct_fitness_pass": "FITNESS"}  # fmt: skip
    gap_verdict = {"gender": ("no_difference", "nation", 10.0), "urban_rural": ("better", "standard", 20.0),
                   "left_behind": ("untested", "nation", np.nan), "ses_quartile": ("worse", "nation", 60.0)}  # fmt: skip
    ids = set(probs["problem_id"])
    rows = []
    comp = ind[
        (ind["source"] == "computed") & ind["county_code"].isin(counties) & ind["year"].isin(years)
    ]
    for r in comp.to_dict("records"):
        key = dict(year=r["year"], county_code=r["county_code"], grade=r["grade"], subject=r["subject"],
                   indicator=r["indicator"], group_var=r["group_var"], group_value=r["group_value"])  # fmt: skip
        v, scope, bench, rule, pid = None, "nation", np.nan, "", ""
        if r["indicator"] == "mean_score" and r["group_var"] == "":
            rule, bench = "MEAN", 500.0
            v = (
                "worse"
                if r["estimate"] < 480
                else "better"
                if r["estimate"] > 520
                else "no_difference"
            )
            pid = f"ACH-{r['county_code']}-G{r['grade']}-{r['subject']}"
        elif r["indicator"] == "gap_mean_score" and r["group_var"] in gap_verdict:
            rule = "GAP"
            v, scope, bench = gap_verdict[r["group_var"]]
        elif r["indicator"] in rules and (r["grade"], r["indicator"]) in burden_verdict:
            rule, bench = rules[r["indicator"]], nation[r["indicator"]]
            v = burden_verdict[(r["grade"], r["indicator"])]
            pid = f"{rule}-{r['county_code']}-G{r['grade']}"
        if v is None:
            continue
        fires = v == "worse"
        rows.append(dict(
            key, rule_id=rule, value=r["estimate"], benchmark=bench, bench_scope=scope,
            gap=r["estimate"] - bench, se=r["se"], df=11.0, p_value=0.01 if fires else 0.4,
            q_value=0.02 if fires else 0.5, p_better=0.01 if v == "better" else 0.6,
            q_better=0.02 if v == "better" else 0.7, verdict=v, fires=fires,
            problem_id=pid if fires and pid in ids else "",
        ))  # fmt: skip
    return pd.DataFrame(rows)[schemas.COMPARISONS.names].astype({"year": "int64", "grade": "Int64"})


def county_values(counties, years, ind: pd.DataFrame) -> pd.DataFrame:
    """The first county's own values as its county report prints them (``scope = county``, 2
    decimals): its grade-4 mean of the first subject printed ``OFFICIAL_MEAN_SHIFT`` higher than
    computed (a discrepancy the report must list), its 中等及以上 share as computed (no discrepancy).
    """
    rows = []
    for year in years:
        subject = ROTATION[year][4][0]
        for indicator, shift in (("mean_score", OFFICIAL_MEAN_SHIFT), ("pct_medium_or_above", 0.0)):
            r = ind[(ind["year"] == year) & (ind["county_code"] == counties[0]) & (ind["grade"] == 4)
                    & (ind["subject"] == subject) & (ind["indicator"] == indicator)
                    & (ind["group_var"] == "")].iloc[0]  # fmt: skip
            rows.append(dict(
                year=year, county_code=counties[0], county_name=NAMES.get(counties[0], counties[0]), grade=4,
                subject=subject, indicator=indicator, group_var="", group_value="", scope="county",
                value=round(float(r["estimate"]) + shift, 2), se=np.nan, n=np.nan, source_page="第6页",
                source_file=REPORTS_FILE,
            ))  # fmt: skip
    return pd.DataFrame(rows).astype({"year": "int64", "grade": "int64"})


def validated(counties, years) -> dict[str, pd.DataFrame]:
    """The key columns of the validated tables (what the report counts per year, county and file):
    ``N_STUDENTS`` students per county and year, two scores each (scores carry no county), 20
    school sections per county and year."""
    students, scores, schools = [], [], []
    for year in years:
        for county in counties:
            for k in range(N_STUDENTS):
                sid = f"{county}-{year}-{k:03d}"
                students.append(dict(year=year, student_id=sid, county_code=county,
                                     source_file=f"students/students_{year}.csv"))  # fmt: skip
                scores += [
                    dict(year=year, student_id=sid, source_file=f"scores/scores_{year}.csv")
                ] * 2
            schools += [
                dict(year=year, county_code=county, source_file=f"schools/schools_{year}.xlsx")
            ] * 20
    return {
        "students": pd.DataFrame(students).astype({"year": "int64"}),
        "scores": pd.DataFrame(scores).astype({"year": "int64"}),
        "schools": pd.DataFrame(schools).astype({"year": "int64"}),
    }


def quarantine(counties, years) -> pd.DataFrame:
    """County i (0-based) loses i + 1 student rows and 1 score row per year."""
    rows = []
    for year in years:
        for i, county in enumerate(counties):
            for j in range(i + 1):
                rows.append(dict(table="students", source_file=f"students/students_{year}.csv", source_row=10 + j, column="weight",
                                 rule="weight_positive", message="学生权重必须大于 0", raw_values="{}", stage="validate",
                                 county_code=county, year=year))  # fmt: skip
            rows.append(dict(table="scores", source_file=f"scores/scores_{year}.csv", source_row=5, column="scale_score",
                             rule="score_range", message="量尺分数 9999 超出合理范围", raw_values="{}", stage="validate",
                             county_code=county, year=year))  # fmt: skip
    return pd.DataFrame(rows).astype({"year": "int64", "source_row": "int64"})


def manifest(synthetic=True, years=(2020, 2022)) -> dict:
    files = {
        REPORTS_FILE: {
            "format": "csv",
            "encoding": "utf-8",
            "header_row": 1,
            "rows_read": 900,
            "rows_kept": 900,
            "rows_quarantined": 0,
            "sha256": "ef",
        }
    }
    for y in years:
        files |= {
            f"students/students_{y}.csv": {
                "format": "csv",
                "encoding": "utf-8-sig",
                "header_row": 1,
                "rows_read": 2400,
                "rows_kept": 2396,
                "rows_quarantined": 4,
                "sha256": "ab",
            },
            f"scores/scores_{y}.csv": {
                "format": "csv",
                "encoding": "gbk",
                "delimiter": "tab",
                "header_row": 1,
                "rows_read": 4800,
                "rows_kept": 4800,
                "rows_quarantined": 0,
                "sha256": "a1",
            },
            f"schools/schools_{y}.xlsx": {
                "format": "xlsx",
                "encoding": None,
                "header_row": 3,
                "rows_read": 80,
                "rows_kept": 80,
                "rows_quarantined": 0,
                "sha256": "cd",
            },
        }
    return {
        "dataset": {"synthetic": synthetic, "label": "南宁市义务教育质量监测演示数据（合成，参数为示意值）"},
        "files": files,
    }  # fmt: skip


def tables(counties=("450107", "450125"), years=(2022,), seed=7, old_format=False) -> dict:
    """Every input of the report stage. ``old_format``: problems.parquet as an older evidence run
    wrote it and no comparisons.parquet (``"comparisons": None``)."""
    rng = np.random.default_rng(seed)
    counties, years = list(counties), list(years)
    ind = indicators(counties, years, rng)
    probs = problems(counties, years, ind, rng)
    reports = pd.concat([benchmarks(counties, years, rng), county_values(counties, years, ind)])
    return {
        "indicators": ind,
        "county_reports": reports.reset_index(drop=True),
        "validated": validated(counties, years),
        "resource_balance": resource_balance(counties, years, rng),
        "school_compliance": school_compliance(counties, years, rng),
        "problems": problems_old_format(probs) if old_format else probs,
        "comparisons": None if old_format else comparisons(counties, years, ind, probs),
        "quarantine": quarantine(counties, years),
        "summary": {"tables": {"students": {"rows_in": 2400, "rows_set_aside": 4}}},
        "manifest": manifest(),
    }


def write_project(
    root: Path,
    counties=("450107", "450125"),
    years=(2022,),
    publish=True,
    tables: dict | None = None,
) -> dict:
    """Write the fixture tables (or ``tables``, e.g. edited ones) where the report stage reads them
    (paths from pipeline.config)."""
    import pyarrow.parquet as pq

    t = _tables(counties, years) if tables is None else tables
    p = Paths(Path(root))
    p.validated_dir.mkdir(parents=True, exist_ok=True)
    p.validation_dir.mkdir(parents=True, exist_ok=True)
    for name, path in (("indicators", p.indicators), ("resource_balance", p.resource_balance),
                       ("school_compliance", p.school_compliance), ("problems", p.problems),
                       ("county_reports", p.validated("county_reports")), ("quarantine", p.validation_quarantine)):  # fmt: skip
        pq.write_table(table_to_bytes_stable(t[name]), path)
    if t.get("comparisons") is not None:
        pq.write_table(table_to_bytes_stable(t["comparisons"]), p.comparisons)
    if t.get("factors") is not None:  # 相关因素 (tests/test_report_factors.py builds them)
        pq.write_table(table_to_bytes_stable(t["factors"]), p.factors)
    for name, df in (t.get("validated") or {}).items():
        pq.write_table(table_to_bytes_stable(df), p.validated(name))
    p.validation_summary.write_text(dump_json(t["summary"]), encoding="utf-8")
    p.ingest_manifest.write_text(dump_json(t["manifest"]), encoding="utf-8")
    if publish:
        p.validation_pages.mkdir(parents=True, exist_ok=True)
        for y in years:
            (p.validation_pages / f"validation_{y}.html").write_text(
                "<html><body>校验</body></html>", encoding="utf-8"
            )
            (p.evidence_dir / str(y) / "ledger").mkdir(parents=True, exist_ok=True)
            (p.evidence_dir / str(y) / "ledger" / "450107.xlsx").write_bytes(b"PK-fixture")
    stamp_existing(root, "evidence")  # as if eqm ingest … eqm evidence had written these files
    return t


_tables = tables  # write_project's ``tables`` argument shadows the function
