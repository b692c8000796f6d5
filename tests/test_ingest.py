"""Ingest: every contract column, alias, code list, encoding and layout is read correctly.

Expected values are hand-derived from the fixture cells written in each test (named beside them);
hashes are recomputed independently with hashlib.
"""

from __future__ import annotations

import json
import logging

import numpy as np
import pandas as pd
import pyreadstat
import pytest
from _ingest_fixtures import (
    ID_NUMBERS,
    LOOKUPS,
    NAMES,
    PARAMS,
    RAW_IDS,
    RESOURCE_HEADER,
    SALT,
    STUDENT_HEADER,
    STUDENT_ROWS,
    all_output_bytes,
    ctx,
    h,
    make_root,
    minimal_schools,
    write_csv,
    write_parquet,
    write_xlsx,
)

from pipeline import ingest, schemas
from pipeline.ingest import FileHint, RawFile

NO_HINT = FileHint()


def core(table: str, df: pd.DataFrame, hint: FileHint = NO_HINT, lookups=LOOKUPS):
    raw = RawFile(table, f"{table}/t.csv", df, np.arange(2, len(df) + 2), hint, {"format": "csv"})
    return ingest.ingest_frames([raw], lookups, PARAMS, SALT)


pytestmark = pytest.mark.usefixtures("ingest_salt")


# ------------------------------------------------------------------------------------------------
# every column and every alias of the contract
# ------------------------------------------------------------------------------------------------

# raw cell -> canonical value, written by hand from data-contract.md's code lists
SAMPLE = {
    "year": ("2020", 2020), "student_id": ("S1", h("S1")), "county_code": ("450107", "450107"),
    "county_name": ("西乡塘区", "西乡塘区"), "school_id": ("X1", "X1"), "grade": ("四年级", 4),
    "gender": ("女", "female"), "urban_rural": ("乡村", "rural"), "left_behind": ("是", True),
    "migrant": ("否", False), "ses": ("0.5", 0.5), "weight": ("2.5", 2.5),
    "homework_minutes": ("30", 30.0), "sleep_hours": ("9", 9.0), "myopia": ("否", False),
    "fitness_score": ("80", 80.0), "subject": ("数学", "math"), "scale_score": ("500", 500.0),
    "level": ("Ⅱ", "II"), "school_name": ("一小", "一小"), "stage": ("小学", "primary"),
    "school_type": ("特殊教育", "special"), "enrollment": ("100", 100.0),
    "enrollment_primary": ("100", 100.0), "enrollment_junior": ("0", 0.0),
    "enrollment_senior": ("0", 0.0), "is_teaching_point": ("是", True),
    "teachers_above_degree": ("11", 11.0), "backbone_teachers": ("2", 2.0),
    "pe_art_teachers": ("3", 3.0), "teaching_aux_area_m2": ("450.5", 450.5),
    "sports_area_m2": ("800", 800.0), "equipment_value_yuan": ("200000", 200000.0),
    "multimedia_classrooms": ("4", 4.0), "indicator": ("mean_score", "mean_score"),
    "group_var": ("gender", "gender"), "group_value": ("female-male", "female-male"),
    "scope": ("全国", "nation"), "value": ("512", 512.0), "se": ("3.2", 3.2), "n": ("600", 600.0),
    "source_page": ("12", "12"), "problem_id": ("P1", "P1"), "rule_id": ("R1", "R1"),
    "domain": ("学业", "学业"), "title": ("数学成绩偏低", "数学成绩偏低"), "severity": ("高", "高"),
    "responsible_unit": ("教育局", "教育局"), "deadline": ("2023-06", "2023-06"),
    "status": ("整改中", "整改中"),
    # related factors (issue 14): student questionnaire, teachers, principals
    "tutoring": ("是", True), "tutoring_hours": ("2.5", 2.5), "exercise_minutes": ("45", 45.0),
    "reading_minutes": ("30", 30.0), "teacher_id": ("T1", h("T1")),
    "education": ("大学本科", "bachelor"), "major_match": ("否", False),
    "years_teaching": ("12", 12.0), "training_hours": ("72", 72.0), "weekly_lessons": ("14", 14.0),
    "curriculum_complete": ("是", True), "pe_art_staffed": ("否", False),
    "after_school_days": ("5", 5.0),
    # 4-point items, by answer format (spec: 非常同意 -> 4, 偶尔 -> 2)
    **{c.name: {"agree": ("非常同意", 4.0), "often": ("偶尔", 2.0)}[c.answers]
       for t in schemas.INPUT_TABLES.values() for c in t.columns if c.answers},
}  # fmt: skip
PII_SAMPLE = {"name": "张三丰", "id_number": "450107201001019999"}


