"""Synthetic demo round (``eqm demo-data``): what the offices' raw files look like, with known truth.

The generator builds a small synthetic world — every compulsory school of each demo county, a
PPS sample of 12 primary + 8 junior schools per county per round, ~30 students per sampled school,
scores from a two-level model with known parameters, questionnaire answers, school resource
statistics, the counties' aggregate NAEQ reports and the 2020 round's problem list — and writes it
into ``data/raw/`` in the forms offices really send. This module is the only code allowed to write
there: demo data plays the role of the raw files. Everything is a deterministic function of
``demo.seed`` (numpy ``Generator`` per component), so the same seed gives byte-identical files.

Files written (relative to ``data/raw/``)::

    README.txt                                      says the data are synthetic
    sources.yaml                                    dataset label + per-file hints an office would need
    demo_truth.json                                 true parameters, planted problems, planted defects
    .eqm-demo.json                                  marker: the files this generator wrote (sha256)
    students/2020年学生数据_合成演示.csv            GBK, CRLF, Chinese headers, codes 1/2, 1/2/3, 1/0,
                                                    PII 姓名/身份证号, 学籍号, wide 科学成绩/科学水平/
                                                    德育成绩/德育水平 (水平 as 待提高/中等/良好/优秀);
                                                    the 横州市 rows carry the old name 横县, no code
    students/2022年学生数据_合成演示.xlsx           title row 1, header row 2; 四年级/八年级, 男/女,
                                                    城区/镇区/乡村, 是/否
    scores/2022年学业成绩_合成演示.csv              UTF-8 with BOM, long: 学籍号, 学科 (语文/艺术/英语),
                                                    量尺分数, 水平 (Ⅰ–Ⅳ); no year column (sources.yaml)
    schools/2020年学校办学条件_合成演示.xlsx        title + note rows, header row 3, 教学仪器设备值(万元),
                                                    九年一贯制 as one row (小学/初中在校生数)
    schools/2022年学校办学条件_合成演示.sav         SPSS, value labels for 学段/学校类别/教学点
    county_reports/县级监测报告汇总_合成演示.csv    UTF-8, long, Chinese headers, 范围 本县/全省/全国
    previous_problems/2020年监测问题清单_合成演示.xlsx  sheet 1 填表说明, sheet 2 问题清单 (sources.yaml)
    teachers/2020年教师问卷_合成演示.csv            GBK, answer words (从不…/非常同意…), 任教年级 4/8,
                                                    道德与法治, PII 姓名/身份证号 (factor_forms.py)
    teachers/2022年教师问卷_合成演示.xlsx           title row, 四年级/八年级, 音乐/美术, items 1–4
    principals/2020年校长问卷_合成演示.xlsx         title row, 是/否, answer words
    principals/2022年校长问卷_合成演示.sav          SPSS, value labels 是/否 and 从不 … 经常

The student files also carry the student questionnaire's factor columns (是否参加学科类校外培训,
锻炼/阅读分钟, 学习兴趣1 … 心理健康4: numbers in the 2020 CSV, answer words in the 2022 xlsx), and
the county reports the factors' national values (``factor_<id>``, 全国/全省). Related factors
(相关因素, issue 14) are planted WITHOUT touching a score: they are built from the score model's
own residuals and school effects (:mod:`pipeline.demo.factors`, truth in ``demo_truth.json`` →
``factors``).

The score model, per year × county × grade × subject (NAEQ scale, total SD 100)::

    y_ij = a + β_u[ur_j] + β_ses·ses_ij + β_lb·lb_ij + β_f·female_ij + u_j + e_ij,
    ses_ij = s̄_j + 0.8 z_ij,  u_j ~ N(0, σ_u²),  e_ij ~ N(0, σ_e²)

with σ_u² and σ_e² chosen so that the total between-school variance τ² (of the school expected
means over the county's sampling frame) and the within-school variance σ² give the county's
intended ICC = τ² / (τ² + σ²), with τ² + σ² = 100². The realised u_j have enrolment-weighted mean 0
within each 城乡 group of the frame, so the frame's population mean is exactly mu and school
effects plant no urban-rural gap (and are uncorrelated with the schools' mean SES, so they plant no
SES gap). The truth sidecar records a, the effects, τ², σ², the ICC, the
ICC(1) of the generated sample, and the population mean, level shares and subgroup gaps over the
frame (what a design-based estimate targets).

Planted on purpose (``demo_truth.json`` → ``planted``): two counties with between-school share above
0.15 and two clearly below; one county far below the national mean; one county over the homework
limit and short of sleep; some L1–L7 差异系数 failing (some fixed by 2022, some not); schools failing
the 6-of-7 + 85 % rule; and, when ``demo.with_defects``, four row defects (``defects``). Subgroup
gaps, myopia and fitness are better than the national benchmarks printed in the reports by a margin
the sample resolves. ``demo_truth.json`` → ``findings`` restates this in the evidence stage's rule
ids and keys: every testable cell classified from its TRUE value as ``planted``, ``clearly_fine``
or ``ambiguous`` (none on the default seed), which ``tests/test_demo_findings.py`` checks against
``problems.parquet``.

xlsx files are written with xlsxwriter (fast, byte-stable with a fixed creation time); the SPSS
header's creation time is fixed too, so reruns give identical bytes.

Sampling: schools by systematic PPS on grade enrolment (certainty schools taken first), students
with equal probability within school; weight = 1 / (π_school · π_student) times a small
non-response adjustment (Lohr, *Sampling: Design and Analysis*, 2nd ed., §6.2).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import io
import json
import logging
import math
import os
import shutil
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from pipeline.config import INIT_MARKER, MonitoringParams, RunContext
from pipeline.demo import factor_forms, factor_schools, factors
from pipeline.errors import EqmError
from pipeline.indicators.params import (
    DEFAULT_CV_THRESHOLDS,
    DEFAULT_RESOURCE_THRESHOLDS,
    RESOURCE_KEYS,
)
from pipeline.io import dump_json, outputs
from pipeline.schemas import GRADE_LABELS, SUBJECT_LABELS, URBAN_RURAL_LABELS

log = logging.getLogger(__name__)

SYNTHETIC_LABEL = "合成演示数据（eqm demo-data 生成，非真实监测结果）"
MARKER = ".eqm-demo.json"
# guides and placeholders in data/raw or its folders (the repository's data/raw/README.md, the
# folder guides of `eqm init`): kept, in place
KEPT_RAW_FILES = frozenset({"README.md", ".gitkeep"})
JUNK_FILES = frozenset({".DS_Store", "Thumbs.db", "desktop.ini"})  # dropped on replacement
FIXED_TIME = datetime(2022, 11, 8, 0, 0, 0)  # written into xlsx/sav metadata instead of "now"
TOTAL_VARIANCE = 100.0**2  # NAEQ scale: SD 100 in the base year

# ------------------------------------------------------------------------------------------------
# Params
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DemoParams:
    seed: int
    years: tuple[int, ...]
    counties: tuple[str, ...]
    primary_schools: int
    junior_schools: int
    students_per_school: int
    with_defects: bool
    students_per_school_spread: int = 5  # sampled students per school vary ± this much


# ------------------------------------------------------------------------------------------------
# The demo world's design: one profile per county (assigned to demo.counties in order, cyclically).
# ------------------------------------------------------------------------------------------------

# 优质均衡 resource standards (县域义务教育优质均衡发展督导评估办法, 2017): per stage, L1..L7, as
# declared once in pipeline/indicators/params.py.
INDICATOR_IDS = RESOURCE_KEYS
RESOURCE_THRESHOLDS = {
    stage: tuple(float(t[k]) for k in RESOURCE_KEYS)
    for stage, t in DEFAULT_RESOURCE_THRESHOLDS.items()
}
CV_LIMITS = DEFAULT_CV_THRESHOLDS
# canonical quantity per indicator, and students per unit (per 100 students or per student)
QUANTITIES = (
    ("teachers_above_degree", 100.0),
    ("backbone_teachers", 100.0),
    ("pe_art_teachers", 100.0),
    ("teaching_aux_area_m2", 1.0),
    ("sports_area_m2", 1.0),
    ("equipment_value_yuan", 1.0),
    ("multimedia_classrooms", 100.0),
)
HOMEWORK_LIMIT = {4: 60.0, 8: 90.0}  # 双减: ≤ 60 min/day grades 3–6, ≤ 90 junior
SLEEP_STANDARD = {4: 10.0, 8: 9.0}  # primary ≥ 10 h, junior ≥ 9 h
FITNESS_PASS = 60.0  # 国家学生体质健康标准: 及格 ≥ 60


@dataclass(frozen=True)
class CountyProfile:
    mean: dict[int, float]  # year -> intended county mean on the NAEQ scale
    icc: float  # intended between-school share (same for every grade × subject)
    n_primary: int  # regular primary schools in the frame (besides teaching points)
    n_junior: int
    n_teaching_points: int  # teaching points, all but one under 50 students
    urban_share: float  # school shares by 城乡 (rest rural)
    town_share: float
    ses_offset: float
    left_behind_factor: float
    burden: bool  # planted homework / sleep problem
    failing: dict[tuple[int, str], tuple[str, ...]] = field(default_factory=dict)  # (year, stage)


PROFILES = (
    CountyProfile(  # an urban district with large school differences
        mean={2020: 535.0, 2022: 538.0}, icc=0.35, n_primary=40, n_junior=16, n_teaching_points=4,
        urban_share=0.55, town_share=0.25, ses_offset=0.30, left_behind_factor=0.6, burden=False,
        failing={(2020, "primary"): ("L2",), (2022, "primary"): ("L2",)},
    ),
    CountyProfile(  # balanced schools; one resource indicator fixed between rounds
        mean={2020: 520.0, 2022: 522.0}, icc=0.035, n_primary=34, n_junior=12, n_teaching_points=6,
        urban_share=0.30, town_share=0.35, ses_offset=0.05, left_behind_factor=0.9, burden=False,
        failing={(2020, "primary"): ("L5",), (2020, "junior"): ("L6",), (2022, "junior"): ("L6",)},
    ),
    CountyProfile(  # a poor rural county: achievement clearly below the nation
        mean={2020: 430.0, 2022: 435.0}, icc=0.03, n_primary=22, n_junior=9, n_teaching_points=8,
        urban_share=0.18, town_share=0.32, ses_offset=-0.30, left_behind_factor=1.2, burden=False,
        failing={(2020, "primary"): ("L4", "L6"), (2022, "primary"): ("L6",), (2020, "junior"): ("L1",)},
    ),
    CountyProfile(  # homework and sleep burden; sizeable school differences
        mean={2020: 518.0, 2022: 520.0}, icc=0.28, n_primary=42, n_junior=18, n_teaching_points=7,
        urban_share=0.28, town_share=0.37, ses_offset=0.0, left_behind_factor=1.1, burden=True,
        failing={(2020, "junior"): ("L5",), (2022, "junior"): ("L5",)},
    ),
)  # fmt: skip

CV_TARGET_PASS = (0.22, 0.34)  # realised CVs are calibrated into these ranges (pass) ...
CV_TARGET_FAIL = {"primary": (0.62, 0.75), "junior": (0.58, 0.70)}  # ... or these (fail)

# Score effects (points on the NAEQ scale)
FEMALE_EFFECT = {"chinese": 16.0, "english": 18.0, "arts": 12.0, "moral": 10.0, "science": -3.0,
                 "math": -2.0, "pe_health": -8.0, "labor": 4.0, "mental_health": 0.0}  # fmt: skip
URBAN_EFFECT = {"urban": 10.0, "town": 0.0, "rural": -10.0}
SES_EFFECT = 15.0  # per SD of the SES index
LEFT_BEHIND_EFFECT = -6.0
P_FEMALE = 0.48
SES_SHIFT = {"urban": 0.45, "town": 0.0, "rural": -0.40}
SES_SCHOOL_SD, SES_STUDENT_SD = 0.25, 0.8
LEFT_BEHIND_P = {"urban": 0.06, "town": 0.22, "rural": 0.36}
MIGRANT_P = {"urban": 0.28, "town": 0.12, "rural": 0.03}
UR_CODES = ("urban", "town", "rural")
OLD_REGION_CODES = {"450181": "450127"}  # 横县's code until 2021; older ID numbers keep it

# Benchmarks printed in the county reports (illustrative, like the cut scores)
NATION_MEAN, PROVINCE_MEAN = 500.0, 490.0
# national subgroup gaps (group_var, group_value as indicators name them) -> points. Each is at least
# GAP_MARGIN above every demo county's TRUE gap (urban-rural 31-38, town-rural 12-21, left-behind
# 14-19, SES Q4-Q1 about 35-48; demo_truth.json -> findings lists them), so no
# gap problem is planted and every gap is clearly not worse than the nation.
NATION_GAPS = {
    ("urban_rural", "urban-rural"): 50.0,
    ("urban_rural", "town-rural"): 35.0,
    ("left_behind", "not_left_behind-left_behind"): 30.0,
    ("ses_quartile", "Q4-Q1"): 60.0,
    ("migrant", "non_migrant-migrant"): 0.0,
}
# national female-male gap: the true female effect moved GAP_MARGIN further from zero (the counties'
# gender gaps are smaller in size than the nation's)
GAP_MARGIN = 10.0


def _nation_gender_gap(subject: str) -> float:
    b = FEMALE_EFFECT.get(subject, 0.0)
    return b + (GAP_MARGIN if b >= 0 else -GAP_MARGIN)


# "clearly fine" / "planted" margins of demo_truth.json -> findings: how far the TRUE value must be
# on one side of the rule's threshold or benchmark (rule-test units) for the sample to resolve it
FINDING_MARGINS = {
    "ICC": 0.10,  # SE of ICC(1) with 8-12 schools x 30 students at ICC 0.03 is about 0.03
    "LEVEL": 20.0,  # points between the true mean and the level-III cut score (SE 8-16)
    "MEAN": 5.0,  # points above the national mean (clearly fine); planted: 30 below
    "MEAN_PLANTED": 30.0,
    "MEDIUM": 2.0,  # percentage points above the national share (clearly fine); planted: 8 below
    "MEDIUM_PLANTED": 8.0,
    "GAP": GAP_MARGIN,  # points between |true gap| and |national gap|
    "BURDEN": 3.0,  # percentage points on the good (clearly fine) / bad (planted: 8) side
    "BURDEN_PLANTED": 8.0,
}
QUESTIONNAIRE_BENCHMARKS = {  # grade -> indicator -> (province, nation), percent
    4: {"pct_homework_over_limit": (22.0, 20.0), "pct_sleep_sufficient": (46.0, 48.0),
        "pct_myopia": (37.0, 38.0), "pct_fitness_pass": (91.0, 92.0)},
    8: {"pct_homework_over_limit": (26.0, 24.0), "pct_sleep_sufficient": (46.0, 48.0),
        "pct_myopia": (69.0, 70.0), "pct_fitness_pass": (90.0, 91.0)},
}  # fmt: skip
# questionnaire design: grade -> (homework mean minutes normal/burden, sleep mean normal/burden)
HOMEWORK_MEAN = {4: (40.0, 70.0), 8: (60.0, 100.0)}
HOMEWORK_SHAPE = 4  # gamma (Erlang) shape of homework minutes
HOMEWORK_SCHOOL_SD = 0.15  # log-scale school factor
SLEEP_MEAN = {4: (9.95, 9.30), 8: (8.95, 8.30)}
SLEEP_SD, SLEEP_SCHOOL_SD = 0.6, 0.15
MYOPIA_P = {4: 0.33, 8: 0.63}
FITNESS_MEAN, FITNESS_SD = 77.0, 8.5

SURNAMES = list("黄韦陆覃梁李莫蒙潘农陈刘林张周罗蓝卢廖唐杨谢吴邓何")
GIVEN = list("子梓浩宇欣怡俊杰雨萱嘉豪思琪晨阳婷文博佳琳海涛明玉秀兰春燕志强丽华金凤宏伟晓雪")
PLACES = list("那坛石双金平安大新长龙和永兴福仁德江东南西北清山岭塘")

LEVEL_WORDS = {"I": "待提高", "II": "中等", "III": "良好", "IV": "优秀"}
LEVEL_ROMAN = {"I": "Ⅰ", "II": "Ⅱ", "III": "Ⅲ", "IV": "Ⅳ"}
SUBJECT_ZH = SUBJECT_LABELS  # 学科 as offices write it


_erfc = np.frompyfunc(math.erfc, 1, 1)


def _norm_sf(x, mean, sd) -> np.ndarray:
    """P(X > x) for X ~ N(mean, sd²) (scipy-free: keeps ``eqm demo-data`` quick to start)."""
    z = (np.asarray(x, float) - np.asarray(mean, float)) / np.asarray(sd, float)
    return np.asarray(_erfc(z / math.sqrt(2)), float) / 2


def _erlang_sf(x: float, shape: int, scale) -> np.ndarray:
    """P(X > x) for a gamma variable with integer shape k: e^(−x/θ) Σ_{i<k} (x/θ)^i / i!."""
    t = x / np.asarray(scale, float)
    return np.exp(-t) * sum(t**i / math.factorial(i) for i in range(shape))


def _rng(seed: int, *keys: int) -> np.random.Generator:
    """An independent stream per component, stable when other components change."""
    return np.random.default_rng([seed, *keys])


def _nation_offset(seed: int, year: int, grade: int, si: int) -> float:
    """National (and provincial) mean = base + this offset, per year x grade x subject slot."""
    return float(_rng(seed, 9, year, grade, si).normal(0, 4))


def _ses_gap(m_j, mu_j, wts, sd: float, slope: float) -> float:
    """True Q4 − Q1 mean-score gap of a county population (SES quartiles of the whole county).

    Population: school j (share w_j) has SES ~ N(mu_j, sd²) and E[y | ses] = m_j + slope (ses − mu_j)
    (female and left-behind are independent of SES within a school). Quartile cut points q solve
    Σ_j w_j Φ((q − mu_j)/sd) = 1/4, 3/4 (bisection); with a = (q − mu_j)/sd,
    E[y; ses < q1] = Σ w_j (m_j Φ(a) − slope·sd·φ(a)), E[y; ses > q3] = Σ w_j (m_j (1 − Φ(b)) + slope·sd·φ(b)).
    """

    def cdf(q):
        return float(wts @ (1 - _norm_sf(q, mu_j, sd)))

    def cut(target):
        lo, hi = float(mu_j.min()) - 6 * sd, float(mu_j.max()) + 6 * sd
        for _ in range(100):
            mid = (lo + hi) / 2
            lo, hi = (mid, hi) if cdf(mid) < target else (lo, mid)
        return (lo + hi) / 2

    def pdf(a):
        return np.exp(-(a**2) / 2) / math.sqrt(2 * math.pi)

    a = (cut(0.25) - mu_j) / sd
    b = (cut(0.75) - mu_j) / sd
    low_p, high_p = 1 - _norm_sf(a, 0, 1), _norm_sf(b, 0, 1)
    low = float(wts @ (m_j * low_p - slope * sd * pdf(a))) / float(wts @ low_p)
    high = float(wts @ (m_j * high_p + slope * sd * pdf(b))) / float(wts @ high_p)
    return high - low


# ------------------------------------------------------------------------------------------------
# Core: the world as DataFrames + truth (no file access)
# ------------------------------------------------------------------------------------------------


@dataclass
class DemoWorld:
    """Everything the generator made, in canonical column names (before the file forms)."""

    schools: pd.DataFrame  # one row per school per year (九年一贯制 as one row)
    students: pd.DataFrame  # one row per sampled student (clean, before defects)
    scores: pd.DataFrame  # long: year, student_id, subject, scale_score, level
    county_reports: pd.DataFrame
    previous_problems: pd.DataFrame
    truth: dict[str, Any]
    county_names: dict[tuple[int, str], str]  # (year, code) -> name as written that year
    county_code_written: dict[tuple[int, str], str]  # (year, code) -> code as written ("" if none)
    teachers: pd.DataFrame = field(default_factory=pd.DataFrame)  # sampled schools' teachers
    principals: pd.DataFrame = field(default_factory=pd.DataFrame)  # one per sampled school


def generate(params: DemoParams, monitoring: MonitoringParams) -> DemoWorld:
    """Build the synthetic round (pure: same params → same frames and truth)."""
    if not params.counties:
        raise EqmError("params.yaml 的 demo.counties 为空，无法生成演示数据。", file="params.yaml")
    for year in params.years:
        if year not in monitoring.rotation:
            raise EqmError(
                f"demo.years 中的 {year} 年不在 monitoring.rotation（学科轮测表）中。",
                file="params.yaml",
                hint="请在 monitoring.rotation 中补上该年的学科，或从 demo.years 中删去该年。",
            )
    profiles = {c: PROFILES[i % len(PROFILES)] for i, c in enumerate(params.counties)}
    schools = _school_frames(params, profiles)
    students, samples = _sample_students(params, profiles, schools)
    scores, score_truth, effects = _scores(params, monitoring, profiles, schools, students)
    q_truth = _questionnaire_truth(params, profiles, schools)
    students = _questionnaire(params, profiles, students)
    roles, jitter = _factor_roles(params, profiles)
    rot = monitoring.rotation
    students = students.join(
        factors.student_answers(params.seed, students, effects, rot, roles, jitter)
    )
    teachers, principals = factor_schools.school_questionnaires(
        params.seed, effects, rot, roles, jitter
    )
    schools, resource_truth, compliance_fail = _resources(params, profiles, schools)
    names, codes = _county_labels(params, monitoring)
    reports = _county_reports(params, monitoring, students, scores, names)
    previous = _previous_problems(params, monitoring, profiles, students, scores, resource_truth)
    truth = {
        "synthetic": True,
        "label": SYNTHETIC_LABEL,
        "seed": params.seed,
        "note": "所有数值均为合成演示数据的真实参数；百分比为 0–100。",
        "score_model": {
            "formula": "y = intercept + urban_effect[ur] + ses*ses + left_behind*lb + female*f + u_j + e",
            "total_variance": TOTAL_VARIANCE,
            "effects": {
                "female_by_subject": FEMALE_EFFECT,
                "urban_rural": URBAN_EFFECT,
                "ses_per_sd": SES_EFFECT,
                "left_behind": LEFT_BEHIND_EFFECT,
                "migrant": 0.0,
            },
            "p_female": P_FEMALE,
        },
        "scores": score_truth,
        "questionnaire": q_truth,
        "resources": resource_truth,
        "samples": samples,
        "planted": _planted(params, profiles, resource_truth, compliance_fail),
        "benchmarks": {
            "nation_mean": NATION_MEAN,
            "province_mean": PROVINCE_MEAN,
            "nation_gaps": {f"{k[0]}/{k[1]}": v for k, v in NATION_GAPS.items()},
            "nation_gap_female_male": (
                f"the true female effect of each subject moved {GAP_MARGIN:g} points away from 0"
            ),
            "questionnaire": {str(g): v for g, v in QUESTIONNAIRE_BENCHMARKS.items()},
        },
        "defects": [],
    }
    truth["findings"] = _findings(
        params, monitoring, profiles, score_truth, q_truth, resource_truth, compliance_fail
    )
    truth["factors"] = factors.truth(effects, teachers, principals, rot, roles, jitter)
    written = factor_schools.sampled_only(students, teachers, principals)  # the files' rows
    return DemoWorld(schools, students, scores, reports, previous, truth, names, codes, *written)


def _factor_roles(params: DemoParams, profiles: dict[str, CountyProfile]):
    """Each county's part in the related factors (``factors.ROLES``) and its small offset."""
    roles, jitter = {}, {}
    for c in params.counties:
        p = profiles[c]
        low = max(p.mean.values()) < NATION_MEAN - 20  # as _planted's low_achievement
        roles[c] = "low" if low else "icc" if p.icc > 0.15 else "other"
        jitter[c] = factors.COUNTY_JITTER[PROFILES.index(p) % len(factors.COUNTY_JITTER)]
    return roles, jitter


