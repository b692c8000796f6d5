"""Related factors (相关因素): what each factor is, declared once.

NAEQ county reports have three parts — 学业表现, 相关因素, 均衡状况. The related factors come from the
student, teacher and principal questionnaires. This module says, for each factor, where its values
come from, how a questionnaire scale becomes an index, which direction is worse, and how it enters a
regression. The indicators stage (:mod:`pipeline.indicators.factor_estimates`), the evidence stage
(cause hints) and the report (「相关因素」 chapter) all read it from here.

Index rule (documented in ``data/raw/README.md``)
--------------------------------------------------
Items are answered on a 4-point scale (1–4; the answer words map through ``schemas.LIKERT_CODES``).
A reverse-coded item ``x`` counts as ``5 − x``. The index is the mean of the answered items when at
least ``indicators.factor_index_min_items_share`` of them are answered (default one half), else
missing. When the county report gives the national mean and SD of an index for that year × grade
(``county_reports`` rows at scope 全国, indicators ``factor_<id>`` and ``factor_<id>_sd``), the index
is standardised to the national metric, ``(x − mean)/sd``, before every estimate: the national value
is then 0 and a coefficient is per national SD. Otherwise it stays on the 1–4 item metric.

Estimands
---------
Student factors describe the county's students. Teacher and principal questionnaires are not student
samples: their answers enter as attributes of the school (teacher answers averaged over the responding
teachers of the grade — of the subject, in the regressions of that subject), copied onto the school's
sampled students. The county value of such a factor is the student-weighted mean of the attribute:
"the share of the county's grade-g students whose school …" (or whose teachers …), estimated with the
students' weights and JKn replicates; national figures printed for teachers may be teacher-weighted,
which the report says.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

Level = Literal["student", "teacher", "principal"]

ITEM_MIN, ITEM_MAX = 1, 4  # 4-point items (schemas.LIKERT_CODES)


@dataclass(frozen=True)
class Index:
    """A questionnaire scale: item columns ``<id>_1 … <id>_k`` of ``table``."""

    id: str
    label: str
    table: Literal["students", "teachers", "principals"]
    n_items: int
    reverse: tuple[int, ...] = ()  # 1-based item numbers counted as 5 − x
    description: str = ""

    @property
    def items(self) -> tuple[str, ...]:
        return tuple(f"{self.id}_{i}" for i in range(1, self.n_items + 1))


INDICES: dict[str, Index] = {
    i.id: i
    for i in (
        Index("interest", "学习兴趣", "students", 3, description="喜欢学习该学科、愿意多花时间学习（同意程度）"),
        Index("confidence", "学习自信心", "students", 3, reverse=(3,),
              description="相信自己能学好；第3题「遇到难题就想放弃」反向计分"),
        Index("relation", "师生关系", "students", 3, description="老师关心、尊重、公平对待学生（同意程度）"),
        Index("bullying", "校园欺凌", "students", 3,
              description="本学期被同学取笑、排挤、打骂的频率（1 从不 … 4 经常）；越高越差"),
        Index("wellbeing", "心理健康", "students", 4, reverse=(2, 4),
              description="心情愉快、睡得好（正向）；第2、4题「感到烦躁」「感到孤独」反向计分"),
        Index("method", "教学方式", "teachers", 3,
              description="课堂上采用启发式、探究式、合作学习的频率（1 从不 … 4 经常）"),
        Index("workload", "工作负担", "teachers", 3,
              description="工作量大、非教学任务多、压力大（同意程度）；越高越差"),
        Index("facility_use", "设施使用", "principals", 3,
              description="实验室、图书室、功能室的使用频率（1 从不 … 4 经常）"),
        Index("home_school", "家校合作", "principals", 3,
              description="家长会、家访、家长参与学校活动的频率（1 从不 … 4 经常）"),
    )
}  # fmt: skip


@dataclass(frozen=True)
class Factor:
    """One related factor.

    ``measure``: ``share`` — the county value is a percent (0–100) of students meeting ``condition``
    (school factors: of students whose school meets it); ``mean`` — a weighted mean of ``source``.
    ``source``: a column of the level's table, or an index id (``index=True``). For teacher factors the
    school attribute is the share (0–1) of the school's responding teachers meeting the condition, or
    their mean. ``threshold``: the key under ``indicators.factor_standards`` (value compared with
    ``op``); ``higher_is_worse``: the direction in which a county value is worse than the nation's.
    ``term``: the regression term is ``term_scale ×`` the unit value (``value``: 1/0, the mean
    variable, the index or the school attribute) or the raw ``source`` column (``source``: e.g. minutes
    of exercise, scaled to hours); coefficients are score points per ``term_unit``.
    ``groups``: ``bool`` — achievement of students meeting vs not meeting the condition (school
    factors: in schools that do vs do not); ``quartiles`` — top vs bottom weighted quartile.
    """

    id: str
    label: str
    level: Level
    measure: Literal["share", "mean"]
    source: str
    unit: str
    term_unit: str
    higher_is_worse: bool = False
    index: bool = False
    threshold: str | None = None  # indicators.factor_standards key
    op: Literal[">=", "==", "in"] = ">="
    values: tuple[str, ...] = ()  # for op "in": the categories that meet the condition
    term: Literal["value", "source"] = "value"
    term_scale: float = 1.0
    groups: Literal["bool", "quartiles"] = "quartiles"
    group_labels: tuple[str, str] = ("较高的四分之一", "较低的四分之一")
    standard: str = ""  # the rule behind the threshold, for the report's notes
    phrase: str = ""  # the term in a sentence (cause hints): 「学习兴趣指数每高1」; default below

    @property
    def term_phrase(self) -> str:
        """How a coefficient's unit reads in a sentence: ``phrase``, else label + term unit for an
        index (学习兴趣指数每高1)."""
        if self.phrase:
            return self.phrase
        return (
            f"{self.label}{self.term_unit.removeprefix('指数')}" if self.index else self.term_unit
        )

    @property
    def is_school(self) -> bool:
        return self.level != "student"


FACTORS: dict[str, Factor] = {
    f.id: f
    for f in (
        # --- students (学生问卷) ---
        Factor("tutoring", "参加学科类校外培训的学生比例", "student", "share", "tutoring", "%",
               "参加与不参加相比", higher_is_worse=True, op="==", groups="bool",
               group_labels=("参加", "未参加"),
               phrase="参加学科类校外培训的学生与未参加的相比",
               standard="双减（中办发〔2021〕40号）：学科类校外培训负担有效减轻"),
        Factor("tutoring_hours", "每周学科类校外培训时间", "student", "mean", "tutoring_hours", "小时",
               "每周多1小时", higher_is_worse=True,
               phrase="每周校外培训时间每多1小时"),
        Factor("exercise", "每天体育锻炼达到1小时的学生比例", "student", "share", "exercise_minutes", "%",
               "每天多1小时", threshold="exercise_minutes", term="source", term_scale=1 / 60, groups="bool",
               group_labels=("达到1小时", "不足1小时"),
               phrase="每天体育锻炼时间每多1小时",
               standard="中小学生每天校内外体育锻炼时间不少于1小时（中发〔2007〕7号；教体艺厅函〔2021〕16号）"),
        Factor("reading", "每天课外阅读30分钟及以上的学生比例", "student", "share", "reading_minutes", "%",
               "每天多1小时", threshold="reading_minutes", term="source", term_scale=1 / 60, groups="bool",
               group_labels=("30分钟及以上", "不足30分钟"), standard="本地口径（params.yaml）",
               phrase="每天课外阅读时间每多1小时"),
        Factor("interest", "学习兴趣指数", "student", "mean", "interest", "指数", "指数每高1", index=True),
        Factor("confidence", "学习自信心指数", "student", "mean", "confidence", "指数", "指数每高1",
               index=True),
        Factor("relation", "师生关系指数", "student", "mean", "relation", "指数", "指数每高1", index=True),
        Factor("bullying", "遭受校园欺凌指数", "student", "mean", "bullying", "指数", "指数每高1",
               index=True, higher_is_worse=True),
        Factor("wellbeing", "心理健康指数", "student", "mean", "wellbeing", "指数", "指数每高1", index=True),
        # --- teachers (教师问卷), as attributes of the student's school ---
        Factor("t_degree", "教师本科及以上学历比例", "teacher", "share", "education", "%",
               "该比例每高10个百分点", op="in", values=("bachelor", "postgraduate"), term_scale=10.0,
               groups="quartiles",
               phrase="学校中本科及以上学历教师的比例每高10个百分点"),
        Factor("t_major", "教师所学专业与任教学科一致的比例", "teacher", "share", "major_match", "%",
               "该比例每高10个百分点", op="==", term_scale=10.0,
               phrase="学校中专业对口教师的比例每高10个百分点"),
        Factor("t_training", "年培训达到72学时的教师比例", "teacher", "share", "training_hours", "%",
               "该比例每高10个百分点", threshold="training_hours", term_scale=10.0,
               standard="教师五年一周期不少于360学时培训，年均72学时（教师〔2011〕1号）",
               phrase="学校中年培训达到72学时的教师比例每高10个百分点"),
        Factor("t_lessons", "教师平均周课时", "teacher", "mean", "weekly_lessons", "节",
               "每周多1节", higher_is_worse=True,
               phrase="学校教师平均周课时每多1节"),
        Factor("t_method", "教师教学方式指数", "teacher", "mean", "method", "指数", "指数每高1",
               index=True),
        Factor("t_workload", "教师工作负担指数", "teacher", "mean", "workload", "指数", "指数每高1",
               index=True, higher_is_worse=True),
        # --- principals (校长问卷), as attributes of the student's school ---
        Factor("p_curriculum", "所在学校国家课程开齐开足的学生比例", "principal", "share",
               "curriculum_complete", "%", "开齐开足与未开齐开足相比", op="==", term_scale=1.0,
               groups="bool", group_labels=("开齐开足", "未开齐开足"),
               phrase="国家课程开齐开足的学校与未开齐开足的学校相比",
               standard="义务教育课程方案（2022年版）：国家课程开齐开足"),
        Factor("p_pe_art", "所在学校音体美专任教师配齐的学生比例", "principal", "share", "pe_art_staffed",
               "%", "配齐与未配齐相比", op="==", groups="bool", group_labels=("已配齐", "未配齐"),
               phrase="音体美专任教师配齐的学校与未配齐的学校相比"),
        Factor("p_facility", "学校设施使用指数", "principal", "mean", "facility_use", "指数",
               "指数每高1", index=True),
        Factor("p_home_school", "家校合作指数", "principal", "mean", "home_school", "指数", "指数每高1",
               index=True),
        Factor("p_after_school", "所在学校每周5天提供课后服务的学生比例", "principal", "share",
               "after_school_days", "%", "提供与未提供相比", threshold="after_school_days",
               groups="bool", group_labels=("每周5天", "不足5天"),
               phrase="每周5天提供课后服务的学校与不足5天的学校相比",
               standard="双减（中办发〔2021〕40号）：课后服务“5+2”，每周5天全覆盖"),
    )
}  # fmt: skip

STUDENT_FACTORS = tuple(f for f in FACTORS if FACTORS[f].level == "student")
SCHOOL_FACTORS = tuple(f for f in FACTORS if FACTORS[f].is_school)
CAUSALITY_CAVEAT = (
    "以下为相关分析：它描述各因素与学业成绩在统计上的关联，不能据此推断因果关系；"
    "整改措施的选择还需结合学校实际调研。"
)


def national_key(factor_id: str, sd: bool = False) -> str:
    """The ``county_reports`` indicator of a factor's national value (``factor_<id>``, ``_sd``)."""
    return f"factor_{factor_id}" + ("_sd" if sd else "")