def _aliases(c: schemas.Column) -> list[str]:
    return list(dict.fromkeys((c.name, c.aliases and c.label or c.name, *c.aliases)))


# one file per (table, k): every column of the table uses its k-th alias at once (or its last one)
ALIAS_CASES = [
    (t.name, k)
    for t in schemas.INPUT_TABLES.values()
    for k in range(max(len(_aliases(c)) for c in t.columns))
]


def _frame(table: str, headers: dict[str, str] | None = None) -> pd.DataFrame:
    t = schemas.INPUT_TABLES[table]
    cells = {}
    for c in t.columns:
        if c.name == "source_stage":
            continue
        name = (headers or {}).get(c.name, c.name)
        cells[name] = [PII_SAMPLE[c.name] if c.dropped else SAMPLE[c.name][0]]
    return pd.DataFrame(cells, dtype=object)


@pytest.mark.parametrize(("table", "k"), ALIAS_CASES)
def test_every_alias_of_every_column(table, k):
    t = schemas.INPUT_TABLES[table]
    headers = {c.name: _aliases(c)[min(k, len(_aliases(c)) - 1)] for c in t.columns}
    res = core(table, _frame(table, headers))
    out = res.tables[table]
    assert len(out) == 1, res.quarantine.to_dict("records")
    mapping = res.manifest["files"][f"{table}/t.csv"]["columns"]
    for c in t.columns:
        if c.name == "source_stage":
            continue
        if c.name in PII_SAMPLE:
            assert c.name not in out.columns
            assert PII_SAMPLE[c.name] not in out.astype(str).to_string()
            continue
        assert mapping[headers[c.name]] == c.name, (c.name, headers[c.name])
        got = out.loc[0, c.name]
        assert got == SAMPLE[c.name][1], (c.name, headers[c.name], got)


def test_alias_cases_cover_every_alias():
    covered = {
        (t, c.name, _aliases(c)[min(k, len(_aliases(c)) - 1)])
        for t, k in ALIAS_CASES
        for c in schemas.INPUT_TABLES[t].columns
    }
    for t in schemas.INPUT_TABLES.values():
        for c in t.columns:
            for a in c.aliases:
                assert (t.name, c.name, a) in covered


@pytest.mark.parametrize(
    ("header", "column"),
    [
        (" 学生编号 ", "student_id"), ("STUDENT_ID", "student_id"), ("Weight", "weight"),
        ("每天书面作业时间（分钟）", "homework_minutes"), ("每天睡眠时间(小时)", "sleep_hours"),
        ("学生 权重", "weight"), ("ＳＥＳ", "ses"),
    ],
)  # fmt: skip
def test_header_normalisation(header, column):
    res = core("students", _frame("students", {column: header}))
    assert res.tables["students"].loc[0, column] == SAMPLE[column][1]


def test_contract_columns_and_dtypes():
    res = core("students", _frame("students"))
    out = res.tables["students"]
    assert list(out.columns) == [
        c.name for c in schemas.STUDENTS.columns if c.name not in ("name", "id_number")
    ] + ["source_file", "source_row"]
    assert out["year"].dtype == "int64" and out["grade"].dtype == "int64"
    assert str(out["left_behind"].dtype) == "boolean"
    assert out["weight"].dtype == "float64"
    assert out.loc[0, "source_row"] == 2
    for t in ("scores", "schools", "county_reports", "previous_problems"):
        assert list(res.tables[t].columns)[-2:] == ["source_file", "source_row"]
    assert list(res.quarantine.columns) == schemas.QUARANTINE.names


CODE_CASES = [
    ("gender", v, c) for v, c in [("男", "male"), ("女", "female"), ("1", "male"), ("2", "female"),
                                   ("M", "male"), ("f", "female"), ("1.0", "male")]
] + [
    ("urban_rural", v, c) for v, c in [("城区", "urban"), ("镇区", "town"), ("乡村", "rural"), ("3", "rural")]
] + [
    ("left_behind", v, c) for v, c in [("是", True), ("否", False), ("1", True), ("0", False), ("TRUE", True)]
] + [
    ("grade", v, c) for v, c in [("四年级", 4), ("八年级", 8), ("4", 4), ("8", 8), ("4.0", 4)]
]  # fmt: skip