def _county_labels(params: DemoParams, mon: MonitoringParams):
    """Name/code as each year's files write them: a renamed county keeps its old name, no code."""
    old_name = {code: alias for alias, code in mon.county_aliases.items()}
    names, codes = {}, {}
    for year in params.years:
        for c in params.counties:
            if year < 2021 and c in old_name:  # 横县 became 横州市 in 2021
                names[(year, c)], codes[(year, c)] = old_name[c], ""
            else:
                names[(year, c)], codes[(year, c)] = mon.county_name(c), c
    return names, codes


def _school_frames(params: DemoParams, profiles: dict[str, CountyProfile]) -> pd.DataFrame:
    """Every compulsory school of each county, one row per school per year."""
    frames = []
    for code in params.counties:
        p = profiles[code]
        rng = _rng(params.seed, 1, int(code))
        n_p = max(p.n_primary, params.primary_schools + 2)
        n_j = max(p.n_junior, params.junior_schools + 2)
        kinds = (
            ["primary"] * n_p + ["junior"] * n_j + ["teaching_point"] * p.n_teaching_points
            + ["nine_year", "special"]
        )  # fmt: skip
        n = len(kinds)
        kind = np.array(kinds)
        ur = rng.choice(
            UR_CODES, size=n, p=[p.urban_share, p.town_share, 1 - p.urban_share - p.town_share]
        )
        ur = np.where(kind == "teaching_point", "rural", ur)
        ur = np.where(kind == "special", "urban", ur)
        base = {
            "primary": {"urban": 1800, "town": 900, "rural": 380},
            "junior": {"urban": 2100, "town": 1300, "rural": 700},
        }
        med = np.array(
            [base.get(k, base["primary"])[u] for k, u in zip(kinds, ur, strict=True)], float
        )
        enrol = np.round(med * np.exp(rng.normal(0, 0.35, n)))
        tp = kind == "teaching_point"
        enrol = np.where(tp, rng.integers(12, 49, n), enrol)
        # one teaching point has ≥ 50 students: it stays in the balance statistics (domain.md)
        enrol[np.flatnonzero(tp)[:1]] = rng.integers(55, 75)
        enrol = np.where(kind == "special", rng.integers(80, 160, n), enrol)
        enrol_p = np.where(kind == "nine_year", rng.integers(320, 520, n), np.nan)
        enrol_j = np.where(kind == "nine_year", rng.integers(180, 320, n), np.nan)
        enrol = np.where(kind == "nine_year", enrol_p + enrol_j, enrol)
        seq = np.arange(1, n + 1)
        school_id = np.array([f"21{code}{s:02d}" for s in seq])
        names = _school_names(rng, kinds, ur)
        frame = pd.DataFrame(
            {
                "county_code": code,
                "school_id": school_id,
                "name_stub": names,
                "kind": kind,
                "stage": np.select(
                    [kind == "junior", kind == "nine_year"], ["junior", "nine_year"], "primary"
                ),
                "school_type": np.where(kind == "special", "special", "regular"),
                "is_teaching_point": tp,
                "urban_rural": ur,
                "ses_mean": p.ses_offset
                + np.array([SES_SHIFT[u] for u in ur])
                + rng.normal(0, SES_SCHOOL_SD, n),
                "enrollment_2020": enrol,
                "enrollment_primary_2020": enrol_p,
                "enrollment_junior_2020": enrol_j,
            }
        )
        frames.append(frame)
    base = pd.concat(frames, ignore_index=True)
    years = []
    for year in params.years:
        rng = _rng(params.seed, 2, year)
        growth = np.exp(rng.normal(0.0, 0.04, len(base))) if year != min(params.years) else 1.0
        f = base.assign(
            year=year,
            enrollment=np.round(base["enrollment_2020"] * growth),
            enrollment_primary=np.round(base["enrollment_primary_2020"] * growth),
            enrollment_junior=np.round(base["enrollment_junior_2020"] * growth),
        )
        f["enrollment"] = np.where(
            f["stage"] == "nine_year",
            f["enrollment_primary"] + f["enrollment_junior"],
            f["enrollment"],
        )
        f["enrollment"] = np.where(
            f["is_teaching_point"],
            np.minimum(f["enrollment"], base["enrollment_2020"]),
            f["enrollment"],
        )
        years.append(
            f.drop(columns=["enrollment_2020", "enrollment_primary_2020", "enrollment_junior_2020"])
        )
    out = pd.concat(years, ignore_index=True)
    return out.sort_values(["year", "county_code", "school_id"], ignore_index=True)


