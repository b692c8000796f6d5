"""Column metadata, declared once (PUDL's ``fields.py`` idea).

Every canonical table's columns — type, unit, Chinese label, Chinese/English aliases accepted at
ingest, whether required, whether PII — and the code lists (性别, 城乡类型, 学科, 水平, 学段 …) live
here. Ingest uses the aliases and code maps, validate builds its expectation suites from the types
and ranges, and reports take their Chinese labels from here.

Users may add aliases without touching code: ``data/raw/sources.yaml`` ``aliases:`` (see ingest).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np

DType = Literal["int", "float", "str", "bool", "category"]


@dataclass(frozen=True)
class Column:
    name: str
    dtype: DType
    label: str  # Chinese label shown to users (reports, validation pages, error messages)
    aliases: tuple[str, ...] = ()
    required: bool = False
    unit: str | None = None
    pii: bool = False  # dropped (or pseudonymised) at ingest, never written
    min: float | None = None  # hard plausible range (validation); None = unbounded
    max: float | None = None
    description: str = ""

    @property
    def display(self) -> str:
        """``学生权重 (weight)``: the Chinese label with the canonical name, for messages."""
        return f"{self.label}（{self.name}）"


@dataclass(frozen=True)
class Table:
    name: str
    label: str
    columns: tuple[Column, ...]
    key: tuple[str, ...] = ()
    description: str = ""
    extra: dict = field(default_factory=dict)

    def __getitem__(self, name: str) -> Column:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(name)

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]

    @property
    def required(self) -> list[Column]:
        return [c for c in self.columns if c.required]


def _c(name, dtype, label, *aliases, **kw) -> Column:
    return Column(name=name, dtype=dtype, label=label, aliases=tuple(aliases), **kw)


# ------------------------------------------------------------------------------------------------
# Code lists: raw value (as offices write it) -> canonical code. Keys are matched after strip() and
# case-folding. Reports use the *_LABELS maps for the way back.
# ------------------------------------------------------------------------------------------------

GENDER_CODES = {
    "男": "male", "女": "female", "1": "male", "2": "female", "m": "male", "f": "female",
    "male": "male", "female": "female", "男生": "male", "女生": "female",
}  # fmt: skip
GENDER_LABELS = {"male": "男", "female": "女"}

URBAN_RURAL_CODES = {
    "城区": "urban", "城市": "urban", "城镇": "urban", "镇区": "town", "县镇": "town", "镇": "town",
    "乡村": "rural", "农村": "rural", "乡": "rural", "urban": "urban", "town": "town", "rural": "rural",
    "1": "urban", "2": "town", "3": "rural",
}  # fmt: skip
URBAN_RURAL_LABELS = {"urban": "城区", "town": "镇区", "rural": "乡村"}

BOOL_CODES = {
    "是": True, "否": False, "1": True, "0": False, "true": True, "false": False, "yes": True,
    "no": False, "y": True, "n": False, "有": True, "无": False, "1.0": True, "0.0": False,
}  # fmt: skip

SUBJECT_CODES = {
    "数学": "math", "语文": "chinese", "英语": "english", "科学": "science",
    "体育与健康": "pe_health", "体育": "pe_health", "艺术": "arts", "音乐": "arts", "美术": "arts",
    "德育": "moral", "道德与法治": "moral", "劳动": "labor", "心理健康": "mental_health",
    "math": "math", "chinese": "chinese", "english": "english", "science": "science",
    "pe_health": "pe_health", "arts": "arts", "moral": "moral", "labor": "labor",
    "mental_health": "mental_health",
}  # fmt: skip
SUBJECT_LABELS = {
    "math": "数学", "chinese": "语文", "english": "英语", "science": "科学", "pe_health": "体育与健康",
    "arts": "艺术", "moral": "德育", "labor": "劳动", "mental_health": "心理健康",
}  # fmt: skip

LEVELS = ("I", "II", "III", "IV")
LEVEL_CODES = {
    "Ⅰ": "I", "Ⅱ": "II", "Ⅲ": "III", "Ⅳ": "IV", "i": "I", "ii": "II", "iii": "III", "iv": "IV",
    "1": "I", "2": "II", "3": "III", "4": "IV",
    "待提高": "I", "中等": "II", "良好": "III", "优秀": "IV",
    "水平Ⅰ": "I", "水平Ⅱ": "II", "水平Ⅲ": "III", "水平Ⅳ": "IV",
}  # fmt: skip
LEVEL_LABELS = {"I": "Ⅰ 待提高", "II": "Ⅱ 中等", "III": "Ⅲ 良好", "IV": "Ⅳ 优秀"}

GRADE_CODES = {
    "4": 4,
    "四年级": 4,
    "四": 4,
    "4年级": 4,
    "8": 8,
    "八年级": 8,
    "初二": 8,
    "八": 8,
    "8年级": 8,
}
GRADE_LABELS = {4: "四年级", 8: "八年级"}

STAGE_CODES = {
    "小学": "primary", "初中": "junior", "初级中学": "junior", "primary": "primary", "junior": "junior",
    "九年一贯制": "nine_year", "九年一贯制学校": "nine_year", "完全中学": "complete_middle",
    "十二年一贯制": "twelve_year", "十二年一贯制学校": "twelve_year",
    "nine_year": "nine_year", "complete_middle": "complete_middle", "twelve_year": "twelve_year",
}  # fmt: skip
STAGE_LABELS = {"primary": "小学", "junior": "初中"}
GRADE_STAGE = {4: "primary", 8: "junior"}

SCHOOL_TYPE_CODES = {
    "普通": "regular", "普通学校": "regular", "regular": "regular", "特殊教育": "special",
    "特殊教育学校": "special", "特教": "special", "special": "special", "职业": "vocational",
    "职业学校": "vocational", "职业教育": "vocational", "vocational": "vocational",
}  # fmt: skip
SCHOOL_TYPE_LABELS = {"regular": "普通", "special": "特殊教育", "vocational": "职业"}

SCOPE_CODES = {"county": "county", "province": "province", "nation": "nation",
               "本县": "county", "区县": "county", "县": "county", "全省": "province", "省": "province",
               "全区": "province", "全国": "nation", "国家": "nation"}  # fmt: skip
SCOPE_LABELS = {"county": "本县", "province": "全省（区）", "nation": "全国"}

GROUP_VAR_LABELS = {
    "gender": "性别", "urban_rural": "城乡", "left_behind": "留守", "migrant": "随迁",
    "ses_quartile": "家庭社会经济文化地位",
}  # fmt: skip

# ------------------------------------------------------------------------------------------------
# Input tables (canonical form after ingest)
# ------------------------------------------------------------------------------------------------

YEAR = _c("year", "int", "监测年份", "监测年份", "年份", "年度", required=True, min=2015, max=2100)
COUNTY_CODE = _c(
    "county_code", "str", "区县代码", "区县代码", "县区代码", "区县编码", "行政区划代码"
)
COUNTY_NAME = _c("county_name", "str", "区县", "区县", "县区", "区县名称", "县区名称")
SCHOOL_ID = _c("school_id", "str", "学校编号", "学校编号", "学校标识码", "学校代码", required=True)
GRADE = _c("grade", "int", "年级", "年级", required=True)
STUDENT_ID = _c(
    "student_id",
    "str",
    "学生编号",
    "学生编号",
    "学籍号",
    "考号",
    "学生ID",
    required=True,
    pii=True,
    description="pseudonymised at ingest (salted SHA-256); the raw id is never written",
)

STUDENTS = Table(
    name="students",
    label="学生数据",
    key=("year", "student_id"),
    columns=(
        YEAR,
        STUDENT_ID,
        _c("name", "str", "姓名", "姓名", "学生姓名", pii=True),
        _c("id_number", "str", "身份证号", "身份证号", "身份证件号", "身份证号码", pii=True),
        COUNTY_CODE,
        COUNTY_NAME,
        SCHOOL_ID,
        GRADE,
        _c("gender", "category", "性别", "性别"),
        _c("urban_rural", "category", "城乡类型", "城乡类型", "学校所在地", "城乡"),
        _c("left_behind", "bool", "是否留守儿童", "是否留守儿童", "留守儿童", "留守"),
        _c("migrant", "bool", "是否随迁子女", "是否随迁子女", "随迁子女", "随迁"),
        _c("ses", "float", "家庭社会经济文化地位", "家庭社会经济文化地位", "SES", "家庭社会经济地位"),
        # A weight is the number of students one sampled student stands for: above 2e8 (more than
        # the ~1.6e8 students of China's 义务教育, 教育统计公报 2023) it cannot be one; 1e308 is finite
        # but its sums overflow to ±inf estimates.
        _c("weight", "float", "学生权重", "学生权重", "最终权重", "权重", required=True, min=0,
           max=2e8),  # fmt: skip
        _c("homework_minutes", "float", "每天书面作业时间", "书面作业时间", "每天书面作业时间(分钟)",
           "每天书面作业时间（分钟）", unit="分钟", min=0, max=600),
        _c("sleep_hours", "float", "每天睡眠时间", "睡眠时间", "每天睡眠时间(小时)", "每天睡眠时间（小时）",
           unit="小时", min=0, max=24),
        _c("myopia", "bool", "视力不良", "视力不良", "是否近视", "近视"),
        _c("fitness_score", "float", "体质健康总分", "体质健康总分", "体质健康成绩", min=0, max=120),
    ),
)  # fmt: skip

SCORES = Table(
    name="scores",
    label="学业成绩",
    key=("year", "student_id", "subject"),
    description="long: one row per student x subject; plausible values in pv1..pvM when given",
    columns=(
        YEAR,
        STUDENT_ID,
        _c("subject", "category", "学科", "学科", "科目", required=True),
        _c("scale_score", "float", "量尺分数", "量尺分数", "成绩", "分数", "量尺成绩"),
        _c("level", "category", "水平", "水平", "等级", "学业水平"),
    ),
)
PV_PREFIX = "pv"  # plausible values: pv1 ... pvM (M >= 2), columns added to SCORES when present

SCHOOLS = Table(
    name="schools",
    label="学校办学条件",
    key=("year", "school_id", "stage"),
    description="one row per school section per year after the 一贯制 split",
    columns=(
        YEAR,
        COUNTY_CODE,
        COUNTY_NAME,
        SCHOOL_ID,
        _c("school_name", "str", "学校名称", "学校名称", "校名"),
        _c("stage", "category", "学段", "学段", required=True),
        _c("school_type", "category", "学校类别", "学校类别", "办学类型", "学校类型"),
        _c("enrollment", "float", "在校生数", "在校生数", "学生数", unit="人", min=0),
        _c("enrollment_primary", "float", "小学在校生数", "小学在校生数", "小学部在校生数", unit="人", min=0),
        _c("enrollment_junior", "float", "初中在校生数", "初中在校生数", "初中部在校生数", unit="人", min=0),
        _c("enrollment_senior", "float", "高中在校生数", "高中在校生数", "高中部在校生数", unit="人", min=0),
        _c("is_teaching_point", "bool", "教学点", "教学点", "是否教学点"),
        # The 7 resource columns (优质均衡 L1–L7) in the wordings of 教育事业统计 forms and county
        # returns. Ingest also accepts them with a unit in brackets, 县级以上, 专任教师, 资产值 …
        # (pipeline/ingest/headers.py loose_header), so only genuinely different names are listed.
        _c("teachers_above_degree", "float", "高于规定学历教师数", "高于规定学历教师数",
           "高于规定学历专任教师数", "高学历教师数", unit="人", min=0),
        _c("backbone_teachers", "float", "县级及以上骨干教师数", "县级及以上骨干教师数", "县级以上骨干教师数",
           unit="人", min=0),
        _c("pe_art_teachers", "float", "体育艺术专任教师数", "体育艺术专任教师数", "体育、艺术专任教师数",
           "体育、艺术（美术、音乐）专任教师数", "体育艺术教师数", "体艺专任教师数", unit="人", min=0),
        _c("teaching_aux_area_m2", "float", "教学及辅助用房面积", "教学及辅助用房面积",
           "教学及辅助用房面积(平方米)", "教学辅助用房面积", "教学及教辅用房面积", unit="平方米", min=0),
        _c("sports_area_m2", "float", "体育运动场馆面积", "体育运动场馆面积", "体育运动场馆面积(平方米)",
           "体育运动场（馆）面积", "体育运动场地面积", "运动场馆面积", unit="平方米", min=0),
        _c("equipment_value_yuan", "float", "教学仪器设备值", "教学仪器设备值(元)", "教学仪器设备值（元）",
           "教学仪器设备值", "教学仪器设备资产值", "教学仪器设备总值", unit="元", min=0,
           description="a header in 万元 (教学仪器设备值(万元)) is multiplied by 10,000 at ingest"),
        _c("multimedia_classrooms", "float", "网络多媒体教室数", "网络多媒体教室数", "网络多媒体教室",
           "多媒体教室数", unit="间", min=0),
        _c("source_stage", "category", "原始学段", description="nine_year / complete_middle / twelve_year "
           "when the row was split from a whole-school row, else equal to stage"),
    ),
)  # fmt: skip
EQUIPMENT_WAN_ALIASES = ("教学仪器设备值(万元)", "教学仪器设备值（万元）", "教学仪器设备总值(万元)")
RESOURCE_QUANTITIES = (
    "teachers_above_degree", "backbone_teachers", "pe_art_teachers", "teaching_aux_area_m2",
    "sports_area_m2", "equipment_value_yuan", "multimedia_classrooms",
)  # fmt: skip

# Field separators of delimited text files: name (sources.yaml ``delimiter``, the ingest manifest)
# -> (character, Chinese name). Ingest tries them in this order; the report names them.
TEXT_DELIMITERS = {
    "comma": (",", "逗号"),
    "tab": ("\t", "制表符"),
    "semicolon": (";", "分号"),
    "pipe": ("|", "竖线"),
}

# One estimate cell: the key shared by county reports (+ scope) and indicators (+ source).
CELL_KEY = ("year", "county_code", "grade", "subject", "indicator", "group_var", "group_value")

COUNTY_REPORTS = Table(
    name="county_reports",
    label="区县监测报告汇总数据",
    key=(*CELL_KEY, "scope"),
    columns=(
        YEAR,
        COUNTY_CODE,
        COUNTY_NAME,
        _c("grade", "int", "年级", "年级", required=True),
        _c("subject", "category", "学科", "学科", "科目"),
        _c("indicator", "str", "指标", "指标", "指标代码", required=True),
        _c("group_var", "str", "分组变量", "分组变量", "分组"),
        _c("group_value", "str", "分组取值", "分组取值", "组别"),
        _c("scope", "category", "范围", "范围", "比较范围", required=True),
        _c("value", "float", "数值", "数值", "值", required=True),
        _c("se", "float", "标准误", "标准误", min=0),
        _c("n", "float", "样本量", "样本量", "人数", min=0),
        _c("source_page", "str", "报告页码", "报告页码", "页码"),
    ),
)

# ------------------------------------------------------------------------------------------------
# Problem-list vocabulary (one vocabulary for PDF, HTML and workbook; issue 11)
# ------------------------------------------------------------------------------------------------

# previous_status: how a problem stands against the previous round's list.
PROBLEM_STATUSES = ("new", "improved", "unchanged", "worse", "resolved", "not re-measured")
PREVIOUS_STATUS_LABELS = {
    "new": "新问题",                 # the previous round's list did not have it
    "improved": "改善",              # still a problem, significantly better than last round
    "unchanged": "无显著变化",       # still a problem, no significant change
    "worse": "恶化",                 # still a problem, significantly worse
    "resolved": "已达标",            # meets its standard now: listed as 建议销号, not a problem
    "not re-measured": "本轮未复测",  # no data this round (NAEQ subject rotation): status carried
}  # fmt: skip
# status (整改状态) of a row of problems.parquet
STATUS_NEW = "待整改"  # found this round
STATUS_OPEN = "整改中"  # found in an earlier round, still a problem (or not re-measured)
STATUS_CLOSABLE = (
    "建议销号"  # an earlier problem that now meets its standard: a close-out, not a problem
)
PROBLEM_OPEN_STATUSES = (STATUS_NEW, STATUS_OPEN)
SEVERITIES = ("高", "中", "低")  # empty for 建议销号 rows
# Problem rules (problems.parquet rule_id). ACH merges the achievement measures of one county x
# grade x subject (level below Ⅲ, mean and 中等及以上 share below the benchmark) into one problem.
PROBLEM_RULES = {
    "ICC": "校际差异率", "ACH": "学业表现", "GAP": "群体差异", "HOMEWORK": "作业时间",
    "SLEEP": "睡眠", "MYOPIA": "视力", "FITNESS": "体质健康", "RES": "资源配置差异系数",
    "SCHOOL": "学校资源配置",
}  # fmt: skip
# Comparison verdicts (comparisons.parquet verdict): every 「优于/低于全国」 label a report prints.
VERDICT_LABELS = {
    "worse": "显著差于",         # the rule's one-sided test fires (q < alpha): the problem exists
    "better": "显著优于",        # the mirrored one-sided test, BH within its own family
    "no_difference": "与{bench}无显著差异",
    "untested": "未检验",        # no SE and no margin rule, or no benchmark
}  # fmt: skip

PREVIOUS_PROBLEMS = Table(
    name="previous_problems",
    label="上一轮问题清单",
    key=("problem_id",),
    columns=(
        _c("problem_id", "str", "问题编号", "问题编号", required=True),
        YEAR,
        COUNTY_CODE,
        COUNTY_NAME,
        _c("rule_id", "str", "规则", "规则", "规则编号", required=True),
        _c("domain", "str", "领域", "领域", "问题领域"),
        _c("title", "str", "问题", "问题", "问题描述"),
        _c("grade", "int", "年级", "年级"),
        _c("subject", "category", "学科", "学科", "科目"),
        _c("indicator", "str", "指标", "指标", "指标代码", required=True),
        _c("group_var", "str", "分组变量", "分组变量"),
        _c("group_value", "str", "分组取值", "分组取值"),
        _c("value", "float", "数值", "数值", "值"),
        _c("se", "float", "标准误", "标准误", min=0),
        _c("severity", "str", "严重程度", "严重程度"),
        _c("responsible_unit", "str", "责任单位", "责任单位", "牵头单位"),
        _c("deadline", "str", "整改时限", "整改时限", "完成时限"),
        _c("status", "str", "整改状态", "整改状态", "状态"),
    ),
)

INPUT_TABLES = {t.name: t for t in (STUDENTS, SCORES, SCHOOLS, COUNTY_REPORTS, PREVIOUS_PROBLEMS)}

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

OUTPUT_TABLES = {
    t.name: t
    for t in (QUARANTINE, INDICATORS, RESOURCE_BALANCE, SCHOOL_COMPLIANCE, PROBLEMS, COMPARISONS)
}


# ------------------------------------------------------------------------------------------------
# Quality rules: id -> what it means, in plain Chinese (validation pages, reports, messages)
# ------------------------------------------------------------------------------------------------

INGEST_RULES: dict[str, str] = {
    "ingest.bad_year": "监测年份无法识别",
    "ingest.missing_value": "必填项为空",
    "ingest.not_a_number": "应为数字的单元格不是数字",
    "ingest.split_enrollment": "一贯制学校各学段在校生数缺失或为 0，无法按学段拆分",
    "ingest.unknown_code": "代码无法识别（如性别、城乡类型、学科、水平）",
    "ingest.unknown_county": "区县名称或代码无法识别",
    "ingest.error_value": "单元格为 Excel 错误值（#N/A、#VALUE!、#REF!、#DIV/0! 等）",
    "ingest.formula_no_value": "公式没有保存计算结果（请在 Excel 中打开并保存后再发送）",
    "ingest.bad_student_id": "学生编号格式不符（如科学计数法 1.23E+17 或带小数点，已被 Excel 改动）",
    "ingest.county_mismatch": "区县代码与区县名称指向不同的区县",
    "ingest.id_number_in_field": "身份证号出现在非个人信息列中（已隐去，该行未导入）",
}

VALIDATION_ROW_RULES: dict[str, str] = {
    "missing_value": "必填项为空",
    "out_of_range": "数值超出允许范围",
    "invalid_code": "代码不在允许的取值中",
    "missing_student_id": "缺少学生编号",
    "duplicate_student": "同一年份学生编号重复且内容不同（各副本均已隔离，无法判断哪一行正确）",
    "grade_invalid": "年级不是 4 或 8",
    "weight_invalid": "学生权重缺失、不大于 0、不是有限数或大于 2 亿",
    "county_unknown": "区县代码不在 params.yaml 的 monitoring.counties 中",
    "missing_school_id": "缺少学校编号",
    "homework_out_of_range": "每天书面作业时间超出合理范围",
    "sleep_out_of_range": "每天睡眠时间超出合理范围",
    "fitness_out_of_range": "体质健康总分超出合理范围",
    "duplicate_score": "同一学生同一学科的成绩重复且内容不同（各副本均已隔离）",
    "score_out_of_range": "量尺分数超出该年份、学科、年级的合理范围",
    "score_missing": "成绩行没有分数，也没有水平",
    "level_inconsistent": "水平与量尺分数、划界分数不一致",
    "student_unknown": "学生数据中没有这名学生（同一年份、学生编号）",
    "student_quarantined": "这名学生的学生数据行已被隔离，其成绩一并隔离",
    "duplicate_school": "同一年份同一学校同一学段重复且内容不同（各副本均已隔离）",
    "resource_negative": "办学条件数值为负数",
    "enrollment_not_positive": "纳入均衡评估的学校在校生数缺失或不大于 0",
    "duplicate_report_row": "区县报告中同一指标同一组别重复且内容不同（各副本均已隔离）",
    "pct_out_of_range": "百分比不在 0–100 之间",
    "duplicate_problem": "问题编号重复且内容不同（各副本均已隔离）",
    "duplicate_identical": "与另一行完全相同的重复行（保留一行，其余隔离）",
    "weight_implausible": "学生权重与同一区县同一年级的权重中位数相差过大",
    "school_county_mismatch": "区县与其学校所属区县不一致",
}

VALIDATION_FINDING_RULES: dict[str, str] = {
    "few_schools": "样本学校过少",
    "too_many_students": "单校样本学生过多",
    "grade_stage_mismatch": "年级与学校学段不符",
    "subject_not_in_rotation": "学科不在当年国家监测轮次中",
    "rotation_year_unknown": "params.yaml 未给出该年份的监测学科轮次",
    "quarantine_share": "区县被隔离数据比例过高",
    "weight_sum_ratio": "同一区县各校权重和差异过大",
    "level_pct_sum": "各水平百分比之和不等于 100",
    "no_achievement_data": "没有可用的学业成绩数据",
    "no_school_data": "没有可用的学校办学条件数据",
    "no_scores": "有学生数据但没有成绩数据",
    "ingest_counts_mismatch": "导入清单的行数与隔离记录不一致",
    "empty_file": "文件没有数据行",
    "empty_table": "数据表没有任何数据行",
    "rows_mostly_lost": "大部分数据被隔离",
    "county_lost": "区县的数据全部被隔离",
    "stray_county_rows": "少数行的区县不是已登记的区县（疑似填错，已隔离）",
    "year_lost": "某年份的数据全部被隔离",
    "duplicate_identical": "完全相同的重复行（保留一行）",
    "school_county_conflict": "同一学校出现在不同区县",
    "cut_scores_mismatch": "划界分数与数据中的水平不符",
}


def rule_label(rule: str) -> str:
    """Chinese description of a quarantine rule id; several ids joined by ';' are each translated."""
    labels = {**INGEST_RULES, **VALIDATION_ROW_RULES, **VALIDATION_FINDING_RULES}
    parts = [r.strip() for r in str(rule).split(";") if r.strip()]
    return "；".join(labels.get(r, labels.get(r.removeprefix("validate."), r)) for r in parts)