@pytest.mark.parametrize(("column", "raw", "expected"), CODE_CASES)
def test_student_code_lists(column, raw, expected):
    df = _frame("students")
    df[column] = [raw]
    out = core("students", df).tables["students"]
    assert out.loc[0, column] == expected


SCORE_CODE_CASES = [("subject", k, v) for k, v in schemas.SUBJECT_CODES.items()] + [
    ("level", v, c) for v, c in [("Ⅰ", "I"), ("Ⅱ", "II"), ("Ⅲ", "III"), ("Ⅳ", "IV"), ("I", "I"),
                                  ("iv", "IV"), ("待提高", "I"), ("中等", "II"), ("良好", "III"),
                                  ("优秀", "IV"), ("水平Ⅱ", "II")]
]  # fmt: skip


@pytest.mark.parametrize(("column", "raw", "expected"), SCORE_CODE_CASES)
def test_score_code_lists(column, raw, expected):
    df = _frame("scores")
    df[column] = [raw]
    out = core("scores", df).tables["scores"]
    assert out.loc[0, column] == expected


@pytest.mark.parametrize(
    ("column", "raw", "expected"),
    [("stage", "初中", "junior"), ("stage", "小学", "primary"), ("school_type", "普通", "regular"),
     ("school_type", "职业", "vocational"), ("school_type", "", "regular"),
     ("is_teaching_point", "否", False)],
)  # fmt: skip
def test_school_code_lists(column, raw, expected):
    df = _frame("schools")
    df[column] = [raw]
    out = core("schools", df).tables["schools"]
    assert out.loc[0, column] == expected


@pytest.mark.parametrize(
    ("raw", "expected"), [("本县", "county"), ("全省", "province"), ("nation", "nation")]
)
def test_scope_codes(raw, expected):
    df = _frame("county_reports")
    df["scope"] = [raw]
    assert core("county_reports", df).tables["county_reports"].loc[0, "scope"] == expected


@pytest.mark.parametrize(
    ("name", "code", "official"),
    [("西乡塘区", "450107", "西乡塘区"), ("横县", "450181", "横州市"), ("横州市", "450181", "横州市"),
     ("南宁市武鸣区", "450110", "武鸣区"), ("上林", "450125", "上林县")],
)  # fmt: skip
def test_county_names_to_codes(name, code, official):
    df = _frame("students").drop(columns=["county_code"])
    df["county_name"] = [name]
    out = core("students", df).tables["students"]
    assert (out.loc[0, "county_code"], out.loc[0, "county_name"]) == (code, official)


def test_county_code_kept_when_not_in_params():
    """Any county present in the data is processed (domain.md): a valid 6-digit code passes."""
    df = _frame("students")
    df["county_code"] = ["450127"]  # a valid code that is not in params.yaml monitoring.counties
    df["county_name"] = ["某县"]
    out = core("students", df).tables["students"]
    assert out.loc[0, "county_code"] == "450127" and out.loc[0, "county_name"] == "某县"


# ------------------------------------------------------------------------------------------------
# files on disk: encodings and layouts
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("encoding", "reported", "school_name"),
    [("utf-8", "utf-8", "一小"), ("utf-8-sig", "utf-8-sig", "一小"), ("gbk", "gbk", "邕宁区蒲庙镇中心校"),
     ("gb18030", "gb18030", "𠮷祥小学")],  # 𠮷 (U+20BB7) is in GB18030 but not in GBK
)  # fmt: skip
def test_csv_encodings_detected(tmp_path, encoding, reported, school_name):
    root = make_root(tmp_path)
    write_csv(
        root / "data/raw/schools/s.csv",
        ["年份", "区县", "学校编号", "学校名称", "学段", "在校生数"],
        [["2022", "兴宁区", "1", school_name, "小学", "300"]],
        encoding=encoding,
    )
    res = ingest.run(ctx(root))
    out = pd.read_parquet(root / "data/processed/schools.parquet")
    assert out.loc[0, "school_name"] == school_name
    assert out.loc[0, "county_code"] == "450102"
    assert res.manifest["files"]["schools/s.csv"]["encoding"] == reported


