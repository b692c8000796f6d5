"""Output tables of the stages, and the labels and verdicts shared by their readers."""

from __future__ import annotations

import numpy as np

from pipeline.schemas.core import Column, Table, _c, _items  # noqa: F401
from pipeline.schemas.inputs import CELL_KEY, YEAR  # noqa: F401

# ------------------------------------------------------------------------------------------------
# Output tables
# ------------------------------------------------------------------------------------------------

QUARANTINE = Table(
    name="quarantine",
    label="隔离记录",
    columns=(
        _c("table", "str", "数据表"),
        _c("source_file", "str", "来源文件"),
        _c(
            "source_row",
            "int",
            "来源行号",
            description="row as the user sees it (Excel row / CSV line)",
        ),
        _c("column", "str", "列"),
        _c("rule", "str", "规则"),
        _c("message", "str", "说明"),
        _c("raw_values", "str", "原始值", description="JSON of the row, PII removed"),
        _c("stage", "str", "环节", description="ingest or validate"),
        _c("county_code", "str", "区县代码"),
        _c("year", "int", "监测年份"),
    ),
)

INDICATORS = Table(
    name="indicators",
    label="监测指标",
    key=(*CELL_KEY, "source"),
    columns=(
        YEAR,
        _c("county_code", "str", "区县代码"),
        _c("grade", "int", "年级"),
        _c("subject", "str", "学科", description="empty for questionnaire indicators"),
        _c("indicator", "str", "指标"),
        _c("group_var", "str", "分组变量", description="empty for whole-population rows"),
        _c("group_value", "str", "分组取值"),
        _c("estimate", "float", "估计值"),
        _c("se", "float", "标准误"),
        _c("ci_low", "float", "95%置信区间下限"),
        _c("ci_high", "float", "95%置信区间上限"),
        _c("n_students", "int", "学生数"),
        _c("n_schools", "int", "学校数"),
        _c("method", "str", "方法"),
        _c("source", "str", "来源", description="computed | official"),
        _c("suppressed", "bool", "是否抑制"),
    ),
)

INDICATOR_LABELS = {
    "mean_score": "平均成绩", "pct_level_I": "水平Ⅰ（待提高）比例", "pct_level_II": "水平Ⅱ（中等）比例",
    "pct_level_III": "水平Ⅲ（良好）比例", "pct_level_IV": "水平Ⅳ（优秀）比例",
    "pct_medium_or_above": "中等及以上比例", "pct_good_or_above": "良好及以上比例",
    "achievement_level": "学业水平等级", "school_difference_rate": "校际差异率",
    "eta_squared": "η²（校间方差占比）", "school_mean_cv": "校均分差异系数",
    "gap_mean_score": "群体差异（平均成绩差）", "pct_homework_over_limit": "书面作业超时比例",
    "pct_sleep_sufficient": "睡眠达标比例", "pct_myopia": "视力不良比例",
    "pct_fitness_pass": "体质健康达标比例", "mean_homework_minutes": "平均每天书面作业时间（分钟）",
    "mean_sleep_hours": "平均每天睡眠时间（小时）", "sd_score": "成绩标准差",
}  # fmt: skip


def icc_verdict(ci_low, ci_high, threshold: float = 0.15) -> np.ndarray:
    """'below' (ci_high < threshold), 'above' (ci_low >= threshold) or 'unsure' (else / NaN).

    The verdict on a ``school_difference_rate`` row's interval, declared here because the
    indicators stage (summary counts) and the report (balance table) both use it. The 优质均衡
    requirement is 校际差异率 strictly below 0.15; 'below' means it is met with 95% confidence,
    'above' that it is missed with confidence.
    """
    lo = np.asarray(ci_low, dtype=float)
    hi = np.asarray(ci_high, dtype=float)
    return np.where(hi < threshold, "below", np.where(lo >= threshold, "above", "unsure"))


RESOURCE_BALANCE = Table(
    name="resource_balance",
    label="资源配置均衡",
    key=("year", "county_code", "stage", "indicator"),
    columns=(
        YEAR,
        _c("county_code", "str", "区县代码"),
        _c("stage", "str", "学段"),
        _c("indicator", "str", "指标", description="L1 ... L7"),
        _c("county_value", "float", "县域均值", description="enrolment-weighted mean"),
        _c("cv", "float", "差异系数"),
        _c("threshold", "float", "差异系数标准"),
        _c("passes", "bool", "是否达标（缺失 = 数据不全，无法判定）"),
        _c("n_schools", "int", "学校数"),
    ),
)

