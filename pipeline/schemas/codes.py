"""Code lists (raw value as offices write it -> canonical code, and the labels back) and the
problem-list vocabulary."""

from __future__ import annotations

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

# 4-point questionnaire items (student, teacher, principal questionnaires): the answer words of the
# two formats -> item value. Ingest also takes the numbers 1–4; anything else sets the row aside.
LIKERT_CODES = {
    "非常不同意": 1, "完全不同意": 1, "不同意": 2, "比较不同意": 2, "同意": 3, "比较同意": 3,
    "非常同意": 4, "完全同意": 4,
    "从不": 1, "从未": 1, "偶尔": 2, "很少": 2, "有时": 3, "经常": 4, "总是": 4,
}  # fmt: skip
LIKERT_ANSWERS = {  # format (Column.answers) -> the words of 1 … 4, as forms print them
    "agree": ("非常不同意", "不同意", "同意", "非常同意"),
    "often": ("从不", "偶尔", "有时", "经常"),
}

EDUCATION_CODES = {
    "研究生": "postgraduate", "硕士": "postgraduate", "博士": "postgraduate",
    "研究生及以上": "postgraduate", "硕士研究生": "postgraduate", "博士研究生": "postgraduate",
    "本科": "bachelor", "大学本科": "bachelor", "专科": "college", "大专": "college",
    "大学专科": "college", "高中及以下": "secondary", "高中": "secondary", "中专": "secondary",
    "中师": "secondary", "postgraduate": "postgraduate", "bachelor": "bachelor",
    "college": "college", "secondary": "secondary",
}  # fmt: skip
EDUCATION_LABELS = {
    "postgraduate": "研究生", "bachelor": "本科", "college": "专科", "secondary": "高中及以下",
}  # fmt: skip

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