def test_encoding_from_sources_yaml(tmp_path):
    root = make_root(tmp_path)
    # sources.yaml names the encoding: detection is skipped and the manifest reports it
    write_csv(root / "data/raw/students/s.csv", STUDENT_HEADER, STUDENT_ROWS, encoding="gbk")
    minimal_schools(root)
    (root / "data/raw/sources.yaml").write_text(
        "files:\n  students/s.csv: {encoding: gbk}\n", encoding="utf-8"
    )
    res = ingest.run(ctx(root))
    assert res.manifest["files"]["students/s.csv"]["encoding"] == "gbk"
    assert len(res.tables["students"]) == 3


def test_students_gbk_csv_full(tmp_path):
    root = make_root(tmp_path)
    write_csv(root / "data/raw/students/s2020.csv", STUDENT_HEADER, STUDENT_ROWS, encoding="gbk")
    minimal_schools(root)
    ingest.run(ctx(root))
    st = pd.read_parquet(root / "data/processed/students.parquet").set_index("source_row")
    # row 2 of the CSV (first data line): every value read by hand from STUDENT_ROWS[0]
    r = st.loc[2]
    assert r["student_id"] == h(RAW_IDS[0])
    assert (r["county_code"], r["grade"], r["gender"], r["urban_rural"]) == (
        "450107",
        4,
        "male",
        "urban",
    )
    assert (r["left_behind"], r["migrant"], r["myopia"]) == (True, False, False)
    assert (r["ses"], r["weight"], r["homework_minutes"], r["sleep_hours"], r["fitness_score"]) == (
        0.25, 12.5, 45.0, 9.5, 88.5,
    )  # fmt: skip
    assert st.loc[3, "county_code"] == "450181"  # 横县 -> 横州市
    assert st.loc[4, ["grade", "gender", "urban_rural"]].tolist() == [8, "female", "town"]
    assert pd.isna(st.loc[4, "ses"]) and pd.isna(st.loc[4, "fitness_score"])
    sc = pd.read_parquet(root / "data/processed/scores.parquet")
    got = {(r.source_row, r.subject): (r.scale_score, r.level) for r in sc.itertuples()}
    # wide columns 数学成绩/数学水平/科学成绩 melted; blank cells give no row (hand from STUDENT_ROWS)
    assert set(got) == {(2, "math"), (2, "science"), (3, "math"), (4, "science")}
    assert got[(2, "math")] == (512.3, "III") and got[(3, "math")] == (401.0, "I")
    assert got[(4, "science")][0] == 601.5
    assert set(sc["student_id"]) == {h(i) for i in RAW_IDS[:3]}


def test_no_pii_anywhere_in_outputs(tmp_path):
    root = make_root(tmp_path)
    rows = [list(r) for r in STUDENT_ROWS] + [
        ["2020", RAW_IDS[3], NAMES[3], ID_NUMBERS[3], "西乡塘区", "4501070001", "4", "男", "城区",
         "是", "否", "0", "not-a-weight", "45", "9", "否", "70", "500", "Ⅱ", ""],
    ]  # fmt: skip
    write_csv(root / "data/raw/students/s.csv", STUDENT_HEADER, rows, encoding="gbk")
    minimal_schools(root)
    res = ingest.run(ctx(root))
    assert len(res.quarantine) == 1  # the bad weight row is quarantined with its raw values...
    raw_values = json.loads(res.quarantine.loc[0, "raw_values"])
    assert raw_values["学生编号"] == h(RAW_IDS[3])  # ...with the hashed id, never the raw one
    assert "姓名" not in raw_values and "身份证号" not in raw_values
    blob = all_output_bytes(root)
    for secret in RAW_IDS + NAMES + ID_NUMBERS:
        assert secret.encode("utf-8") not in blob, secret
        assert secret.encode("gbk") not in blob, secret