RESOURCE_INDICATORS = {
    "L1": "每百名学生拥有高于规定学历教师数",
    "L2": "每百名学生拥有县级及以上骨干教师数",
    "L3": "每百名学生拥有体育、艺术专任教师数",
    "L4": "生均教学及辅助用房面积",
    "L5": "生均体育运动场馆面积",
    "L6": "生均教学仪器设备值",
    "L7": "每百名学生拥有网络多媒体教室数",
}
# Short names of the seven items, for tables where the full name does not fit (task map, summary).
RESOURCE_INDICATOR_SHORT = {
    "L1": "高学历教师", "L2": "骨干教师", "L3": "体育艺术教师", "L4": "教学及辅助用房",
    "L5": "体育运动场馆", "L6": "教学仪器设备", "L7": "网络多媒体教室",
}  # fmt: skip
# Units and display decimals of the seven school values (per 100 students / per student).
RESOURCE_UNITS = {
    "L1": "人/百生", "L2": "人/百生", "L3": "人/百生", "L4": "m²/生", "L5": "m²/生",
    "L6": "元/生", "L7": "间/百生",
}  # fmt: skip
RESOURCE_DECIMALS = {"L1": 2, "L2": 2, "L3": 2, "L4": 1, "L5": 1, "L6": 0, "L7": 2}

SCHOOL_COMPLIANCE = Table(
    name="school_compliance",
    label="学校资源配置达标",
    key=("year", "county_code", "school_id", "stage"),
    columns=(
        YEAR,
        _c("county_code", "str", "区县代码"),
        _c("school_id", "str", "学校编号"),
        _c("stage", "str", "学段"),
        *(_c(k, "float", v) for k, v in RESOURCE_INDICATORS.items()),
        _c("n_met", "int", "达标项数"),
        _c("min_ratio_unmet", "float", "未达标项最低达成率"),
        _c("passes", "bool", "是否达标（缺失 = 数据不全，无法判定）"),
        _c(
            "school_name",
            "str",
            "学校名称",
            description="public; after the contract columns, never used to rank",
        ),
    ),
)

PROBLEMS = Table(
    name="problems",
    label="问题清单",
    key=("year", "problem_id"),
    description=(
        "One row per problem of a round and per close-out (建议销号) of an earlier round's problem. "
        "problem_id is a function of rule and object only (never of the year), so a problem keeps "
        "its number in every round; every problem of the previous round has a row in this round."
    ),
    columns=(
        _c("problem_id", "str", "问题编号", description="rule + object; same in every round"),
        YEAR,
        _c("county_code", "str", "区县代码"),
        _c("domain", "str", "领域"),
        _c("rule_id", "str", "规则", description="key of PROBLEM_RULES"),
        _c("title", "str", "问题"),
        _c("grade", "int", "年级"),
        _c("subject", "str", "学科"),
        _c("indicator", "str", "指标"),
        _c("group_var", "str", "分组变量"),
        _c("group_value", "str", "分组取值"),
        _c("value", "float", "数值"),
        _c("benchmark", "float", "参照值"),
        _c("gap", "float", "差距"),
        _c("se", "float", "标准误"),
        _c("p_value", "float", "p值"),
        _c("q_value", "float", "q值（BH校正）"),
        _c("severity", "str", "严重程度", description="高 | 中 | 低; empty for 建议销号"),
        _c("evidence", "str", "证据", description="JSON: measures, indicator rows, tests, history"),
        _c("previous_status", "str", "与上一轮相比", description="PROBLEM_STATUSES"),
        _c(
            "previous_problem_id", "str", "上一轮编号", description="hand-entered list's own number"
        ),
        _c("previous_year", "int", "上一轮年份", description="round the previous value is from"),
        _c("previous_value", "float", "上一轮数值"),
        _c("change_p", "float", "变化检验p值"),
        _c("change_q", "float", "变化检验q值"),
        _c("lead_unit", "str", "牵头单位"),
        _c("support_units", "str", "配合单位", description="、-separated"),
        _c("responsible_unit", "str", "责任单位", description="牵头：…；配合：…"),
        _c("target", "str", "整改目标", description="measurable, from the rule and its numbers"),
        _c("suggestion", "str", "整改建议", description="from the rule's template and its numbers"),
        _c("deadline", "str", "整改时限"),
        _c("status", "str", "整改状态", description="待整改 | 整改中 | 建议销号"),
    ),
)

