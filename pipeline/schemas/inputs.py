"""Input tables: the canonical form of each raw table after ingest."""

from __future__ import annotations

from pipeline.schemas.core import Column, Table, _c, _items  # noqa: F401

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
    pseudonymised=True,
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
        # Related factors (相关因素, issue 14): optional questionnaire answers; pipeline/catalogue.py
        _c("tutoring", "bool", "是否参加学科类校外培训", "是否参加学科类校外培训", "参加学科类校外培训",
           "是否参加校外培训", "校外培训"),
        _c("tutoring_hours", "float", "每周校外培训时间", "每周校外培训时间", "每周校外培训时间(小时)",
           "每周校外培训时间（小时）", "校外培训时间", unit="小时", min=0, max=40),
        _c("exercise_minutes", "float", "每天体育锻炼时间", "每天体育锻炼时间", "体育锻炼时间",
           "每天体育锻炼时间(分钟)", "每天体育锻炼时间（分钟）", unit="分钟", min=0, max=600),
        _c("reading_minutes", "float", "每天课外阅读时间", "每天课外阅读时间", "课外阅读时间",
           "每天课外阅读时间(分钟)", "每天课外阅读时间（分钟）", unit="分钟", min=0, max=600),
        *_items("interest", "学习兴趣", 3, "agree"),
        *_items("confidence", "学习自信心", 3, "agree"),
        *_items("relation", "师生关系", 3, "agree"),
        *_items("bullying", "校园欺凌", 3, "often"),  # how often bullied: 1 从不 … 4 经常
        *_items("wellbeing", "心理健康", 4, "agree"),
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

# Teacher and principal questionnaires (相关因素, issue 14): linked to the students through their
# school (year, school_id); teachers also by grade and subject (pipeline/catalogue.py).
TEACHERS = Table(
    name="teachers",
    label="教师问卷",
    key=("year", "teacher_id"),
    description="one row per responding teacher of a monitored grade in a sampled school",
    columns=(
        YEAR,
        _c("teacher_id", "str", "教师编号", "教师编号", "教师工号", "工号", "教师ID", required=True,
           pii=True, pseudonymised=True,
           description="pseudonymised at ingest like student_id (same salt); the raw id is never written"),
        _c("name", "str", "姓名", "姓名", "教师姓名", pii=True),
        _c("id_number", "str", "身份证号", "身份证号", "身份证号码", pii=True),
        COUNTY_CODE,
        COUNTY_NAME,
        SCHOOL_ID,
        _c("grade", "int", "任教年级", "任教年级", "年级", required=True),
        _c("subject", "category", "任教学科", "任教学科", "学科", "所教学科", required=True),
        _c("education", "category", "最高学历", "最高学历", "学历"),
        _c("major_match", "bool", "所学专业与任教学科是否一致", "所学专业与任教学科是否一致", "专业对口",
           "是否专业对口", "所学专业是否对口"),
        _c("years_teaching", "float", "教龄", "教龄", "教龄(年)", "教龄（年）", unit="年", min=0, max=50),
        _c("training_hours", "float", "近一年参加培训学时", "近一年参加培训学时", "培训学时", "年培训学时",
           "近一年培训学时", unit="学时", min=0, max=1000),
        _c("weekly_lessons", "float", "周课时", "周课时", "周课时数", "每周课时", "周课时(节)", unit="节",
           min=0, max=40),
        *_items("method", "教学方式", 3, "often"),  # 启发式 / 探究式 / 合作学习
        *_items("workload", "工作负担", 3, "agree"),  # 工作量大 / 非教学任务多 / 压力大
    ),
)  # fmt: skip

PRINCIPALS = Table(
    name="principals",
    label="校长问卷",
    key=("year", "school_id"),
    description="one row per sampled school and year (a 九年一贯制 school answers once)",
    columns=(
        YEAR,
        COUNTY_CODE,
        COUNTY_NAME,
        SCHOOL_ID,
        _c("name", "str", "姓名", "姓名", "校长姓名", pii=True),
        _c("id_number", "str", "身份证号", "身份证号", "身份证号码", pii=True),
        _c("curriculum_complete", "bool", "国家课程是否开齐开足", "国家课程是否开齐开足", "课程开齐开足",
           "是否开齐开足课程"),
        _c("pe_art_staffed", "bool", "音体美专任教师是否配齐", "音体美专任教师是否配齐",
           "音体美专任教师配备齐全", "音体美教师是否配齐"),
        *_items("facility_use", "设施使用", 3, "often", "功能室使用{k}"),  # 实验室 / 图书室 / 功能室
        *_items("home_school", "家校合作", 3, "often"),
        _c("after_school_days", "float", "每周课后服务天数", "每周课后服务天数", "课后服务天数",
           "每周开展课后服务天数", unit="天", min=0, max=7),
    ),
)  # fmt: skip

INPUT_TABLES = {
    t.name: t
    for t in (STUDENTS, SCORES, SCHOOLS, COUNTY_REPORTS, PREVIOUS_PROBLEMS, TEACHERS, PRINCIPALS)
}