def test_xlsx_title_rows_and_excel_row_numbers(tmp_path):
    root = make_root(tmp_path)
    write_xlsx(
        root / "data/raw/students/s2022.xlsx",
        STUDENT_HEADER,
        [[2022, 20220001, "甲", "x", "上林县", 4501250001, 8, 1, 3, 1, 0, 0.1, 7.5, 80, 8.5, 1, 90,
          None, None, 480.25]],
        titles=["2022年南宁市义务教育质量监测学生数据（合成演示）", "单位：南宁市教育局"],
    )  # fmt: skip
    minimal_schools(root)
    res = ingest.run(ctx(root))
    m = res.manifest["files"]["students/s2022.xlsx"]
    assert (m["format"], m["header_row"], m["sheet"]) == ("xlsx", 3, "Sheet1")
    st = res.tables["students"]
    assert st.loc[0, "source_row"] == 4  # title, title, header -> first data row is Excel row 4
    assert st.loc[0, "student_id"] == h(
        "20220001"
    )  # an integer cell hashes like the text "20220001"
    assert st.loc[0, "school_id"] == "4501250001"
    assert (st.loc[0, "gender"], st.loc[0, "urban_rural"], st.loc[0, "grade"]) == (
        "male",
        "rural",
        8,
    )
    assert res.tables["scores"]["subject"].tolist() == ["science"]


def test_blank_rows_keep_row_numbers(tmp_path):
    root = make_root(tmp_path)
    path = root / "data/raw/schools/s.csv"
    path.parent.mkdir(parents=True)
    path.write_text(
        "学段,年份,区县代码,学校编号\n小学,2020,450107,A\n\n,,,\n初中,2020,450107,B\n",
        encoding="utf-8",
    )
    res = ingest.run(ctx(root))
    assert res.tables["schools"].set_index("school_id")["source_row"].to_dict() == {"A": 2, "B": 5}
    assert res.manifest["files"]["schools/s.csv"]["rows_read"] == 2


def test_header_row_override(tmp_path):
    root = make_root(tmp_path)
    # row 1 holds words that are also column aliases, so detection alone would pick it; row 2 is real
    write_xlsx(
        root / "data/raw/schools/s.xlsx",
        ["年份", "区县代码", "学校编号", "学段", "在校生数"],
        [[2022, "450107", "A", "小学", 120]],
        titles=[["年份", "学段", "说明"]],
    )
    (root / "data/raw/sources.yaml").write_text(
        "files:\n  schools/s.xlsx: {header_row: 2}\n", encoding="utf-8"
    )
    res = ingest.run(ctx(root))
    assert res.manifest["files"]["schools/s.xlsx"]["header_row"] == 2
    assert res.tables["schools"].loc[0, "source_row"] == 3
    assert res.tables["schools"].loc[0, "enrollment"] == 120.0


@pytest.mark.parametrize("sheet", ["数据", 2])
def test_sheet_override(tmp_path, sheet):
    root = make_root(tmp_path)
    path = write_xlsx(
        root / "data/raw/schools/s.xlsx",
        ["说明"],
        [["本工作簿第二个工作表为数据"]],
        sheet="说明",
        extra_sheets=[
            ("数据", [["年份", "区县代码", "学校编号", "学段"], [2022, "450110", "W1", "初中"]])
        ],
    )
    assert path.exists()
    value = f'"{sheet}"' if isinstance(sheet, str) else sheet
    (root / "data/raw/sources.yaml").write_text(
        f"files:\n  schools/s.xlsx: {{sheet: {value}}}\n", encoding="utf-8"
    )
    res = ingest.run(ctx(root))
    assert res.manifest["files"]["schools/s.xlsx"]["sheet"] == "数据"
    assert res.tables["schools"].loc[0, ["school_id", "stage"]].tolist() == ["W1", "junior"]


def test_wide_scores_with_pvs_and_levels(tmp_path):
    root = make_root(tmp_path)
    write_csv(
        root / "data/raw/students/s.csv",
        ["year", "student_id", "county_code", "school_id", "grade", "weight", "math_pv1", "math_pv2",
         "math_pv3", "math_level", "科学成绩", "科学水平", "体育与健康成绩"],
        [["2021", "A", "450107", "X", "4", "1", "500", "510", "520", "III", "", "", "77"],
         ["2021", "B", "450107", "X", "4", "1", "", "", "", "", "400", "待提高", ""]],
    )  # fmt: skip
    minimal_schools(root)
    sc = ingest.run(ctx(root)).tables["scores"].set_index(["student_id", "subject"])
    assert list(sc.columns[:6]) == ["year", "scale_score", "pv1", "pv2", "pv3", "level"]
    a = sc.loc[(h("A"), "math")]
    assert (a["pv1"], a["pv2"], a["pv3"], a["level"]) == (500.0, 510.0, 520.0, "III")
    assert pd.isna(a["scale_score"])
    assert sc.loc[(h("A"), "pe_health"), "scale_score"] == 77.0
    assert sc.loc[(h("B"), "science"), ["scale_score", "level"]].tolist() == [400.0, "I"]
    assert len(sc) == 3  # A math, A pe_health, B science