COMPARISONS = Table(
    name="comparisons",
    label="与参照值的比较",
    key=(
        "year",
        "county_code",
        "grade",
        "subject",
        "indicator",
        "group_var",
        "group_value",
        "rule_id",
    ),
    description=(
        "Every tested county value against its benchmark (national, provincial or a standard), with "
        "the same test the problem rules use. Reports take every 优于/差于/无显著差异 label from "
        "here, so a label and the problem list never disagree."
    ),
    columns=(
        YEAR,
        _c("county_code", "str", "区县代码"),
        _c("grade", "int", "年级"),
        _c("subject", "str", "学科"),
        _c("indicator", "str", "指标"),
        _c("group_var", "str", "分组变量"),
        _c("group_value", "str", "分组取值"),
        _c("rule_id", "str", "规则", description="candidate rule: ICC LEVEL MEAN MEDIUM GAP ..."),
        _c("value", "float", "数值"),
        _c("benchmark", "float", "参照值"),
        _c("bench_scope", "str", "参照", description="nation | province | standard | configured"),
        _c("gap", "float", "差距"),
        _c("se", "float", "差距的标准误"),
        _c("df", "float", "自由度", description="t reference df (schools - 1); NaN = normal"),
        _c("p_value", "float", "p值（不利方向）"),
        _c("q_value", "float", "q值（不利方向）"),
        _c("p_better", "float", "p值（有利方向）"),
        _c("q_better", "float", "q值（有利方向）"),
        _c("verdict", "str", "结论", description="VERDICT_LABELS key"),
        _c("fires", "bool", "列为问题"),
        _c("problem_id", "str", "问题编号", description="the problem this row belongs to, if any"),
    ),
)

FACTORS = Table(
    name="factors",
    label="相关因素",
    key=("year", "county_code", "grade", "subject", "factor", "kind", "statistic"),
    description=(
        "Related factors (pipeline/catalogue.py) per county x grade: kind value (county value of the "
        "factor vs national), gap (score of group_high minus group_low, per subject), coef (score "
        "points per term unit, statistic unadjusted / adjusted for SES), two_level (per subject: "
        "icc, tau2, sigma2 with factor empty; coef and between_explained per school-level factor)."
    ),
    columns=(
        YEAR,
        _c("county_code", "str", "区县代码"),
        _c("grade", "int", "年级"),
        _c("subject", "str", "学科", description="empty for value rows"),
        _c("factor", "str", "因素", description="pipeline/catalogue.FACTORS id; empty for the null model"),
        _c("level", "str", "来源", description="student | teacher | principal (empty for the null model)"),
        _c("kind", "str", "类别", description="value | gap | coef | two_level"),
        _c("statistic", "str", "统计量", description="coef: unadjusted | adjusted; two_level: icc, tau2, …"),
        _c("estimate", "float", "估计值"),
        _c("se", "float", "标准误"),
        _c("df", "float", "自由度"),
        _c("p_value", "float", "p值", description="two-sided t on df (value: county vs national)"),
        _c("national", "float", "全国", description="value rows: from county_reports (factor_<id>)"),
        _c("national_se", "float", "全国标准误"),
        _c("n_students", "int", "学生数"),
        _c("n_schools", "int", "学校数"),
        _c("group_high", "str", "比较组"),
        _c("group_low", "str", "参照组"),
        _c("r_squared", "float", "R²"),
        _c("r_squared_se", "float", "R²标准误"),
        _c("method", "str", "方法"),
        _c("suppressed", "bool", "是否抑制"),
    ),
)  # fmt: skip

OUTPUT_TABLES = {
    t.name: t
    for t in (
        QUARANTINE, INDICATORS, RESOURCE_BALANCE, SCHOOL_COMPLIANCE, PROBLEMS, COMPARISONS, FACTORS,
    )
}  # fmt: skip