def index_scores(frame: pd.DataFrame, index: Index, min_share: float = 0.5) -> np.ndarray:
    """The index of each row: mean of the answered items (reverse-coded ``5 − x``), NaN when fewer
    than ``ceil(min_share · k)`` of the ``k`` items are answered or no item column is present.

    Hand example (tests/test_catalogue.py): items (4, 3, 1) with item 3 reversed -> (4 + 3 + 4)/3.
    """
    k = index.n_items
    cols = []
    for i, name in enumerate(index.items, start=1):
        x = (
            pd.to_numeric(frame[name], errors="coerce").to_numpy(dtype=float)
            if name in frame
            else np.full(len(frame), np.nan)
        )
        cols.append(ITEM_MIN + ITEM_MAX - x if i in index.reverse else x)
    m = np.column_stack(cols) if cols else np.empty((len(frame), 0))
    answered = np.isfinite(m).sum(axis=1)
    need = max(1, int(np.ceil(min_share * k - 1e-9)))
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.nansum(m, axis=1) / answered
    return np.where(answered >= need, mean, np.nan)


def _meets(f: Factor, x: pd.Series, standards: Mapping[str, float]) -> np.ndarray:
    """1.0 / 0.0 where the condition of a share factor holds / fails, NaN where ``x`` is missing."""
    if f.op == "in":
        missing = x.isna().to_numpy()
        out = x.isin(f.values).to_numpy(dtype=float)
    elif f.op == "==":
        v = (
            pd.array(x, dtype="boolean")
            if x.dtype != object
            else pd.array(x.map(_truth), "boolean")
        )
        missing = pd.isna(v)
        out = np.asarray(v.fillna(False), dtype=float)
    else:
        v = pd.to_numeric(x, errors="coerce").to_numpy(dtype=float)
        missing = np.isnan(v)
        with np.errstate(invalid="ignore"):
            out = (v >= standards[f.threshold]).astype(float)
    return np.where(missing, np.nan, out)


def _truth(v):
    if v is None or (isinstance(v, float) and np.isnan(v)):
        return None
    return bool(v)


def raw_values(
    f: Factor, frame: pd.DataFrame, standards: Mapping[str, float], min_share: float
) -> np.ndarray:
    """Per row of the level's table: the factor's unit value — 1/0 (share factors) or the mean
    variable / index (mean factors); NaN when missing."""
    if f.index:
        return index_scores(frame, INDICES[f.source], min_share)
    if f.source not in frame:
        return np.full(len(frame), np.nan)
    if f.measure == "share":
        return _meets(f, frame[f.source], standards)
    return pd.to_numeric(frame[f.source], errors="coerce").to_numpy(dtype=float)