def test_long_scores_utf8_bom_with_pvs(tmp_path):
    root = make_root(tmp_path)
    write_csv(
        root / "data/raw/scores/s.csv",
        ["监测年份", "学生编号", "学科", "PV1", "pv2", "水平"],
        [["2022", "A", "语文", "480", "490", "Ⅲ"], ["2022", "A", "艺术", "520.5", "530", "优秀"]],
        encoding="utf-8-sig",
    )
    minimal_schools(root)
    res = ingest.run(ctx(root))
    sc = res.tables["scores"]
    assert res.manifest["files"]["scores/s.csv"]["encoding"] == "utf-8-sig"
    assert sc[["subject", "pv1", "pv2", "level"]].values.tolist() == [
        ["arts", 520.5, 530.0, "IV"],
        ["chinese", 480.0, 490.0, "III"],
    ]  # fmt: skip (sorted by subject)


def test_equipment_in_wan_yuan(tmp_path):
    root = make_root(tmp_path)
    write_xlsx(
        root / "data/raw/schools/s.xlsx",
        [
            "年份",
            "区县代码",
            "学校编号",
            "学段",
            "在校生数",
            "教学仪器设备值（万元）",
            *RESOURCE_HEADER,
        ],
        [[2020, "450107", "A", "小学", 500, 120.5], [2020, "450107", "B", "初中", 300, "80"]],
        titles=["2020年学校办学条件统计表"],
    )
    sch = ingest.run(ctx(root)).tables["schools"].set_index("school_id")
    # 120.5 万元 = 1,205,000 元; 80 万元 = 800,000 元 (1 万 = 10,000)
    assert sch.loc["A", "equipment_value_yuan"] == pytest.approx(1_205_000.0)
    assert sch.loc["B", "equipment_value_yuan"] == pytest.approx(800_000.0)


# the other 5 resource columns at the end, left empty (a schools file gives all 7 or none)
SPLIT_HEADER = ["年份", "区县代码", "学校编号", "学段", "在校生数", "小学在校生数", "初中在校生数",
                "高中在校生数", "高于规定学历教师数", "教学仪器设备值(元)",
                *RESOURCE_HEADER[1:]]  # fmt: skip


def test_yiguanzhi_split(tmp_path):
    root = make_root(tmp_path)
    rows = [
        # 九年一贯制 A=600, B=400: primary share 600/(600+1.1*400) = 600/1040 (domain.md)
        ["2022", "450107", "N", "九年一贯制", "1000", "600", "400", "", "10.4", "1040000"],
        # 完全中学 junior 600, senior 500: junior share 600/(600+1.2*500) = 600/1200 = 0.5
        ["2022", "450107", "C", "完全中学", "1100", "", "600", "500", "30", "2000000"],
        # 十二年一贯制 500/400/250: weights 500 : 440 : 330 of 1270
        ["2022", "450107", "T", "十二年一贯制", "1150", "500", "400", "250", "12.7", "1270"],
        ["2022", "450107", "P", "小学", "", "350", "", "", "5", "100"],
    ]
    write_csv(root / "data/raw/schools/s.csv", SPLIT_HEADER, rows)
    sch = ingest.run(ctx(root)).tables["schools"].set_index(["school_id", "stage"])
    assert sch.loc[("N", "primary"), "equipment_value_yuan"] == pytest.approx(600_000)
    assert sch.loc[("N", "junior"), "equipment_value_yuan"] == pytest.approx(440_000)
    assert sch.loc[("N", "primary"), "teachers_above_degree"] == pytest.approx(6.0)  # 10.4*600/1040
    assert sch.loc[("N", "junior"), "teachers_above_degree"] == pytest.approx(4.4)
    assert (
        sch.loc[("N", "primary"), "enrollment"] == 600
        and sch.loc[("N", "junior"), "enrollment"] == 400
    )
    assert sch.loc[("C", "junior"), "equipment_value_yuan"] == pytest.approx(1_000_000)
    assert sch.loc[("C", "junior"), "teachers_above_degree"] == pytest.approx(15.0)
    assert ("C", "primary") not in sch.index and "senior" not in sch.index.get_level_values(1)
    assert sch.loc[("T", "primary"), "equipment_value_yuan"] == pytest.approx(500)
    assert sch.loc[("T", "junior"), "equipment_value_yuan"] == pytest.approx(440)
    assert sch.loc[("T", "junior"), "teachers_above_degree"] == pytest.approx(4.4)  # 12.7*440/1270
    assert sch.loc[("P", "primary"), "enrollment"] == 350  # falls back to 小学在校生数
    src = sch["source_stage"].to_dict()
    assert src[("N", "primary")] == "nine_year" and src[("C", "junior")] == "complete_middle"
    assert src[("T", "junior")] == "twelve_year" and src[("P", "primary")] == "primary"
    assert len(sch) == 6