def _school_names(rng: np.random.Generator, kinds: list[str], ur: np.ndarray) -> list[str]:
    """Unique plausible names; ``{county}`` is filled in when the county's name is known."""
    used: set[str] = set()
    out = []
    counters = {"primary": 0, "junior": 0}
    for k, u in zip(kinds, ur, strict=True):
        while True:
            place = "".join(rng.choice(PLACES, size=2))
            if k == "primary" and u == "urban":
                counters["primary"] += 1
                name = f"{{county}}第{_cn_num(counters['primary'])}小学"
            elif k == "primary":
                name = f"{{county}}{place}镇中心小学" if u == "town" else f"{{county}}{place}村小学"
            elif k == "junior" and u == "urban":
                counters["junior"] += 1
                name = f"{{county}}第{_cn_num(counters['junior'])}初级中学"
            elif k == "junior":
                name = f"{{county}}{place}镇初级中学"
            elif k == "teaching_point":
                name = f"{{county}}{place}村教学点"
            elif k == "nine_year":
                name = f"{{county}}{place}九年一贯制学校"
            else:
                name = "{county}特殊教育学校"
            if name not in used:
                used.add(name)
                out.append(name)
                break
    return out


def _cn_num(n: int) -> str:
    digits = "零一二三四五六七八九"
    if n < 10:
        return digits[n]
    if n < 20:
        return "十" + (digits[n % 10] if n % 10 else "")
    return digits[n // 10] + "十" + (digits[n % 10] if n % 10 else "")


def _pps_systematic(
    rng: np.random.Generator, size: np.ndarray, n: int
) -> tuple[np.ndarray, np.ndarray]:
    """Systematic PPS sample of ``n`` units; returns (selected indices, inclusion probabilities).

    Units with n·M_i/ΣM ≥ 1 are taken with certainty and the rest re-sampled (Lohr 2019, §6.2);
    the remaining units are randomly ordered, then selected at a random start with step ΣM/n'.
    """
    size = np.asarray(size, float)
    pi = np.zeros(len(size))
    certain = np.zeros(len(size), bool)
    for _ in range(len(size)):
        rest = ~certain
        k = n - certain.sum()
        pi_rest = k * size / size[rest].sum()
        new = rest & (pi_rest >= 1)
        if not new.any():
            break
        certain |= new
    k = n - certain.sum()
    rest_idx = np.flatnonzero(~certain)
    pi[certain] = 1.0
    pi[rest_idx] = k * size[rest_idx] / size[rest_idx].sum()
    order = rng.permutation(rest_idx)
    cum = np.cumsum(size[order])
    step = cum[-1] / k
    points = rng.uniform(0, step) + step * np.arange(k)
    chosen = order[np.searchsorted(cum, points, side="right")]
    selected = np.sort(np.concatenate([np.flatnonzero(certain), chosen]))
    return selected, pi


def _sample_students(params: DemoParams, profiles: dict[str, CountyProfile], schools: pd.DataFrame):
    """PPS sample of schools per county × grade, ~30 students each; weights and demographics."""
    parts = []
    samples: dict[str, Any] = {}
    for year in params.years:
        for code in params.counties:
            for grade, stage, n_sch in (
                (4, "primary", params.primary_schools),
                (8, "junior", params.junior_schools),
            ):
                rng = _rng(params.seed, 3, year, int(code), grade)
                frame = _frame_for(schools, year, code, stage)
                m_grade = np.round(frame["enrollment"].to_numpy() / (6 if grade == 4 else 3))
                sel, pi = _pps_systematic(rng, m_grade, n_sch)
                spread = params.students_per_school_spread
                m = rng.integers(
                    params.students_per_school - spread,
                    params.students_per_school + spread + 1,
                    len(sel),
                )
                m = np.minimum(m, m_grade[sel]).astype(int)
                adj = rng.uniform(1.0, 1.08, len(sel))  # non-response adjustment
                w_school = m_grade[sel] / (pi[sel] * m) * adj
                chosen = frame.iloc[sel]
                rows = pd.DataFrame(
                    {
                        "year": year,
                        "county_code": code,
                        "school_id": np.repeat(chosen["school_id"].to_numpy(), m),
                        "grade": grade,
                        "urban_rural": np.repeat(chosen["urban_rural"].to_numpy(), m),
                        "ses_mean": np.repeat(chosen["ses_mean"].to_numpy(), m),
                        "weight": np.round(np.repeat(w_school, m), 4),
                    }
                )
                n = len(rows)
                p = profiles[code]
                rows["female"] = rng.random(n) < P_FEMALE
                lb_p = (
                    np.array([LEFT_BEHIND_P[u] for u in rows["urban_rural"]]) * p.left_behind_factor
                )
                rows["left_behind"] = rng.random(n) < lb_p
                rows["migrant"] = ~rows["left_behind"] & (
                    rng.random(n) < np.array([MIGRANT_P[u] for u in rows["urban_rural"]])
                )
                rows["ses"] = np.round(rows["ses_mean"] + rng.normal(0, SES_STUDENT_SD, n), 3)
                parts.append(rows)
                samples.setdefault(str(year), {}).setdefault(code, {})[str(grade)] = {
                    "schools": len(sel),
                    "students": int(n),
                    "frame_schools": len(frame),
                    "grade_population": float(m_grade.sum()),
                    "weight_sum": float(rows["weight"].sum()),
                }
    students = pd.concat(parts, ignore_index=True)
    students = _identities(params, students)
    return students, samples


def _identities(params: DemoParams, students: pd.DataFrame) -> pd.DataFrame:
    """Fake but well-formed names, 18-character ID numbers (GB 11643) and 学籍号 (G + ID number)."""
    rng = _rng(params.seed, 4)
    n = len(students)
    region = students["county_code"].replace(
        dict(OLD_REGION_CODES)
    )  # ID numbers keep the birth code
    cohort_start = students["year"] - np.where(students["grade"] == 4, 10, 14) - 1  # born Sep..Aug
    start = pd.to_datetime(cohort_start.astype(str) + "-09-01").to_numpy()
    birth = start + rng.integers(0, 365, n).astype("timedelta64[D]")
    birth_s = pd.Series(pd.to_datetime(birth).strftime("%Y%m%d"), index=students.index)
    key = region + birth_s
    k = students.assign(key=key).groupby("key").cumcount().to_numpy()
    groups, n_groups = pd.factorize(key)[0], key.nunique()
    base = rng.integers(0, 250, n_groups)[groups]  # one offset per region × birth date
    s = (base + k) % 500
    code3 = 2 * s + (~students["female"].to_numpy()).astype(int)  # 17th digit odd = male
    body = region + birth_s + pd.Series(code3, index=students.index).map("{:03d}".format)
    digits = np.array([list(map(int, b)) for b in body])
    weights = np.array([7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2])
    check = np.array(list("10X98765432"))[(digits @ weights) % 11]
    id_number = body + check
    given_len = rng.integers(1, 3, n)
    g1 = rng.choice(GIVEN, n)
    g2 = np.where(given_len == 2, rng.choice(GIVEN, n), "")
    name = pd.Series(rng.choice(SURNAMES, n)) + g1 + g2
    return students.assign(
        id_number=id_number.to_numpy(), student_id="G" + id_number.to_numpy(), name=name.to_numpy()
    )


def _frame_for(schools: pd.DataFrame, year: int, code: str, stage: str) -> pd.DataFrame:
    """The sampling frame of a county × stage: regular schools, teaching points excluded."""
    f = schools[
        (schools["year"] == year)
        & (schools["county_code"] == code)
        & (schools["stage"] == stage)
        & (schools["school_type"] == "regular")
        & ~schools["is_teaching_point"]
    ]
    return f


def _scores(params, mon, profiles, schools, students):
    """Two-level model per year × county × grade × subject; returns long scores, truth rows and
    the model's random parts (:class:`factors.ScoreEffects`: e and u_j, for the related factors)."""
    score_parts, truth = [], []
    effects = factors.ScoreEffects()
    by_cell = dict(tuple(students.groupby(["year", "county_code", "grade"], sort=False)))
    for year in params.years:
        for code in params.counties:
            p = profiles[code]
            for grade, stage in ((4, "primary"), (8, "junior")):
                frame = _frame_for(schools, year, code, stage)
                sts = by_cell[(year, code, grade)]
                m_pop = np.round(frame["enrollment"].to_numpy() / (6 if grade == 4 else 3))
                ur = frame["urban_rural"].to_numpy()
                lb_p = np.array([LEFT_BEHIND_P[u] for u in ur]) * p.left_behind_factor
                s_sys = (
                    np.array([URBAN_EFFECT[u] for u in ur])
                    + SES_EFFECT * frame["ses_mean"].to_numpy()
                    + LEFT_BEHIND_EFFECT * lb_p
                )
                var_s = float(np.var(s_sys))
                tau2 = p.icc * TOTAL_VARIANCE
                sigma2 = TOTAL_VARIANCE - tau2
                var_u = max(tau2 - var_s, 0.25 * tau2)
                tau2 = var_u + var_s  # > intended only when the floor binds (ICC then a bit higher)
                sigma2 = TOTAL_VARIANCE - tau2
                for si, subject in enumerate(mon.rotation[year][grade]):
                    rng = _rng(params.seed, 5, year, int(code), grade, si)
                    b_f = FEMALE_EFFECT.get(subject, 0.0)
                    within_sys = (
                        b_f**2 * P_FEMALE * (1 - P_FEMALE) + SES_EFFECT**2 * SES_STUDENT_SD**2
                    )
                    within_sys += LEFT_BEHIND_EFFECT**2 * float(np.mean(lb_p * (1 - lb_p)))
                    var_e = sigma2 - within_sys
                    subject_shift = float(rng.normal(0, 4))
                    mu = p.mean[year] if year in p.mean else float(np.mean(list(p.mean.values())))
                    mu += subject_shift
                    wts = m_pop / m_pop.sum()
                    intercept = mu - float(wts @ (s_sys + b_f * P_FEMALE))
                    u = rng.normal(0, 1, len(frame))
                    # School random effects: enrolment-weighted mean 0 within each 城乡 group of the
                    # frame (so they plant no urban-rural gap and the population mean is exactly mu),
                    # then scaled to variance var_u over the frame's schools.
                    # They are also made uncorrelated (enrolment-weighted) with the schools' mean SES
                    # within 城乡 group, so they plant no SES gap either: the true Q4-Q1 gap then
                    # comes from the SES and 城乡 effects alone.
                    x = frame["ses_mean"].to_numpy(float).copy()
                    for g in UR_CODES:
                        in_g = ur == g
                        if in_g.any():
                            u[in_g] -= np.average(u[in_g], weights=wts[in_g])
                            x[in_g] -= np.average(x[in_g], weights=wts[in_g])
                    if (wts * x) @ x > 0:
                        u -= ((wts * x) @ u / ((wts * x) @ x)) * x
                    u = u / u.std() * np.sqrt(var_u)
                    u_by_school = dict(zip(frame["school_id"], u, strict=True))
                    n = len(sts)
                    e = rng.normal(0, np.sqrt(var_e), n)  # drawn here, added last: same bytes
                    y = (
                        intercept
                        + sts["urban_rural"].map(URBAN_EFFECT).to_numpy()
                        + SES_EFFECT * sts["ses"].to_numpy()
                        + LEFT_BEHIND_EFFECT * sts["left_behind"].to_numpy()
                        + b_f * sts["female"].to_numpy()
                        + sts["school_id"].map(u_by_school).to_numpy()
                        + e
                    )
                    y = np.round(np.clip(y, 150, 850), 1)
                    cuts = mon.scale(year, subject, grade).cut_scores
                    level = np.array(["I", "II", "III", "IV"])[
                        np.searchsorted(cuts, y, side="right")
                    ]
                    score_parts.append(
                        pd.DataFrame(
                            {"year": year, "student_id": sts["student_id"].to_numpy(), "subject": subject,
                             "scale_score": y, "level": level, "county_code": code, "grade": grade,
                             "school_id": sts["school_id"].to_numpy()}
                        )
                    )  # fmt: skip
                    # finite-population truth over the frame (what design-based estimates target)
                    m_j = intercept + s_sys + b_f * P_FEMALE + u
                    effects.add(year, code, grade, subject, sts.index.to_numpy(), e, var_e,
                                frame["school_id"].to_numpy(), u, var_u, m_j, m_pop)  # fmt: skip
                    pop_mean = float(wts @ m_j)
                    sd_within = np.sqrt(SES_EFFECT**2 * SES_STUDENT_SD**2 + var_e)
                    comp_means, comp_w = [], []
                    for f_val, f_p in ((1, P_FEMALE), (0, 1 - P_FEMALE)):
                        for lb_val in (1, 0):
                            lb_w = lb_p if lb_val else 1 - lb_p
                            comp_means.append(
                                m_j
                                - b_f * P_FEMALE
                                - LEFT_BEHIND_EFFECT * lb_p
                                + b_f * f_val
                                + LEFT_BEHIND_EFFECT * lb_val
                            )
                            comp_w.append(wts * f_p * lb_w)
                    cm, cw = np.array(comp_means), np.array(comp_w)
                    above = [float((cw * _norm_sf(c, cm, sd_within)).sum()) for c in cuts]
                    pct = {
                        "pct_level_I": 100 * (1 - above[0]),
                        "pct_level_II": 100 * (above[0] - above[1]),
                        "pct_level_III": 100 * (above[1] - above[2]),
                        "pct_level_IV": 100 * above[2],
                        "pct_medium_or_above": 100 * above[0],
                        "pct_good_or_above": 100 * above[1],
                    }
                    lb_m1 = m_j - LEFT_BEHIND_EFFECT * lb_p + LEFT_BEHIND_EFFECT
                    lb_m0 = m_j - LEFT_BEHIND_EFFECT * lb_p
                    gaps = {
                        "female-male": b_f,
                        "not_left_behind-left_behind": float(
                            (wts * (1 - lb_p)) @ lb_m0 / (wts @ (1 - lb_p))
                            - (wts * lb_p) @ lb_m1 / (wts @ lb_p)
                        ),
                    }
                    gaps["Q4-Q1"] = _ses_gap(
                        m_j, frame["ses_mean"].to_numpy(float), wts, SES_STUDENT_SD, SES_EFFECT
                    )
                    for hi in ("urban", "town"):
                        if (ur == hi).any() and (ur == "rural").any():
                            gaps[f"{hi}-rural"] = float(
                                np.average(m_j[ur == hi], weights=wts[ur == hi])
                                - np.average(m_j[ur == "rural"], weights=wts[ur == "rural"])
                            )
                    truth.append(
                        {
                            "year": year, "county_code": code, "grade": grade, "subject": subject,
                            "mu": round(mu, 4), "intercept": round(intercept, 4),
                            "tau2": round(tau2, 4), "sigma2": round(sigma2, 4),
                            "icc": round(tau2 / (tau2 + sigma2), 6),
                            "var_school_random": round(var_u, 4), "var_school_systematic": round(var_s, 4),
                            "var_residual": round(var_e, 4),
                            "population_mean": round(pop_mean, 4),
                            "sample_icc1": round(_icc1(y, sts["school_id"].to_numpy()), 6),  # clean sample, for reference
                            **{k: round(v, 4) for k, v in pct.items()},
                            "gaps": {k: round(v, 4) for k, v in gaps.items()},
                            "effects": {"female": b_f, "left_behind": LEFT_BEHIND_EFFECT, "ses_per_sd": SES_EFFECT,
                                        **{f"urban_rural_{k}": v for k, v in URBAN_EFFECT.items()}},
                            "cut_scores": list(cuts),
                        }
                    )  # fmt: skip
    scores = pd.concat(score_parts, ignore_index=True)
    return scores, truth, effects


def _questionnaire_truth(params, profiles, schools) -> list[dict[str, Any]]:
    """Population shares implied by the questionnaire design (Gauss–Hermite over school factors)."""
    nodes, wq = np.polynomial.hermite_e.hermegauss(40)
    wq = wq / wq.sum()
    out = []
    for year in params.years:
        for code in params.counties:
            p = profiles[code]
            for grade in (4, 8):
                hw_mean = HOMEWORK_MEAN[grade][int(p.burden)]
                sl_mean = SLEEP_MEAN[grade][int(p.burden)]
                limit = HOMEWORK_LIMIT[grade]
                # minutes are reported to the nearest 10: over the limit ⟺ raw ≥ limit + 5
                scale = (
                    hw_mean
                    * np.exp(HOMEWORK_SCHOOL_SD * nodes - HOMEWORK_SCHOOL_SD**2 / 2)
                    / HOMEWORK_SHAPE
                )
                over = float(wq @ _erlang_sf(limit + 5, HOMEWORK_SHAPE, scale))
                # hours are reported to the nearest half hour: sufficient ⟺ raw ≥ standard − 0.25
                sd = np.hypot(SLEEP_SD, SLEEP_SCHOOL_SD)
                sleep_ok = float(_norm_sf(SLEEP_STANDARD[grade] - 0.25, sl_mean, sd))
                out.append(
                    {
                        "year": year, "county_code": code, "grade": grade,
                        "homework_mean_minutes": hw_mean, "homework_limit_minutes": limit,
                        "pct_homework_over_limit": round(100 * over, 4),
                        "sleep_mean_hours": sl_mean, "sleep_standard_hours": SLEEP_STANDARD[grade],
                        "pct_sleep_sufficient": round(100 * sleep_ok, 4),
                        "pct_myopia": round(100 * MYOPIA_P[grade], 4),
                        "pct_fitness_pass": round(100 * _norm_sf(FITNESS_PASS - 0.05, FITNESS_MEAN, FITNESS_SD), 4),
                        "burden_planted": p.burden,
                    }
                )  # fmt: skip
    return out


def _questionnaire(params, profiles, students: pd.DataFrame) -> pd.DataFrame:
    rng = _rng(params.seed, 6)
    n = len(students)
    burden = (
        students["county_code"].map({c: profiles[c].burden for c in params.counties}).to_numpy()
    )
    g4 = students["grade"].to_numpy() == 4
    hw_mean = np.where(
        g4, np.where(burden, *HOMEWORK_MEAN[4][::-1]), np.where(burden, *HOMEWORK_MEAN[8][::-1])
    )
    sl_mean = np.where(
        g4, np.where(burden, *SLEEP_MEAN[4][::-1]), np.where(burden, *SLEEP_MEAN[8][::-1])
    )
    school_keys = (students["year"].astype(str) + students["school_id"]).to_numpy()
    uniq, inv = np.unique(school_keys, return_inverse=True)
    z_hw = rng.normal(0, 1, len(uniq))[inv]
    z_sl = rng.normal(0, 1, len(uniq))[inv]
    scale = hw_mean * np.exp(HOMEWORK_SCHOOL_SD * z_hw - HOMEWORK_SCHOOL_SD**2 / 2) / HOMEWORK_SHAPE
    homework = np.floor(rng.gamma(HOMEWORK_SHAPE, scale) / 10 + 0.5) * 10
    sleep = np.floor((sl_mean + SLEEP_SCHOOL_SD * z_sl + rng.normal(0, SLEEP_SD, n)) * 2 + 0.5) / 2
    myopia = rng.random(n) < np.where(g4, MYOPIA_P[4], MYOPIA_P[8])
    fitness = np.round(np.clip(rng.normal(FITNESS_MEAN, FITNESS_SD, n), 20, 110), 1)
    return students.assign(
        homework_minutes=homework,
        sleep_hours=np.clip(sleep, 4, 12),
        myopia=myopia,
        fitness_score=fitness,
    )


def _weighted_cv(x: np.ndarray, w: np.ndarray) -> float:
    """差异系数: enrolment-weighted population CV, S / X̄ with weights P_i / P (domain.md)."""
    w = w / w.sum()
    mean = float(w @ x)
    return float(np.sqrt(w @ (x - mean) ** 2) / mean)


def _resources(params, profiles, schools: pd.DataFrame):
    """School resource quantities with L1–L7 差异系数 calibrated to pass or fail as planned.

    Per county × year × stage × indicator the per-student value is v_i = r·T·exp(σ z_i − σ²/2);
    σ is found by bisection so that the enrolment-weighted CV of the *rounded* quantities over the
    in-scope schools (regular, not a teaching point under 50, the 九年一贯制 school's split section)
    lands in the planned pass or fail range. Returns the schools with quantities, the truth rows and
    the schools failing the 6-of-7 + 85 % rule.
    """
    out = schools.copy()
    for q, _ in QUANTITIES:
        out[q] = np.nan
    truth, fail_list = [], []
    z_prev: dict[tuple[str, int], np.ndarray] = {}
    for year in params.years:
        for code in params.counties:
            p = profiles[code]
            rng = _rng(params.seed, 7, year, int(code))
            idx = out.index[(out["year"] == year) & (out["county_code"] == code)]
            f = out.loc[idx]
            nine = (f["stage"] == "nine_year").to_numpy()
            a_p = f["enrollment_primary"].to_numpy()
            b_j = f["enrollment_junior"].to_numpy()
            enrol = f["enrollment"].to_numpy()
            small_tp = f["is_teaching_point"].to_numpy() & (enrol < 50)
            regular = (f["school_type"] == "regular").to_numpy()
            for k, (q, unit) in enumerate(QUANTITIES):
                zkey = (code, k)
                z_new = rng.normal(0, 1, len(f))
                z = z_new if zkey not in z_prev else 0.8 * z_prev[zkey] + 0.6 * z_new
                z_prev[zkey] = z
                qty = np.full(len(f), np.nan)
                nine_val = None
                for stage in ("primary", "junior"):
                    thr = RESOURCE_THRESHOLDS[stage][k]
                    fails = INDICATOR_IDS[k] in p.failing.get((year, stage), ())
                    lo, hi = CV_TARGET_FAIL[stage] if fails else CV_TARGET_PASS
                    target = float(
                        _rng(params.seed, 8, year, int(code), k, int(stage == "junior")).uniform(
                            lo, hi
                        )
                    )
                    ratio = 1.6  # intended county level: 1.6 × the standard
                    sel = regular & ~small_tp & (f["stage"].to_numpy() == stage)
                    nine_whole = a_p[nine] + 1.1 * b_j[nine]  # domain.md split denominator
                    w_all = np.concatenate(
                        [enrol[sel], a_p[nine] if stage == "primary" else b_j[nine]]
                    )
                    cal = _Calibration(
                        q=q, unit=unit, level=ratio * thr, z=z[sel], enrol=enrol[sel],
                        z_nine=z[nine], nine_whole=nine_whole, weights=w_all,
                        nine_fixed=None if stage == "primary" else nine_val,
                    )  # fmt: skip
                    qq, qn, cv = cal.solve(target)
                    qty[sel] = qq
                    if stage == "primary":
                        nine_val = qn
                        qty[nine] = qn
                    per = cal.per_student(qq, qn)
                    truth.append(
                        {
                            "year": year, "county_code": code, "stage": stage, "indicator": INDICATOR_IDS[k],
                            "quantity": q, "county_value": round(float(np.average(per, weights=w_all)), 6),
                            "cv": round(cv, 6), "threshold": CV_LIMITS[stage], "intended_pass": not fails,
                            "passes": cv <= CV_LIMITS[stage], "n_schools": int(len(w_all)),
                            "standard": RESOURCE_THRESHOLDS[stage][k],
                        }
                    )  # fmt: skip
                # out-of-scope schools: teaching points under 50 and the special school, odd values
                odd = small_tp | ~regular
                thr_p = RESOURCE_THRESHOLDS["primary"][k]
                v_odd = thr_p * rng.uniform(0.3, 3.5, len(f))
                qty[odd] = _round_quantity(q, v_odd[odd] * enrol[odd] / unit)
                out.loc[idx, q] = qty
            fail_list.extend(_compliance_failures(out.loc[idx], year, code))
    return out, truth, fail_list


def _round_quantity(q: str, x: np.ndarray) -> np.ndarray:
    """Quantities as offices report them: whole teachers, rooms and m²; equipment to 100 yuan."""
    x = np.maximum(np.asarray(x, float), 0)
    return np.round(x, -2) if q == "equipment_value_yuan" else np.round(x)  # 万元 with 2 decimals


def _sections(f: pd.DataFrame) -> pd.DataFrame:
    """In-scope school sections with per-student L1..L7 (the domain.md split for 九年一贯制)."""
    enrol = f["enrollment"].to_numpy()
    scope = (f["school_type"] == "regular").to_numpy() & ~(
        f["is_teaching_point"].to_numpy() & (enrol < 50)
    )
    f = f[scope]
    parts = []
    for stage in ("primary", "junior"):
        plain = f[f["stage"] == stage]
        nine = f[f["stage"] == "nine_year"]
        a, b = nine["enrollment_primary"].to_numpy(), nine["enrollment_junior"].to_numpy()
        share = a / (a + 1.1 * b) if stage == "primary" else 1.1 * b / (a + 1.1 * b)
        sec_enrol = a if stage == "primary" else b
        frame = pd.DataFrame(
            {"school_id": np.concatenate([plain["school_id"], nine["school_id"]]), "stage": stage,
             "enrollment": np.concatenate([plain["enrollment"], sec_enrol])}
        )  # fmt: skip
        for k, (q, unit) in enumerate(QUANTITIES):
            qty = np.concatenate([plain[q].to_numpy(), nine[q].to_numpy() * share])
            frame[INDICATOR_IDS[k]] = qty * unit / frame["enrollment"].to_numpy()
        parts.append(frame)
    return pd.concat(parts, ignore_index=True)


def _compliance_failures(f: pd.DataFrame, year: int, code: str) -> list[dict[str, Any]]:
    """Schools failing the school rule: ≥ 6 of 7 met and every unmet one ≥ 85 % of its standard."""
    sec = _sections(f)
    thr = np.array([RESOURCE_THRESHOLDS[s] for s in sec["stage"]])
    ratio = sec[list(INDICATOR_IDS)].to_numpy() / thr
    met = ratio >= 1
    n_met = met.sum(axis=1)
    min_unmet = np.where(met, np.inf, ratio).min(axis=1)
    passes = (n_met >= 6) & (min_unmet >= 0.85)
    bad = sec[~passes]
    return [
        {"year": year, "county_code": code, "school_id": s, "stage": st, "n_met": int(n)}
        for s, st, n in zip(bad["school_id"], bad["stage"], n_met[~passes], strict=True)
    ]


def _planted(params, profiles, resource_truth, compliance_fail) -> dict[str, Any]:
    """Which problems the generator planted (and, by omission, which it did not)."""
    ps = {c: profiles[c] for c in params.counties}
    return {
        "school_difference_rate_high": sorted(c for c, p in ps.items() if p.icc > 0.15),
        "school_difference_rate_low": sorted(c for c, p in ps.items() if p.icc <= 0.15),
        "low_achievement": sorted(
            c for c, p in ps.items() if max(p.mean.values()) < NATION_MEAN - 20
        ),
        "homework_burden": sorted(c for c, p in ps.items() if p.burden),
        "sleep_insufficient": sorted(c for c, p in ps.items() if p.burden),
        "resource_cv_fail": [
            {k: r[k] for k in ("year", "county_code", "stage", "indicator", "cv")}
            for r in resource_truth
            if not r["passes"]
        ],
        "school_compliance_fail": compliance_fail,
        "evidence_rules": {  # the evidence stage's rule ids for each planted kind
            "school_difference_rate_high": ["ICC"],
            "low_achievement": ["MEAN", "LEVEL", "MEDIUM"],
            "homework_burden": ["HOMEWORK"],
            "sleep_insufficient": ["SLEEP"],
            "resource_cv_fail": ["RES"],
            "school_compliance_fail": ["SCHOOL"],
        },  # fmt: skip
        "not_planted": (
            "subgroup gaps at or below the national benchmarks of the county reports; myopia and "
            "fitness no worse than the nation; the other counties' achievement above the nation"
        ),
    }


GAP_GROUP_VAR = {"female-male": "gender", "urban-rural": "urban_rural", "town-rural": "urban_rural",
                 "not_left_behind-left_behind": "left_behind", "Q4-Q1": "ses_quartile"}  # fmt: skip
BURDEN_RULES = {"HOMEWORK": ("pct_homework_over_limit", 1), "SLEEP": ("pct_sleep_sufficient", -1),
                "MYOPIA": ("pct_myopia", 1), "FITNESS": ("pct_fitness_pass", -1)}  # fmt: skip


def _findings(params, mon, profiles, score_truth, q_truth, resource_truth, compliance_fail):
    """What the evidence stage should find, in its own rule ids and keys (``truth["findings"]``).

    Every testable cell of the demo is classified from its TRUE value against the threshold or the
    benchmark the county reports print: ``planted`` (truly worse by at least the planted margin of
    :data:`FINDING_MARGINS`), ``clearly_fine`` (on the good side by at least the margin) or
    ``ambiguous`` (neither; the design aims to have none). ``detect`` says what "found" means:
    ``each`` — this cell must fire; ``any`` — at least one cell of the rule × year × county must
    fire (the county-level property the generator planted: with 8 junior schools the sample ICC(1)
    at a true 0.28 has SE ≈ 0.12, so not every grade × subject can be expected above 0.15; MEAN and
    MEAN, MEDIUM and the burden rules likewise: a junior estimate rests on 8 schools, a t test on 7
    df, so even a true gap of 4–5 SE is not certain to pass BH in every grade and subject). LEVEL
    (threshold on the value, true means ≥ 20 points past the cut) is ``each``.
    Census rules (RES, SCHOOL) have no sampling error: every failing row is planted (``each``),
    every passing one is clearly fine.
    """
    planted, fine, ambiguous = [], [], []
    mg = FINDING_MARGINS

    def put(kind_bad, kind_fine, row, detect="each"):
        if kind_bad:
            planted.append({**row, "detect": detect})
        elif kind_fine:
            fine.append(row)
        else:
            ambiguous.append(row)

    def key(rule, r, indicator, grade=None, subject="", gv="", gval="", **extra):
        return {"rule_id": rule, "year": r["year"], "county_code": r["county_code"], "grade": grade,
                "subject": subject, "indicator": indicator, "group_var": gv, "group_value": gval,
                **extra}  # fmt: skip

    for r in score_truth:
        g, subj = r["grade"], r["subject"]
        si = list(mon.rotation[r["year"]][g]).index(subj)
        off = _nation_offset(params.seed, r["year"], g, si)
        cuts = r["cut_scores"]
        k = {"grade": g, "subject": subj}
        icc = r["icc"]
        put(
            icc >= 0.15 + mg["ICC"],
            icc <= 0.15 - mg["ICC"],
            key("ICC", r, "school_difference_rate", **k, true_value=icc, threshold=0.15),
            "any",
        )
        mean = r["population_mean"]
        put(
            mean <= cuts[1] - mg["LEVEL"],
            mean >= cuts[1] + mg["LEVEL"],
            key("LEVEL", r, "achievement_level", **k, true_value=mean, threshold=cuts[1]),
        )
        bench = NATION_MEAN + off
        put(
            mean <= bench - mg["MEAN_PLANTED"],
            mean >= bench + mg["MEAN"],
            key("MEAN", r, "mean_score", **k, true_value=mean, benchmark=round(bench, 2)),
            "any",
        )
        pct = r["pct_medium_or_above"]
        bench = round(100 - _level_pcts(NATION_MEAN + off, 100.0, cuts)[0], 2)
        put(
            pct <= bench - mg["MEDIUM_PLANTED"],
            pct >= bench + mg["MEDIUM"],
            key("MEDIUM", r, "pct_medium_or_above", **k, true_value=pct, benchmark=bench),
            "any",
        )
        for gval, gap in r["gaps"].items():
            gv = GAP_GROUP_VAR.get(gval)
            if gv is None:
                continue
            b = _nation_gender_gap(subj) if gv == "gender" else NATION_GAPS[(gv, gval)]
            put(
                abs(gap) >= abs(b) + mg["GAP"],
                abs(gap) <= abs(b) - mg["GAP"],
                key("GAP", r, "gap_mean_score", **k, gv=gv, gval=gval, true_value=gap, benchmark=b),
            )
    for r in q_truth:
        for rule, (ind, bad) in BURDEN_RULES.items():
            b = QUESTIONNAIRE_BENCHMARKS[r["grade"]][ind][1]  # nation
            d = bad * (r[ind] - b)  # > 0: worse than the nation
            put(
                d >= mg["BURDEN_PLANTED"],
                d <= -mg["BURDEN"],
                key(rule, r, ind, grade=r["grade"], true_value=r[ind], benchmark=b),
                "any",
            )
    for r in resource_truth:
        put(not r["passes"], r["passes"],
            key("RES", r, r["indicator"], gv="stage", gval=r["stage"], true_value=r["cv"],
                threshold=r["threshold"]))  # fmt: skip
    for r in compliance_fail:
        planted.append({**key("SCHOOL", r, "school_compliance", gv="school",
                              gval=f"{r['stage']}/{r['school_id']}", true_value=r["n_met"]),
                        "detect": "each"})  # fmt: skip
    return {
        "fired_means": (
            "a row of problems.parquet whose status is new or still open this round (previous "
            "problems carried as not re-measured or proposed for closing do not count)"
        ),
        "margins": FINDING_MARGINS,
        "planted": planted,
        "clearly_fine": fine,
        "ambiguous": ambiguous,
        "census_note": "SCHOOL: every school section not listed as planted passes the 6-of-7 rule",
    }


# ------------------------------------------------------------------------------------------------
# Aggregates the offices receive: county reports and the 2020 problem list
# ------------------------------------------------------------------------------------------------


def _icc1(y: np.ndarray, group: np.ndarray) -> float:
    """ICC(1) from one-way ANOVA (domain.md; Shrout & Fleiss 1979): (MSB − MSW) / (MSB + (n₀−1)MSW).

    MSB = Σ n_j (ȳ_j − ȳ)² / (k − 1), MSW = Σ Σ (y_ij − ȳ_j)² / (N − k),
    n₀ = (N − Σ n_j² / N) / (k − 1). Unweighted, as the domain notes specify.
    """
    y = np.asarray(y, float)
    _, inv = np.unique(np.asarray(group).astype(str), return_inverse=True)
    n_j = np.bincount(inv).astype(float)
    m_j = np.bincount(inv, weights=y) / n_j
    big_n, k = n_j.sum(), len(n_j)
    ssb = float((n_j * (m_j - y.mean()) ** 2).sum())
    ssw = float(((y - m_j[inv]) ** 2).sum())
    msb, msw = ssb / (k - 1), ssw / (big_n - k)
    n0 = (big_n - (n_j**2).sum() / big_n) / (k - 1)
    return (msb - msw) / (msb + (n0 - 1) * msw)


def _wmean(x: pd.Series, w: pd.Series) -> float:
    return float(np.average(x.to_numpy(float), weights=w.to_numpy(float)))


def _level_pcts(mean: float, sd: float, cuts) -> list[float]:
    """Level shares (percent, one decimal, summing to 100) of a N(mean, sd) population."""
    cdf = 1 - _norm_sf(np.asarray(cuts, float), mean, sd)
    p = np.diff(np.concatenate([[0.0], cdf, [1.0]])) * 100
    r = np.round(p, 1)
    r[np.argmax(r)] += round(100 - r.sum(), 1)
    return [round(float(v), 1) for v in r]


def _county_reports(params, mon, students, scores, names) -> pd.DataFrame:
    """The aggregate tables printed in each county's official NAEQ report (long)."""
    rows = []
    sc = scores.merge(
        students[["year", "student_id", "weight", "female", "urban_rural"]],
        on=["year", "student_id"], validate="m:1",
    )  # fmt: skip
    top = max(params.counties, key=lambda c: PROFILES[params.counties.index(c) % len(PROFILES)].icc)
    by_cell = dict(tuple(sc.groupby(["year", "county_code", "grade", "subject"], sort=False)))
    by_grade = dict(tuple(students.groupby(["year", "county_code", "grade"], sort=False)))
    for year in params.years:
        for code in params.counties:
            name = names[(year, code)]

            add = functools.partial(
                _report_row, rows, {"year": year, "county_code": code, "county_name": name}
            )

            for grade in (4, 8):
                for si, subject in enumerate(mon.rotation[year][grade]):
                    page = f"第{6 + 4 * si + (0 if grade == 4 else 2)}页"
                    cuts = mon.scale(year, subject, grade).cut_scores
                    s = by_cell[(year, code, grade, subject)]
                    off = _nation_offset(params.seed, year, grade, si)
                    add(
                        grade,
                        subject,
                        "mean_score",
                        "county",
                        _wmean(s["scale_score"], s["weight"]),
                        n=len(s),
                        page=page,
                    )
                    for lv in ("I", "II", "III", "IV"):
                        add(
                            grade,
                            subject,
                            f"pct_level_{lv}",
                            "county",
                            100 * _wmean(s["level"] == lv, s["weight"]),
                            n=len(s),
                            page=page,
                        )
                    add(
                        grade,
                        subject,
                        "pct_medium_or_above",
                        "county",
                        100 * _wmean(s["level"] != "I", s["weight"]),
                        n=len(s),
                        page=page,
                    )
                    for scope, base in (("province", PROVINCE_MEAN), ("nation", NATION_MEAN)):
                        add(grade, subject, "mean_score", scope, base + off, page=page)
                        pcts = _level_pcts(base + off, 100.0, cuts)
                        for lv, v in zip(("I", "II", "III", "IV"), pcts, strict=True):
                            add(grade, subject, f"pct_level_{lv}", scope, v, page=page)
                        add(grade, subject, "pct_medium_or_above", scope, 100 - pcts[0], page=page)
                    gpage = f"第{20 + grade}页"
                    fem, mal = s[s["female"]], s[~s["female"]]
                    add(grade, subject, "gap_mean_score", "county",
                        _wmean(fem["scale_score"], fem["weight"]) - _wmean(mal["scale_score"], mal["weight"]),
                        "gender", "female-male", n=len(s), page=gpage)  # fmt: skip
                    add(
                        grade,
                        subject,
                        "gap_mean_score",
                        "nation",
                        _nation_gender_gap(subject),
                        "gender",
                        "female-male",
                        page=gpage,
                    )
                    urb, rur = s[s["urban_rural"] == "urban"], s[s["urban_rural"] == "rural"]
                    if len(urb) and len(rur):
                        add(grade, subject, "gap_mean_score", "county",
                            _wmean(urb["scale_score"], urb["weight"]) - _wmean(rur["scale_score"], rur["weight"]),
                            "urban_rural", "urban-rural", n=len(urb) + len(rur), page=gpage)  # fmt: skip
                    for (gvar, gval), v in NATION_GAPS.items():
                        add(grade, subject, "gap_mean_score", "nation", v, gvar, gval, page=gpage)
                    if code == top and year == min(params.years) and grade == 8 and si == 0:
                        add(
                            grade,
                            subject,
                            "school_difference_rate",
                            "county",
                            round(_icc1(s["scale_score"].to_numpy(), s["school_id"].to_numpy()), 2),
                            n=len(s),
                            page="第12页",
                        )
                st = by_grade[(year, code, grade)]
                qpage = f"第{30 + grade}页"
                q_vals = _questionnaire_pcts(st, grade)
                for ind, (prov, nat) in QUESTIONNAIRE_BENCHMARKS[grade].items():
                    add(grade, "", ind, "county", q_vals[ind], n=len(st), page=qpage)
                    add(grade, "", ind, "province", prov, page=qpage)
                    add(grade, "", ind, "nation", nat, page=qpage)
                for ind, scope, v in factors.national_values(year, grade):  # 相关因素
                    add(grade, "", ind, scope, v, page=f"第{40 + grade}页")
    return pd.DataFrame(rows)


def _report_row(
    rows,
    base,
    grade,
    subject,
    indicator,
    scope,
    value,
    group_var="",
    group_value="",
    n=None,
    page="",
):
    rows.append(
        {**base, "grade": grade, "subject": subject, "indicator": indicator, "group_var": group_var,
         "group_value": group_value, "scope": scope, "value": round(float(value), 2), "n": n,
         "source_page": page}
    )  # fmt: skip


def _questionnaire_pcts(st: pd.DataFrame, grade: int) -> dict[str, float]:
    w = st["weight"]
    return {
        "pct_homework_over_limit": 100 * _wmean(st["homework_minutes"] > HOMEWORK_LIMIT[grade], w),
        "pct_sleep_sufficient": 100 * _wmean(st["sleep_hours"] >= SLEEP_STANDARD[grade], w),
        "pct_myopia": 100 * _wmean(st["myopia"], w),
        "pct_fitness_pass": 100 * _wmean(st["fitness_score"] >= FITNESS_PASS, w),
    }


def _previous_problems(params, mon, profiles, students, scores, resource_truth) -> pd.DataFrame:
    """The 2020 round's problem list as the office typed it (values from the 2020 data)."""
    year = min(params.years)
    rows: list[dict[str, Any]] = []
    sc = scores[scores["year"] == year].merge(
        students.loc[students["year"] == year, ["student_id", "weight"]],
        on="student_id",
        validate="m:1",
    )

    def add(
        code, rule, domain, title, grade, subject, indicator, value, severity, unit, gv="", gval=""
    ):
        rows.append(
            {"year": year, "county_code": code, "county_name": mon.county_name(code), "rule_id": rule,
             "domain": domain, "title": title, "grade": grade, "subject": subject, "indicator": indicator,
             "group_var": gv, "group_value": gval, "value": round(float(value), 3), "severity": severity,
             "responsible_unit": unit, "deadline": "2022年12月", "status": "整改中"}
        )  # fmt: skip

    for code in params.counties:
        p = profiles[code]
        if p.icc > 0.15:
            cand = []
            for grade in (4, 8):
                for subject in mon.rotation[year][grade]:
                    s = sc[
                        (sc["county_code"] == code)
                        & (sc["grade"] == grade)
                        & (sc["subject"] == subject)
                    ]
                    cand.append(
                        (
                            _icc1(s["scale_score"].to_numpy(), s["school_id"].to_numpy()),
                            grade,
                            subject,
                        )
                    )
            v, grade, subject = max(cand)
            if v >= 0.15:  # the 2020 list holds what the 2020 round found
                add(code, "ICC", "学业质量",
                    f"{'四' if grade == 4 else '八'}年级{SUBJECT_ZH[subject]}校际差异率为{v:.2f}，高于0.15",
                    grade, subject, "school_difference_rate", v, "高", "基教科")  # fmt: skip
        if max(p.mean.values()) < NATION_MEAN - 20:
            subject = mon.rotation[year][4][0]
            s = sc[(sc["county_code"] == code) & (sc["grade"] == 4) & (sc["subject"] == subject)]
            v = _wmean(s["scale_score"], s["weight"])
            add(code, "MEAN", "学业质量",
                f"四年级{SUBJECT_ZH[subject]}平均成绩{v:.0f}分，显著低于全国", 4, subject, "mean_score", v, "高",
                "教研室")  # fmt: skip
        if p.burden:
            for grade, ind, rule, text in (
                (4, "pct_homework_over_limit", "HOMEWORK", "四年级书面作业超时比例"),
                (8, "pct_sleep_sufficient", "SLEEP", "八年级睡眠达标比例"),
            ):
                st = students[
                    (students["year"] == year)
                    & (students["county_code"] == code)
                    & (students["grade"] == grade)
                ]
                v = _questionnaire_pcts(st, grade)[ind]
                add(
                    code,
                    rule,
                    "课业负担与健康",
                    f"{text}为{v:.1f}%，差于全国",
                    grade,
                    "",
                    ind,
                    v,
                    "中",
                    "基教科",
                )
    stage_zh = {"primary": "小学", "junior": "初中"}
    fails = [r for r in resource_truth if r["year"] == year and not r["passes"]]
    for r in fails[: max(0, 10 - len(rows))]:
        add(r["county_code"], "RES", "资源配置",
            f"{stage_zh[r['stage']]}{r['indicator']}差异系数为{r['cv']:.2f}，高于{r['threshold']:.2f}", None, "",
            r["indicator"], r["cv"], "中", "计财科", "stage", r["stage"])  # fmt: skip
    out = pd.DataFrame(rows)
    out.insert(0, "problem_id", [f"NN{year}-{i:03d}" for i in range(1, len(out) + 1)])
    return out


# ------------------------------------------------------------------------------------------------
# File forms (pure: DataFrames in the offices' layouts) and the planted defects
# ------------------------------------------------------------------------------------------------


@dataclass
class RawFile:
    """One file to write: its layout and the rows as the office would have them."""

    path: str  # relative to data/raw, posix
    kind: str  # csv | xlsx | sav
    table: pd.DataFrame
    encoding: str = "utf-8"
    lineterminator: str = "\n"
    title_rows: tuple[str, ...] = ()  # xlsx rows above the header
    extra_sheets: tuple[
        tuple[str, tuple[str, ...]], ...
    ] = ()  # (sheet name, lines) BEFORE the data
    sheet: str = "Sheet1"
    value_labels: dict[str, dict[int, str]] = field(default_factory=dict)
    column_labels: dict[str, str] = field(default_factory=dict)

    @property
    def header_row(self) -> int:
        """Row of the header as the user sees it (1-based)."""
        return len(self.title_rows) + 1


def _yn(b) -> np.ndarray:
    return np.where(np.asarray(b, bool), "是", "否")


def file_forms(world: DemoWorld, params: DemoParams, mon: MonitoringParams) -> list[RawFile]:
    """The raw files in the offices' layouts; plants the defects and records them in the truth."""
    files: list[RawFile] = []
    years = sorted(params.years)
    st, sc = world.students, world.scores
    names, codes = world.county_names, world.county_code_written
    first = years[0]
    for year in years:
        s = st[st["year"] == year].sort_values(
            ["county_code", "school_id", "student_id"], ignore_index=True
        )
        county = list(zip([year] * len(s), s["county_code"], strict=True))
        if year == first:  # the older round: a GBK CSV with wide scores, numeric codes
            t = pd.DataFrame(
                {"监测年份": year, "区县代码": [codes[k] for k in county], "区县": [names[k] for k in county],
                 "学校标识码": s["school_id"], "年级": s["grade"], "学籍号": s["student_id"], "姓名": s["name"],
                 "身份证号": s["id_number"], "性别": np.where(s["female"], 2, 1),
                 "城乡类型": s["urban_rural"].map({"urban": 1, "town": 2, "rural": 3}),
                 "是否留守儿童": s["left_behind"].astype(int), "是否随迁子女": s["migrant"].astype(int),
                 "家庭社会经济文化地位": s["ses"], "最终权重": s["weight"],
                 "每天书面作业时间(分钟)": s["homework_minutes"].astype(int),
                 "每天睡眠时间(小时)": s["sleep_hours"], "视力不良": s["myopia"].astype(int),
                 "体质健康总分": s["fitness_score"]}
            ).join(factor_forms.student_columns(s, later=False))  # fmt: skip
            subjects = sorted(
                {x for g in (4, 8) for x in mon.rotation[year][g]}, key=list(SUBJECT_ZH).index
            )
            wide = sc[sc["year"] == year].pivot(
                index="student_id", columns="subject", values=["scale_score", "level"]
            )
            for subject in subjects:
                zh = SUBJECT_ZH[subject]
                t[f"{zh}成绩"] = s["student_id"].map(wide[("scale_score", subject)]).to_numpy()
                t[f"{zh}水平"] = (
                    s["student_id"].map(wide[("level", subject)]).map(LEVEL_WORDS).to_numpy()
                )
            files.append(
                RawFile(
                    f"students/{year}年学生数据_合成演示.csv",
                    "csv",
                    t,
                    encoding="gbk",
                    lineterminator="\r\n",
                )
            )
        else:  # a later round: xlsx with a title row, codes in words; scores long in a separate CSV
            t = pd.DataFrame(
                {"监测年份": year, "区县代码": [codes[k] for k in county], "区县": [names[k] for k in county],
                 "学校代码": s["school_id"], "年级": s["grade"].map(GRADE_LABELS),
                 "学籍号": s["student_id"], "姓名": s["name"], "身份证件号": s["id_number"],
                 "性别": np.where(s["female"], "女", "男"),
                 "城乡类型": s["urban_rural"].map(URBAN_RURAL_LABELS),
                 "是否留守儿童": _yn(s["left_behind"]), "是否随迁子女": _yn(s["migrant"]),
                 "家庭社会经济文化地位": s["ses"], "学生权重": s["weight"],
                 "书面作业时间": s["homework_minutes"], "睡眠时间": s["sleep_hours"],
                 "是否近视": _yn(s["myopia"]), "体质健康成绩": s["fitness_score"]}
            ).join(factor_forms.student_columns(s, later=True))  # fmt: skip
            title = f"{year}年南宁市义务教育质量监测学生数据（合成演示数据）"
            files.append(
                RawFile(
                    f"students/{year}年学生数据_合成演示.xlsx",
                    "xlsx",
                    t,
                    title_rows=(title,),
                    sheet="学生数据",
                )
            )
            y = sc[sc["year"] == year].sort_values(
                ["student_id", "subject"], key=None, ignore_index=True
            )
            y = y.sort_values(
                ["county_code", "school_id", "student_id", "subject"], ignore_index=True
            )
            t2 = pd.DataFrame(
                {"学籍号": y["student_id"], "学科": y["subject"].map(SUBJECT_ZH), "量尺分数": y["scale_score"],
                 "水平": y["level"].map(LEVEL_ROMAN)}
            )  # fmt: skip
            files.append(
                RawFile(f"scores/{year}年学业成绩_合成演示.csv", "csv", t2, encoding="utf-8-sig")
            )
    sch = world.schools
    stage_zh = {"primary": "小学", "junior": "初中", "nine_year": "九年一贯制"}
    for year in years:
        f = sch[sch["year"] == year].sort_values(["county_code", "school_id"], ignore_index=True)
        county = list(zip([year] * len(f), f["county_code"], strict=True))
        school_name = [
            n.format(county=names[k]) for n, k in zip(f["name_stub"], county, strict=True)
        ]
        nine = f["stage"] == "nine_year"
        common = {
            "年份": year, "区县代码": [codes[k] for k in county], "区县": [names[k] for k in county],
            "学校标识码": f["school_id"], "学校名称": school_name,
        }  # fmt: skip
        q = {
            "高于规定学历教师数": f["teachers_above_degree"], "县级及以上骨干教师数": f["backbone_teachers"],
            "体育艺术专任教师数": f["pe_art_teachers"],
        }  # fmt: skip
        if year == first:  # xlsx with title rows, equipment in 万元
            t = pd.DataFrame(
                {**common, "学段": f["stage"].map(stage_zh),
                 "学校类别": f["school_type"].map({"regular": "普通", "special": "特殊教育"}),
                 "教学点": _yn(f["is_teaching_point"]), "在校生数": f["enrollment"],
                 "小学在校生数": f["enrollment_primary"].where(nine), "初中在校生数": f["enrollment_junior"].where(nine),
                 **q, "教学及辅助用房面积(平方米)": f["teaching_aux_area_m2"],
                 "体育运动场馆面积(平方米)": f["sports_area_m2"],
                 "教学仪器设备值(万元)": np.round(f["equipment_value_yuan"] / 10000, 2),
                 "网络多媒体教室数": f["multimedia_classrooms"]}
            )  # fmt: skip
            files.append(
                RawFile(
                    f"schools/{year}年学校办学条件_合成演示.xlsx",
                    "xlsx",
                    t,
                    sheet="办学条件",
                    title_rows=(
                        f"{year}年南宁市义务教育学校办学条件统计表（合成演示数据）",
                        "数据来源：教育事业统计（合成演示数据，非真实统计）　填报单位：各县（市、区）教育局",
                    ),
                )  # fmt: skip
            )
        else:  # SPSS with value labels
            t = pd.DataFrame(
                {**common, "学段": f["stage"].map({"primary": 1, "junior": 2, "nine_year": 3}).astype(float),
                 "学校类别": f["school_type"].map({"regular": 1, "special": 2}).astype(float),
                 "教学点": f["is_teaching_point"].astype(float), "在校生数": f["enrollment"],
                 "小学在校生数": f["enrollment_primary"].where(nine), "初中在校生数": f["enrollment_junior"].where(nine),
                 **q, "教学及辅助用房面积": f["teaching_aux_area_m2"], "体育运动场馆面积": f["sports_area_m2"],
                 "教学仪器设备值": f["equipment_value_yuan"], "网络多媒体教室数": f["multimedia_classrooms"]}
            )  # fmt: skip
            t["年份"] = t["年份"].astype(float)
            files.append(
                RawFile(
                    f"schools/{year}年学校办学条件_合成演示.sav",
                    "sav",
                    t,
                    value_labels={
                        "学段": {1: "小学", 2: "初中", 3: "九年一贯制"},
                        "学校类别": {1: "普通", 2: "特殊教育"},
                        "教学点": {0: "否", 1: "是"},
                    },
                    column_labels={
                        "教学及辅助用房面积": "教学及辅助用房面积(平方米)",
                        "体育运动场馆面积": "体育运动场馆面积(平方米)",
                        "教学仪器设备值": "教学仪器设备值(元)",
                    },
                )  # fmt: skip
            )
    forms = factor_forms.questionnaire_files(world.teachers, world.principals, years, names, codes)
    files.extend(RawFile(**f) for f in forms)  # 教师问卷, 校长问卷
    r = world.county_reports
    files.append(
        RawFile(
            "county_reports/县级监测报告汇总_合成演示.csv",
            "csv",
            pd.DataFrame(
                {
                    "监测年份": r["year"],
                    "区县代码": r["county_code"],
                    "区县": r["county_name"],
                    "年级": r["grade"],
                    "学科": r["subject"].map(SUBJECT_ZH).fillna(""),
                    "指标": r["indicator"],
                    "分组变量": r["group_var"],
                    "分组取值": r["group_value"],
                    "范围": r["scope"].map(
                        {"county": "本县", "province": "全省", "nation": "全国"}
                    ),
                    "数值": r["value"],
                    "标准误": np.nan,
                    "样本量": r["n"].astype("Int64"),
                    "报告页码": r["source_page"],
                }
            ),
        )  # fmt: skip
    )
    pp = world.previous_problems
    if len(pp):
        files.append(
            RawFile(
                f"previous_problems/{min(years)}年监测问题清单_合成演示.xlsx",
                "xlsx",
                pd.DataFrame(
                    {
                        "问题编号": pp["problem_id"],
                        "监测年份": pp["year"],
                        "区县代码": pp["county_code"],
                        "区县": pp["county_name"],
                        "规则": pp["rule_id"],
                        "领域": pp["domain"],
                        "问题": pp["title"],
                        "年级": pp["grade"].astype("Int64"),
                        "学科": pp["subject"].map(SUBJECT_ZH).fillna(""),
                        "指标": pp["indicator"],
                        "分组变量": pp["group_var"],
                        "分组取值": pp["group_value"],
                        "数值": pp["value"],
                        "严重程度": pp["severity"],
                        "责任单位": pp["responsible_unit"],
                        "整改时限": pp["deadline"],
                        "整改状态": pp["status"],
                    }
                ),
                sheet="问题清单",
                extra_sheets=(
                    (
                        "填表说明",
                        (
                            "本文件为合成演示数据（eqm demo-data 生成），非真实监测结果。",
                            f"{min(years)}年国家义务教育质量监测反馈问题整改清单（手工录入样式）。",
                            "填表说明：每行一个问题；年级填 4 或 8；学科填中文学科名；指标填指标代码；数值为监测报告中的数值。",
                            "资源配置类问题：分组变量填 stage，分组取值填 primary（小学）或 junior（初中）。",
                        ),
                    ),
                ),
            )  # fmt: skip
        )
    if params.with_defects:
        _plant_defects(files, world, params)
    return files


def _plant_defects(files: list[RawFile], world: DemoWorld, params: DemoParams) -> None:
    """A duplicated student, a student with no school, a negative weight and a score of 9999."""
    rng = _rng(params.seed, 10)
    defects = world.truth["defects"]
    students = [f for f in files if f.path.startswith("students/")]
    old, new = students[0], students[-1]
    id_col = "学籍号"
    school_col = "学校标识码" if "学校标识码" in old.table else "学校代码"

    def user_row(f: RawFile, i: int) -> int:
        return f.header_row + 1 + i

    i = int(rng.integers(10, len(old.table) // 2))
    t = old.table
    old.table = pd.concat([t.iloc[: i + 1], t.iloc[[i]], t.iloc[i + 1 :]], ignore_index=True)
    defects.append(
        {"kind": "duplicate_student", "table": "students", "file": old.path, "year": int(t.at[i, "监测年份"]),
         "source_rows": [user_row(old, i), user_row(old, i + 1)], "column": id_col,
         "raw_student_id": str(t.at[i, id_col])}
    )  # fmt: skip
    j = int(rng.integers(len(old.table) // 2, len(old.table)))
    defects.append(
        {"kind": "missing_school_id", "table": "students", "file": old.path, "year": int(old.table.at[j, "监测年份"]),
         "source_rows": [user_row(old, j)], "column": school_col, "raw_student_id": str(old.table.at[j, id_col])}
    )  # fmt: skip
    old.table[school_col] = old.table[school_col].astype(object)
    old.table.at[j, school_col] = ""
    w_col = "学生权重" if "学生权重" in new.table else "最终权重"
    k = int(rng.integers(0, len(new.table)))
    if new is old and k in (i, i + 1, j):
        k = (max(i + 1, j) + 1) % len(new.table)
    new.table.at[k, w_col] = -float(new.table.at[k, w_col])
    defects.append(
        {"kind": "negative_weight", "table": "students", "file": new.path, "year": int(new.table.at[k, "监测年份"]),
         "source_rows": [user_row(new, k)], "column": w_col, "raw_student_id": str(new.table.at[k, id_col]),
         "value": float(new.table.at[k, w_col])}
    )  # fmt: skip
    long_scores = [f for f in files if f.path.startswith("scores/")]
    if long_scores:
        f = long_scores[-1]
        m = int(rng.integers(0, len(f.table)))
        f.table.at[m, "量尺分数"] = 9999.0
        f.table["水平"] = f.table["水平"].astype(object)
        f.table.at[m, "水平"] = ""
        col, year = "量尺分数", new.table.at[0, "监测年份"]
    else:
        f = old
        col = next(
            c
            for c in f.table
            if c.endswith("成绩") and c != "体质健康成绩" and f.table[c].notna().any()
        )
        m = int(
            np.flatnonzero(f.table[col].notna().to_numpy() & (f.table.index.to_numpy() != j))[0]
        )
        f.table.at[m, col] = 9999.0
        year = f.table.at[m, "监测年份"]
    defects.append(
        {"kind": "score_9999", "table": "scores", "file": f.path, "year": int(year), "source_rows": [user_row(f, m)],
         "column": col, "raw_student_id": str(f.table.at[m, id_col])}
    )  # fmt: skip


# ------------------------------------------------------------------------------------------------
# Writers (byte-stable) and the shell
# ------------------------------------------------------------------------------------------------


def _cell(v: Any) -> Any:
    if v is None or v is pd.NA or (isinstance(v, float) and np.isnan(v)):
        return None
    if isinstance(v, np.generic):
        return v.item()
    return v


def _xlsx_bytes(f: RawFile) -> bytes:
    """xlsx via xlsxwriter: fast, and byte-stable once the creation time is fixed (it also sets
    the zip entries' timestamps). Text is never turned into formulas, numbers or links."""
    import xlsxwriter

    buf = io.BytesIO()
    options = {
        "in_memory": True,
        "strings_to_numbers": False,
        "strings_to_formulas": False,
        "strings_to_urls": False,
    }
    wb = xlsxwriter.Workbook(buf, options)
    wb.set_properties(
        {"title": SYNTHETIC_LABEL, "author": "eqm demo-data（合成演示数据）", "created": FIXED_TIME}
    )
    for name, lines in f.extra_sheets:
        ws = wb.add_worksheet(name)
        ws.write_column(0, 0, lines)
    ws = wb.add_worksheet(f.sheet)
    r = 0
    for line in f.title_rows:
        ws.write_string(r, 0, line)
        r += 1
    ws.write_row(r, 0, list(f.table.columns))
    for j, col in enumerate(f.table.columns):
        values = f.table[col]
        text = not pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values)
        write = ws.write_string if text else ws.write_number
        for i, v in enumerate(values.tolist(), start=r + 1):
            v = _cell(v)
            if v is not None and v != "":
                write(i, j, v if not text else str(v))
    wb.close()
    return buf.getvalue()


def _sav_bytes(f: RawFile, tmpdir: Path) -> bytes:
    import pyreadstat

    path = tmpdir / ".demo.sav.tmp"
    labels = [f.column_labels.get(c, c) for c in f.table.columns]
    pyreadstat.write_sav(
        f.table, str(path), file_label="合成演示数据", column_labels=labels,
        variable_value_labels=f.value_labels, note=SYNTHETIC_LABEL,
    )  # fmt: skip
    data = bytearray(path.read_bytes())
    path.unlink()
    # SPSS header: creation date (9 bytes) and time (8 bytes) at offset 92 — fix them.
    data[92:109] = b"08 Nov 2200:00:00"
    return bytes(data)


def _csv_bytes(f: RawFile) -> bytes:
    text = f.table.to_csv(index=False, lineterminator=f.lineterminator)
    return text.encode(f.encoding)


def render(
    world: DemoWorld, params: DemoParams, mon: MonitoringParams, tmpdir: Path
) -> dict[str, bytes]:
    """Every file of the demo round as bytes, keyed by path relative to data/raw."""
    files = file_forms(world, params, mon)
    out: dict[str, bytes] = {}
    for f in files:
        if f.kind == "csv":
            out[f.path] = _csv_bytes(f)
        elif f.kind == "xlsx":
            out[f.path] = _xlsx_bytes(f)
        else:
            out[f.path] = _sav_bytes(f, tmpdir)
    sources = {
        "dataset": {"synthetic": True, "label": SYNTHETIC_LABEL},
        "files": {},
    }
    for f in files:
        if f.path.startswith("scores/") and "监测年份" not in f.table:
            year = int(f.path.split("/")[1][:4])
            sources["files"][f.path] = {"year": year}
        if f.extra_sheets:
            sources["files"][f.path] = {"sheet": f.sheet}
    header = (
        "# 数据来源说明。本目录为合成演示数据（eqm demo-data 生成），非真实监测结果。\n"
        "# files: 只在单位确实需要时给出提示 —— 阅卷系统导出的成绩表没有年份列（year），\n"
        "# 问题清单的第一张表是填表说明（sheet）。其余文件的编码和表头行由导入环节自动识别。\n"
    )
    out["sources.yaml"] = (
        header + yaml.safe_dump(sources, allow_unicode=True, sort_keys=True)
    ).encode("utf-8")
    out["README.txt"] = _readme(files).encode("utf-8")
    out["demo_truth.json"] = (dump_json(world.truth) + "\n").encode("utf-8")
    return out


def _readme(files: list[RawFile]) -> str:
    lines = [
        "合成演示数据（eqm demo-data 生成，非真实监测结果）",
        "",
        "本目录中的全部文件由 eqm demo-data 按 params.yaml 的 demo.seed 确定性生成，",
        "用于演示和测试数据处理流程：学生、学校、成绩、报告数值均为虚构，姓名和身份证号为随机合成，",
        "不对应任何真实的人或学校。请勿将本目录中的结果当作真实监测结果引用。",
        "",
        "demo_truth.json 记录生成时使用的真实参数、预设问题和预设数据缺陷，供测试核对。",
        "放入真实数据前，请先删除本目录（或换用新的项目目录），eqm demo-data 不会覆盖非演示数据。",
        "",
        "文件：",
        *[f"  {f.path}" for f in files],
        "",
    ]
    return "\n".join(lines)


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def check_raw_is_replaceable(raw: Path) -> None:
    """Refuse to touch a data/raw that holds anything this generator did not write."""
    if not raw.exists():
        return
    if not raw.is_dir():
        raise EqmError(f"{raw} 不是文件夹。", hint="请检查项目目录结构。")
    present = {p.relative_to(raw).as_posix(): p for p in sorted(raw.rglob("*")) if p.is_file()}
    present = {
        k: p
        for k, p in present.items()
        if p.name not in KEPT_RAW_FILES and p.name not in JUNK_FILES
    }
    known: dict[str, str] = {}
    for marker in (raw / MARKER, raw / INIT_MARKER):  # files this generator or `eqm init` wrote
        if marker.is_file():
            with contextlib.suppress(json.JSONDecodeError, UnicodeDecodeError, AttributeError):
                known.update(json.loads(marker.read_text(encoding="utf-8")).get("files", {}))
        present.pop(marker.name, None)
    foreign = sorted(set(present) - set(known))
    changed = sorted(
        k for k in set(present) & set(known) if _sha256(present[k].read_bytes()) != known[k]
    )
    if foreign or changed:
        listing = "、".join((foreign + changed)[:5]) + (
            " 等" if len(foreign) + len(changed) > 5 else ""
        )
        raise EqmError(
            f"data/raw/ 中已有不是由 eqm demo-data 生成（或生成后被修改过）的文件：{listing}。"
            "为避免覆盖真实数据，已停止生成演示数据。",
            file=str(raw),
            hint="如需演示，请新建一个项目目录（eqm demo-data --root 新目录），或先把这些文件移出 data/raw/。",
        )


def run(ctx: RunContext) -> None:
    """``eqm demo-data``: generate the synthetic round and replace data/raw/ as a whole."""
    params = ctx.section(DemoParams, "demo")
    mon = ctx.monitoring
    raw = ctx.paths.raw
    check_raw_is_replaceable(raw)
    world = generate(params, mon)
    with outputs() as out:
        tmp = out.directory(raw)
        os.chmod(tmp, 0o755)
        found = raw.rglob("*") if raw.is_dir() else ()
        kept = sorted(p for p in found if p.is_file() and p.name in KEPT_RAW_FILES)
        for p in kept:  # e.g. the committed data/raw/README.md, the folder guides of eqm init
            (tmp / p.relative_to(raw)).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(p, tmp / p.relative_to(raw))
        files = render(world, params, mon, tmp)
        with ctx.step("写出演示数据文件", len(files)) as advance:
            for rel, data in sorted(files.items()):
                target = tmp / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(data)
                advance(1)
        marker = {
            "generator": "eqm demo-data",
            "seed": params.seed,
            "files": {k: _sha256(v) for k, v in files.items()},
        }
        (tmp / MARKER).write_text(dump_json(marker) + "\n", encoding="utf-8")
    n_students = int(len(world.students))
    log.info(
        "已生成合成演示数据：%d 个文件，%d 个区县，%d 名学生，%d 所学校（%s）",
        len(files), len(params.counties), n_students, world.schools["school_id"].nunique(), raw,
    )  # fmt: skip
    for d in world.truth["defects"]:
        log.info("预设数据缺陷：%s（%s 第 %s 行）", d["kind"], d["file"], d["source_rows"])


@dataclass
class _Calibration:
    """Find σ so that the CV of the rounded quantities over a stage's in-scope schools hits a target.

    The 九年一贯制 school's whole-school quantity Q gives per-student values Q/(A+1.1B) (primary
    section) and 1.1·Q/(A+1.1B) (junior section), per domain.md; its Q is drawn with the primary
    calibration and held fixed (``nine_fixed``) for the junior one.
    """

    q: str
    unit: float
    level: float  # intended enrolment-weighted level r·T
    z: np.ndarray
    enrol: np.ndarray
    z_nine: np.ndarray
    nine_whole: np.ndarray
    weights: np.ndarray
    nine_fixed: np.ndarray | None

    def quantities(self, sigma: float) -> tuple[np.ndarray, np.ndarray]:
        v = self.level * np.exp(sigma * self.z - sigma**2 / 2)
        qq = _round_quantity(self.q, v * self.enrol / self.unit)
        if self.nine_fixed is not None:
            return qq, self.nine_fixed
        vn = self.level * np.exp(sigma * self.z_nine - sigma**2 / 2)
        return qq, _round_quantity(self.q, vn * self.nine_whole / self.unit)

    def per_student(self, qq: np.ndarray, qn: np.ndarray) -> np.ndarray:
        factor = 1.0 if self.nine_fixed is None else 1.1
        return np.concatenate(
            [qq * self.unit / self.enrol, factor * qn * self.unit / self.nine_whole]
        )

    def cv(self, sigma: float) -> float:
        return _weighted_cv(self.per_student(*self.quantities(sigma)), self.weights)

    def solve(self, target: float) -> tuple[np.ndarray, np.ndarray, float]:
        lo, hi = 0.0, 2.5
        for _ in range(24):  # bisection; the CV grows with σ (up to rounding steps)
            mid = (lo + hi) / 2
            if self.cv(mid) < target:
                lo = mid
            else:
                hi = mid
        qq, qn = self.quantities(hi)
        return qq, qn, _weighted_cv(self.per_student(qq, qn), self.weights)
