"""What the offices fill in, per raw table: the form's columns, their meaning and allowed values.

One source for the folder guides written by ``eqm init`` (``data/raw/<table>/README.md``) and the
fill-in workbooks of ``eqm templates``. Columns, types, units, ranges and code lists come from
:mod:`pipeline.schemas` (and the round's ``params.yaml`` for county names and score ranges); only
the plain-Chinese explanation and an example value per column are declared here, and
``tests/test_collect.py`` checks that every form column has them.

The header of every form is the column's Chinese label (``Column.label``), a name ingest
recognises with no alias and no ``sources.yaml`` entry. Personal data stays off the forms: 姓名 and
身份证号 are never asked for; the 学生编号 and 教师编号 are (ingest replaces them by a salted hash at
once). Questionnaire items (``Column.answers``) are whole numbers 1–4 on the forms; their guidance
is written from the item's scale (:func:`item_note`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import pipeline.schemas as schemas
from pipeline.config import RAW_TABLES

# Columns of a canonical table that a person never fills in: derived by ingest.
DERIVED = {"schools": frozenset({"source_stage"})}

# Code lists: column -> the schemas map whose values ingest parses the column with.
CODE_LISTS: dict[str, Mapping[str, object]] = {
    "grade": schemas.GRADE_CODES,
    "gender": schemas.GENDER_CODES,
    "urban_rural": schemas.URBAN_RURAL_CODES,
    "subject": schemas.SUBJECT_CODES,
    "level": schemas.LEVEL_CODES,
    "stage": schemas.STAGE_CODES,
    "school_type": schemas.SCHOOL_TYPE_CODES,
    "scope": schemas.SCOPE_CODES,
    "education": schemas.EDUCATION_CODES,
}

# Tables whose rows must name their county (区县代码 or 区县: 二选一); the questionnaires link through
# their school, so the county is optional there (ingest's check_columns).
COUNTY_REQUIRED = ("students", "schools", "county_reports")

# What the folder guide and the workbook say about personal data, per table.
PRIVACY_NOTES = {
    "students": "不要放入姓名、身份证号（即使放入也会在读取时删除）；学生编号在导入时换成加盐哈希。",
    "scores": "不要放入姓名、身份证号（即使放入也会在读取时删除）；学生编号在导入时换成加盐哈希。",
    "teachers": "不要放入教师姓名、身份证号（即使放入也会在读取时删除）；教师编号在导入时换成加盐哈希。",
    "principals": "不要放入校长姓名、身份证号（即使放入也会在读取时删除）。",
}

# Numeric columns that must be above their minimum, not equal to it (data contract: weight > 0).
POSITIVE = frozenset({"weight"})

# Suggested values of free-text columns (ingest keeps any text; only these are used downstream).
SUGGESTED = {
    ("county_reports", "indicator"): tuple(schemas.INDICATOR_LABELS),
    ("county_reports", "group_var"): tuple(schemas.GROUP_VAR_LABELS),
    ("previous_problems", "rule_id"): tuple(schemas.PROBLEM_RULES),
    ("previous_problems", "severity"): schemas.SEVERITIES,
    ("previous_problems", "status"): (*schemas.PROBLEM_OPEN_STATUSES, schemas.STATUS_CLOSABLE),
}

# What one row of each form is, and what the folder holds.
TABLE_ROWS = {
    "students": "每名被抽样学生在每个监测年份填一行（国家监测的学生数据与问卷结果）。",
    "scores": "每名学生的每个学科填一行（学业成绩长表，与学生数据按监测年份 + 学生编号对应）。",
    "schools": "每所学校（学段）每年填一行（教育事业统计中的办学条件）；九年一贯制、完全中学、"
    "十二年一贯制学校可只填一行，并填写各学段在校生数，导入时按学段拆分。",
    "county_reports": "国家监测区县报告中印出的汇总数值，每个数值一行（本县、全省、全国各一行）。",
    "previous_problems": "上一轮反馈的问题清单，每个问题一行（手工录入）。",
    "teachers": "教师问卷：被抽样学校中监测年级的每名答卷教师每年填一行；按监测年份 + 学校编号与学生"
    "关联（分学科统计时再按年级、学科关联）。",
    "principals": "校长问卷：每所被抽样学校每年填一行（九年一贯制等一贯制学校只填一行）；按监测年份 + "
    "学校编号与学生关联。",
}
# The questionnaire each table's items belong to (item guidance).
QUESTIONNAIRE_NAMES = {"students": "学生问卷", "teachers": "教师问卷", "principals": "校长问卷"}

# Column guidance: (meaning, example) by column name, with per-table overrides.
_NOTES: dict[str, tuple[str, str]] = {
    "year": ("监测实施的年份，四位数字。", "2025"),
    "student_id": (
        "学籍号或考号，同一年份内每名学生唯一，学生数据与成绩中的写法须一致。导入时即换成加盐哈希，"
        "原始编号不会写入任何结果。该列为文本格式，长编号不会变成科学计数法。",
        "G450107201109094763",
    ),
    "county_code": (
        "6 位行政区划代码。与「区县」两列至少填一列，都填时以代码为准。",
        "450107",
    ),
    "county_name": ("区县名称（横县请写横州市，旧名也能识别）。", "西乡塘区"),
    "school_id": ("学校标识码（教育事业统计中的 10 位代码），按文本填写。", "2145010702"),
    "school_name": ("学校全称。报告不对学校排名。", "西乡塘区第一小学"),
    "grade": ("监测年级。", "四年级"),
    "gender": ("学生性别。", "女"),
    "urban_rural": ("学校所在地的城乡类型。", "城区"),
    "left_behind": ("是否留守儿童。", "否"),
    "migrant": ("是否随迁子女（可不填）。", "否"),
    "ses": ("家庭社会经济文化地位指数（国家监测给出的标准化值，可不填）。", "-0.35"),
    "weight": ("国家监测数据中的最终学生权重，须大于 0。", "23.15"),
    "homework_minutes": ("学生问卷：每天完成书面作业的时间（可不填）。", "60"),
    "sleep_hours": ("学生问卷：每天睡眠时间（可不填）。", "9.5"),
    "myopia": ("视力检查结果是否为视力不良（可不填）。", "否"),
    "fitness_score": (
        "《国家学生体质健康标准》总分，含加分最高 120（可不填）。",
        "82.5",
    ),
    "tutoring": ("学生问卷：本学期是否参加学科类校外培训（可不填）。", "否"),
    "tutoring_hours": ("学生问卷：每周参加学科类校外培训的时间，没有参加的填 0（可不填）。", "2"),
    "exercise_minutes": ("学生问卷：每天校内外体育锻炼的时间（可不填）。", "60"),
    "reading_minutes": ("学生问卷：每天课外阅读的时间（可不填）。", "30"),
    "teacher_id": (
        "教师工号或本地编号，同一年份内每名教师唯一。导入时即换成加盐哈希（与学生编号用同一个盐），"
        "原始编号不会写入任何结果。该列为文本格式。",
        "T450107012",
    ),
    "education": ("教师的最高学历。", "本科"),
    "major_match": ("所学专业与任教学科是否一致。", "是"),
    "years_teaching": ("教龄。", "12"),
    "training_hours": ("近一年参加各级培训的学时（可不填）。", "80"),
    "weekly_lessons": ("每周课时数。", "14"),
    "curriculum_complete": ("国家课程是否开齐开足。", "是"),
    "pe_art_staffed": ("音乐、体育、美术专任教师是否配齐。", "是"),
    "after_school_days": ("每周开展课后服务的天数（0–7）。", "5"),
    "subject": ("学科名称。", "语文"),
    "scale_score": (
        "学科量尺分数（国家监测量尺，平均 500、标准差 100）。有似真值时可在右侧加 pv1、pv2…列。",
        "512.3",
    ),
    "level": ("学业水平（可不填：按 params.yaml 中的分界分数由量尺分数推出）。", "Ⅲ"),
    "stage": ("学段；一贯制学校只填一行时选一贯制类型。", "小学"),
    "school_type": ("学校类别（不填按普通学校）；特殊教育、职业学校不计入均衡评估。", "普通"),
    "enrollment": ("在校生数（单一学段学校必填；一贯制学校可填全校合计）。", "1769"),
    "enrollment_primary": ("一贯制学校的小学部在校生数。", "420"),
    "enrollment_junior": ("一贯制、完全中学的初中部在校生数。", "260"),
    "enrollment_senior": ("完全中学、十二年一贯制学校的高中部在校生数。", "0"),
    "is_teaching_point": ("是否教学点；不足 50 人的教学点不计入均衡评估。", "否"),
    "teachers_above_degree": ("高于规定学历的专任教师数（全校或本学段）。", "115"),
    "backbone_teachers": ("县级及以上骨干教师数。", "13"),
    "pe_art_teachers": ("体育、音乐、美术专任教师数。", "28"),
    "teaching_aux_area_m2": ("教学及辅助用房面积。", "11121"),
    "sports_area_m2": ("体育运动场馆面积。", "14103"),
    "equipment_value_yuan": (
        "教学仪器设备值，单位为元（以万元统计的请乘以 10000）。",
        "4072000",
    ),
    "multimedia_classrooms": ("网络多媒体教室数。", "46"),
    "indicator": ("指标代码（英文，见下方指标代码表）。", "mean_score"),
    "group_var": ("分组变量代码（全体学生的数值留空）。", "gender"),
    "group_value": (
        "分组取值，群体差异写作「优势组-弱势组」，如 female-male、urban-rural、Q4-Q1（全体留空）。",
        "female-male",
    ),
    "scope": ("数值的范围：本县、全省或全国。", "本县"),
    "value": ("报告中印出的数值（百分比写 0–100 的数，不带 %）。", "552.89"),
    "se": ("报告中印出的标准误（没有则留空）。", "4.1"),
    "n": ("样本量（学生数，没有则留空）。", "362"),
    "source_page": ("数值所在的报告页码，便于核对。", "第6页"),
    "problem_id": ("清单中的问题编号（原样保留，作为「上一轮编号」）。", "NN2020-001"),
    "rule_id": (
        "问题规则代码（见下方规则代码表；也可填 MEAN、MEDIUM、LEVEL，不认识的按指标对应）。",
        "ICC",
    ),
    "domain": ("问题领域（可不填）。", "学业质量"),
    "title": ("问题描述（原样抄录）。", "八年级德育校际差异率为0.53，高于0.15"),
    "severity": ("严重程度（可不填）。", "高"),
    "responsible_unit": ("责任单位（可不填）。", "基教科"),
    "deadline": ("整改时限（可不填）。", "2026年12月"),
    "status": ("整改状态（可不填）。", "整改中"),
}
_TABLE_NOTES: dict[tuple[str, str], tuple[str, str]] = {
    ("county_reports", "subject"): ("学科名称（问卷类指标如作业、睡眠留空）。", "科学"),
    ("county_reports", "grade"): ("年级。", "四年级"),
    ("previous_problems", "grade"): ("年级（资源配置类问题留空）。", "八年级"),
    ("previous_problems", "subject"): ("学科（非学科问题留空）。", "德育"),
    ("previous_problems", "indicator"): ("指标代码（同区县报告汇总数据的指标代码）。", "school_difference_rate"),
    ("previous_problems", "group_var"): (
        "分组变量（群体差异填分组代码；资源配置类问题填 stage）。",
        "stage",
    ),
    ("previous_problems", "group_value"): (
        "分组取值（如 female-male；资源配置类问题填 primary 或 junior）。",
        "primary",
    ),
    ("previous_problems", "value"): ("清单中的数值。", "0.532"),
    ("previous_problems", "se"): ("该数值的标准误（没有则留空）。", ""),
    **{
        (t, c): (f"{what}（可不填：问卷按学校编号与学生关联；填写时须是该校所在的区县）。", ex)
        for t in ("teachers", "principals")
        for c, what, ex in (("county_code", "6 位行政区划代码", "450107"),
                            ("county_name", "区县名称", "西乡塘区"))
    },
    ("teachers", "grade"): ("教师任教的监测年级。", "四年级"),
    ("teachers", "subject"): ("教师任教的学科（任教多个学科的填主要学科）。", "数学"),
}  # fmt: skip


def item_note(table: str, col: schemas.Column) -> tuple[str, str]:
    """(meaning, example) of a questionnaire item: its scale, item number and answer words."""
    words = schemas.LIKERT_ANSWERS[col.answers or "agree"]
    scale, k = col.label.rstrip("0123456789"), col.label[len(col.label.rstrip("0123456789")) :]
    coded = "、".join(f"{i} {w}" for i, w in enumerate(words, start=1))
    return (
        f"{QUESTIONNAIRE_NAMES[table]}「{scale}」第 {k} 题的作答，按 1–4 填写（{coded}）；"
        "未作答的留空（可不填）。",
        "3",
    )


@dataclass(frozen=True)
class FormColumn:
    """One column of a fill-in form."""

    column: schemas.Column
    meaning: str
    example: str
    required: bool
    choices: tuple[str, ...] = ()  # a drop-down: ingest accepts exactly these (and variants)
    suggested: tuple[str, ...] = ()  # a drop-down of suggestions: other text is kept as well
    kind: str = "text"  # text | whole | decimal | code
    low: float | None = None
    low_open: bool = False  # the value must be above ``low`` (student weight > 0)
    high: float | None = None

    @property
    def header(self) -> str:
        return self.column.label


def choices_of(codes: Mapping[str, object]) -> tuple[str, ...]:
    """The Chinese spelling of each code of a code map, in the map's order.

    The first key with a non-ASCII character names a code (男 for male, 四年级 for 4, Ⅰ for I,
    九年一贯制 for nine_year); ingest maps every key of the map, so each choice is read back.
    """
    first: dict[object, str] = {}
    for key, code in codes.items():
        if not key.isascii():
            first.setdefault(code, key)
    return tuple(first.values())


BOOL_CHOICES = choices_of(schemas.BOOL_CODES)


def form_columns(
    table: str,
    county_names: Mapping[str, str] | None = None,
    score_range: tuple[float, float] | None = None,
) -> list[FormColumn]:
    """The columns of ``table``'s form, in the canonical order.

    ``county_names`` (code -> name, ``monitoring.counties``) gives the 区县代码 / 区县 drop-downs;
    ``score_range`` the accepted 量尺分数 (the widest plausible range in params.yaml).
    """
    tbl = schemas.INPUT_TABLES[table]
    out = []
    for c in tbl.columns:
        if c.dropped or c.name in DERIVED.get(table, ()):
            continue
        if c.answers is not None:
            meaning, example = item_note(table, c)
        else:
            meaning, example = _TABLE_NOTES.get((table, c.name)) or _NOTES[c.name]
        kw: dict = {}
        if c.name in CODE_LISTS:
            kw = {"kind": "code", "choices": choices_of(CODE_LISTS[c.name])}
        elif c.dtype == "bool":
            kw = {"kind": "code", "choices": BOOL_CHOICES}
        elif c.name == "county_code" and county_names:
            kw = {"kind": "code", "choices": tuple(map(str, county_names))}
        elif c.name == "county_name" and county_names:
            kw = {"kind": "code", "choices": tuple(county_names.values())}
        elif c.dtype in ("int", "float"):
            whole = c.dtype == "int" or c.unit in ("人", "间") or c.answers is not None
            low, high = c.min, c.max
            if c.name == "scale_score" and score_range is not None:
                low, high = score_range
            kw = {"kind": "whole" if whole else "decimal", "low": low, "high": high}
            kw["low_open"] = c.name in POSITIVE
        if (table, c.name) in SUGGESTED:
            kw = {"suggested": tuple(SUGGESTED[(table, c.name)])}
        out.append(FormColumn(c, meaning, example, c.required, **kw))
    return out


def required_note(table: str, col: FormColumn) -> str:
    """必填 / 选填 / 二选一, as the guide prints it."""
    if col.column.name in ("county_code", "county_name") and table in COUNTY_REQUIRED:
        return "二选一"
    if table == "scores" and col.column.name in ("scale_score", "level"):
        return "二选一"
    return "必填" if col.required else "选填"


def allowed_text(col: FormColumn) -> str:
    """What may be written in the column, in words (the guide's 「可填写的值」)."""
    if col.choices:
        return "下拉选择：" + "、".join(col.choices)
    if col.suggested:
        return "可下拉选择：" + "、".join(col.suggested)
    if col.kind in ("whole", "decimal"):
        what = "整数" if col.kind == "whole" else "数字"
        if col.low is not None and col.high is not None and col.low_open:
            return f"{what}，大于 {_num(col.low)}、不大于 {_num(col.high)}"
        if col.low is not None and col.high is not None:
            return f"{what}，{_num(col.low)}–{_num(col.high)}"
        if col.low is not None:
            return f"{what}，{'大于' if col.low_open else '不小于'} {_num(col.low)}"
        return what
    return "文本"


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


def folder_readme(table: str) -> str:
    """``data/raw/<table>/README.md``: what goes in the folder, in which formats, an example."""
    tbl = schemas.INPUT_TABLES[table]
    cols = form_columns(table)
    header = ",".join(c.header for c in cols)
    example = ",".join(c.example for c in cols)
    lines = [
        f"# {tbl.label}（{table}）",
        "",
        TABLE_ROWS[table],
        "",
        "- 文件：本文件夹可放任意多个文件，文件名不限；一个文件可含多个区县和年份。"
        "以 README 开头的文件会被忽略。",
        "- 格式：`.xlsx`（推荐：用 `eqm templates` 生成的填写模板，数据在第一个工作表）、"
        "`.csv`（UTF-8 或 GBK）、`.txt`/`.tsv`（Excel 另存的制表符分隔文本）、`.sav`（SPSS）、"
        "`.parquet`。`.xls` 请先另存为 `.xlsx`。",
        "- 列名：用下面示例中的中文列名，导入时直接识别；其他写法可在 `data/raw/sources.yaml` 的 "
        "`aliases:` 中说明。列的顺序不限，选填的列可以没有。",
    ]
    if table in PRIVACY_NOTES:
        lines.append(f"- 隐私：{PRIVACY_NOTES[table]}")
    lines += [
        "",
        "示例（第一行为表头）：",
        "",
        "```",
        header,
        example,
        "```",
        "",
        "| 列名 | 填写 | 含义 | 可填写的值 |",
        "|---|---|---|---|",
    ]
    for c in cols:
        unit = f"（单位：{c.column.unit}）" if c.column.unit else ""
        lines.append(
            f"| {c.header} | {required_note(table, c)} | {c.meaning}{unit} | {allowed_text(c)} |"
        )
    return "\n".join(lines) + "\n"


LEDGER_README = """# 整改台账（ledger）

区县填好后交回的整改台账放在这里：eqm 生成的 `reports/<年>/ledger/<区县代码>.xlsx` 或 `city.xlsx`，
文件名不限，可放多份、各轮的都可以。问题清单环节只读取「整改台账」工作表中黄色单元格填写的内容
（整改措施、责任人、完成时限、进展、佐证材料、销号审核），带入下一次生成的台账。

请不要修改台账的表头、问题编号和隐藏的校验列；格式只接受 `.xlsx`。
"""


def folder_readmes() -> dict[str, str]:
    """Relative path under data/raw -> text, for every table folder and ``ledger/``."""
    out = {f"{t}/README.md": folder_readme(t) for t in RAW_TABLES}
    out["ledger/README.md"] = LEDGER_README
    return out