def test_yiguanzhi_without_section_enrolment_is_quarantined(tmp_path):
    root = make_root(tmp_path)
    rows = [["2022", "450107", "N", "九年一贯制", "1000", "", "", "", "10", "100"],
            ["2022", "450107", "P", "小学", "300", "", "", "", "5", "100"]]  # fmt: skip
    write_csv(root / "data/raw/schools/s.csv", SPLIT_HEADER, rows)
    res = ingest.run(ctx(root))
    q = res.quarantine
    assert q[["source_row", "rule", "column"]].values.tolist() == [
        [2, "ingest.split_enrollment", "学段"]
    ]
    assert "小学在校生数" in q.loc[0, "message"]
    assert res.tables["schools"]["school_id"].tolist() == ["P"]


def test_sav_value_labels(tmp_path):
    root = make_root(tmp_path)
    df = pd.DataFrame(
        {"year": [2022.0, 2022.0], "xx": [4501100001.0, 4501100002.0], "county": [1.0, 2.0],
         "stage": [1.0, 3.0], "enroll": [320.0, 900.0], "enr_p": [np.nan, 500.0],
         "enr_j": [np.nan, 400.0], "tp": [1.0, 0.0]}
    )  # fmt: skip
    path = root / "data/raw/schools/s2022.sav"
    path.parent.mkdir(parents=True)
    pyreadstat.write_sav(
        df,
        str(path),
        column_labels=[
            "年份",
            "学校编号",
            "区县",
            "学段",
            "在校生数",
            "小学在校生数",
            "初中在校生数",
            "教学点",
        ],
        variable_value_labels={
            "county": {1.0: "武鸣区", 2.0: "横县"},
            "stage": {1.0: "小学", 2.0: "初中", 3.0: "九年一贯制"},
            "tp": {1.0: "是", 0.0: "否"},
        },
    )
    res = ingest.run(ctx(root))
    sch = res.tables["schools"].set_index(["school_id", "stage"])
    assert res.manifest["files"]["schools/s2022.sav"]["format"] == "sav"
    assert sch.loc[("4501100001", "primary"), ["county_code", "is_teaching_point", "enrollment"]].tolist() == [
        "450110", True, 320.0,
    ]  # fmt: skip
    assert sch.loc[("4501100002", "junior"), "county_code"] == "450181"
    assert sch.loc[("4501100002", "junior"), "source_stage"] == "nine_year"
    assert sch.loc[("4501100001", "primary"), "source_row"] == 1  # SPSS case number


def test_parquet_input(tmp_path):
    root = make_root(tmp_path)
    write_parquet(
        root / "data/raw/students/s.parquet",
        pd.DataFrame({"year": [2022], "student_id": ["A1"], "county_code": ["450125"], "school_id": ["K"],
                      "grade": [8], "gender": ["F"], "weight": [3.5], "left_behind": [True]}),
    )  # fmt: skip
    minimal_schools(root)
    res = ingest.run(ctx(root))
    st = res.tables["students"]
    assert st.loc[0, ["student_id", "grade", "gender", "weight", "left_behind"]].tolist() == [
        h("A1"), 8, "female", 3.5, True,
    ]  # fmt: skip
    assert res.manifest["files"]["students/s.parquet"]["format"] == "parquet"


def test_sources_yaml_dataset_aliases_and_hints(tmp_path):
    root = make_root(tmp_path)
    write_csv(
        root / "data/raw/students/s.csv",
        ["考生号", "学校", "年级", "抽样权重", "备注"],
        [["A", "X", "4", "1.5", "无"]],
    )
    write_csv(root / "data/raw/schools/s.csv", ["学校", "学段", "在校生数"], [["X", "小学", "100"]])
    (root / "data/raw/sources.yaml").write_text(
        "dataset: {synthetic: true, label: 合成演示数据}\n"
        "aliases: {学校: school_id}\n"
        "files:\n"
        "  students/s.csv: {year: 2022, county_code: '450123', aliases: {考生号: student_id, 抽样权重: weight}}\n"
        "  schools/s.csv: {year: 2021, county_code: 450124}\n",
        encoding="utf-8",
    )
    res = ingest.run(ctx(root))
    assert res.manifest["dataset"] == {"synthetic": True, "label": "合成演示数据"}
    st = res.tables["students"]
    assert st.loc[0, ["year", "student_id", "county_code", "county_name", "school_id", "weight"]].tolist() == [
        2022, h("A"), "450123", "隆安县", "X", 1.5,
    ]  # fmt: skip
    assert res.manifest["files"]["students/s.csv"]["ignored_columns"] == ["备注"]
    sch = res.tables["schools"]
    assert sch.loc[0, ["year", "county_code"]].tolist() == [2021, "450124"]
    saved = json.loads((root / "data/processed/ingest_manifest.json").read_text(encoding="utf-8"))
    assert saved["dataset"]["synthetic"] is True


def test_unknown_columns_logged_once_per_file(tmp_path, caplog):
    root = make_root(tmp_path)
    write_csv(root / "data/raw/schools/s.csv", ["年份", "区县代码", "学校编号", "学段", "校长", "电话"],
              [["2020", "450107", "A", "小学", "某", "1"], ["2020", "450107", "B", "小学", "某", "2"]])  # fmt: skip
    with caplog.at_level(logging.INFO, logger="pipeline.ingest"):
        ingest.run(ctx(root))
    lines = [r.getMessage() for r in caplog.records if "已忽略" in r.getMessage()]
    assert (
        len(lines) == 1
        and "校长" in lines[0]
        and "电话" in lines[0]
        and "schools/s.csv" in lines[0]
    )


def test_outputs_byte_stable(tmp_path):
    root = make_root(tmp_path)
    write_csv(root / "data/raw/students/s.csv", STUDENT_HEADER, STUDENT_ROWS, encoding="gbk")
    minimal_schools(root)
    ingest.run(ctx(root))
    # the stage's outputs (files); data/processed/.stamps/ holds the run's generation stamp
    first = {p.name: p.read_bytes() for p in (root / "data/processed").iterdir() if p.is_file()}
    ingest.run(ctx(root))
    second = {p.name: p.read_bytes() for p in (root / "data/processed").iterdir() if p.is_file()}
    assert first == second
    assert sorted(first) == sorted(
        [f"{t}.parquet" for t in schemas.INPUT_TABLES]
        + ["quarantine.parquet", "ingest_manifest.json"]
    )


def test_salt_file_created_and_reused(tmp_path, monkeypatch):
    monkeypatch.delenv("EQM_SALT", raising=False)
    root = make_root(tmp_path)
    write_csv(root / "data/raw/students/s.csv", STUDENT_HEADER, STUDENT_ROWS)
    minimal_schools(root)
    r1 = ingest.run(ctx(root))
    salt = (root / ".eqm_salt").read_text(encoding="utf-8").strip()
    assert len(salt) == 64
    assert (root / ".eqm_salt").stat().st_mode & 0o077 == 0
    assert set(r1.tables["students"]["student_id"]) == {h(i, salt) for i in RAW_IDS[:3]}
    r2 = ingest.run(ctx(root))
    assert (
        r2.tables["students"]["student_id"].tolist() == r1.tables["students"]["student_id"].tolist()
    )
    monkeypatch.setenv("EQM_SALT", "other")
    r3 = ingest.run(ctx(root))
    assert set(r3.tables["students"]["student_id"]) == {h(i, "other") for i in RAW_IDS[:3]}
