"""`eqm demo-data`: deterministic, realistic file forms, planted problems and defects, truth sidecar.

The demo round is generated once per module into a temporary root; the checks read it back the way
an office's files would be read (pandas / openpyxl / pyreadstat), independently of ingest.
"""

from __future__ import annotations

import dataclasses
import filecmp
import json
import shutil
from pathlib import Path

import numpy as np
import openpyxl
import pandas as pd
import pyreadstat
import pytest
import yaml
from typer.testing import CliRunner

from pipeline import demo
from pipeline.cli import app
from pipeline.config import make_context
from pipeline.errors import EqmError

REPO = Path(__file__).resolve().parents[1]
COUNTIES = ["450107", "450110", "450125", "450181"]
S20 = "students/2020年学生数据_合成演示.csv"
S22 = "students/2022年学生数据_合成演示.xlsx"
SC22 = "scores/2022年学业成绩_合成演示.csv"
SCH20 = "schools/2020年学校办学条件_合成演示.xlsx"
SCH22 = "schools/2022年学校办学条件_合成演示.sav"
REPORTS = "county_reports/县级监测报告汇总_合成演示.csv"
PREVIOUS = "previous_problems/2020年监测问题清单_合成演示.xlsx"
THRESHOLDS = {  # domain.md (县域义务教育优质均衡发展督导评估办法, 2017), L1..L7
    "primary": (4.2, 1.0, 0.9, 4.5, 7.5, 2000.0, 2.3),
    "junior": (5.3, 1.0, 0.9, 5.8, 10.2, 2500.0, 2.4),
}


def _new_root(base: Path) -> Path:
    base.mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO / "params.yaml", base / "params.yaml")
    return base


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    r = _new_root(tmp_path_factory.mktemp("demo") / "round")
    demo.run(make_context(r, quiet=True))
    return r


@pytest.fixture(scope="module")
def raw(root) -> Path:
    return root / "data" / "raw"


@pytest.fixture(scope="module")
def truth(raw) -> dict:
    return json.loads((raw / "demo_truth.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def s20(raw) -> pd.DataFrame:
    return pd.read_csv(raw / S20, encoding="gbk", dtype=str, keep_default_na=False)


@pytest.fixture(scope="module")
def s22(raw) -> pd.DataFrame:
    return pd.read_excel(raw / S22, header=1, dtype=str, keep_default_na=False)


@pytest.fixture(scope="module")
def sc22(raw) -> pd.DataFrame:
    return pd.read_csv(raw / SC22, encoding="utf-8-sig", dtype=str, keep_default_na=False)


@pytest.fixture(scope="module")
def students(s20, s22) -> pd.DataFrame:
    """Both rounds in one frame with canonical-ish columns (the test's own small reader)."""
    a = pd.DataFrame(
        {"year": 2020, "county_code": s20["区县代码"], "county_name": s20["区县"],
         "school_id": s20["学校标识码"], "grade": s20["年级"].astype(int), "student_id": s20["学籍号"],
         "id_number": s20["身份证号"], "female": s20["性别"] == "2", "weight": s20["最终权重"].astype(float),
         "homework": s20["每天书面作业时间(分钟)"].astype(float), "sleep": s20["每天睡眠时间(小时)"].astype(float)}
    )  # fmt: skip
    b = pd.DataFrame(
        {"year": 2022, "county_code": s22["区县代码"], "county_name": s22["区县"], "school_id": s22["学校代码"],
         "grade": s22["年级"].map({"四年级": 4, "八年级": 8}), "student_id": s22["学籍号"],
         "id_number": s22["身份证件号"], "female": s22["性别"] == "女", "weight": s22["学生权重"].astype(float),
         "homework": s22["书面作业时间"].astype(float), "sleep": s22["睡眠时间"].astype(float)}
    )  # fmt: skip
    out = pd.concat([a, b], ignore_index=True)
    out["county_code"] = out["county_code"].where(out["county_code"] != "", "450181")  # 横县 rows
    return out


@pytest.fixture(scope="module")
def scores(s20, sc22) -> pd.DataFrame:
    wide = []
    for zh, code in (("科学", "science"), ("德育", "moral")):
        wide.append(
            pd.DataFrame({"year": 2020, "student_id": s20["学籍号"], "subject": code,
                          "score": pd.to_numeric(s20[f"{zh}成绩"]), "level": s20[f"{zh}水平"]})
        )  # fmt: skip
    subj = {"语文": "chinese", "艺术": "arts", "英语": "english"}
    wide.append(
        pd.DataFrame({"year": 2022, "student_id": sc22["学籍号"], "subject": sc22["学科"].map(subj),
                      "score": pd.to_numeric(sc22["量尺分数"]), "level": sc22["水平"]})
    )  # fmt: skip
    return pd.concat(wide, ignore_index=True)


# ------------------------------------------------------------------------------------------------
# Determinism and the safety of data/raw
# ------------------------------------------------------------------------------------------------


def _tree(path: Path) -> list[str]:
    return sorted(p.relative_to(path).as_posix() for p in path.rglob("*") if p.is_file())


def test_same_seed_gives_byte_identical_files(root, raw, tmp_path):
    other = _new_root(tmp_path / "other")
    demo.run(make_context(other, quiet=True))
    files = _tree(raw)
    assert files == _tree(other / "data/raw")
    match, mismatch, errors = filecmp.cmpfiles(raw, other / "data/raw", files, shallow=False)
    assert mismatch == [] and errors == []


def test_refuses_to_overwrite_foreign_raw_data(tmp_path):
    r = _new_root(tmp_path / "real")
    real = r / "data/raw/students/2022年真实学生数据.xlsx"
    real.parent.mkdir(parents=True)
    real.write_bytes(b"an office's real file")
    with pytest.raises(EqmError, match="不是由 eqm demo-data 生成") as err:
        demo.run(make_context(r, quiet=True))
    assert "2022年真实学生数据.xlsx" in str(err.value)
    assert real.read_bytes() == b"an office's real file"
    assert _tree(r / "data/raw") == ["students/2022年真实学生数据.xlsx"]


def _copy_round(raw: Path, dest: Path) -> Path:
    r = _new_root(dest)
    shutil.copytree(raw, r / "data/raw")
    return r


def test_refuses_when_a_demo_file_was_edited(raw, tmp_path):
    r = _copy_round(raw, tmp_path / "edited")
    edited = r / "data/raw" / REPORTS
    edited.write_bytes(edited.read_bytes() + "2022,450107,,4,,mean_score,,,本县,1,,,\n".encode())
    with pytest.raises(EqmError, match="修改过"):
        demo.check_raw_is_replaceable(r / "data/raw")
    # an empty data/raw (or one holding only .gitkeep) is fine
    empty = tmp_path / "empty/data/raw"
    empty.mkdir(parents=True)
    (empty / ".gitkeep").write_text("")
    demo.check_raw_is_replaceable(empty)


def test_failed_generation_leaves_previous_raw_untouched(raw, tmp_path, monkeypatch):
    r = _copy_round(raw, tmp_path / "atomic")
    before = {p: (r / "data/raw" / p).read_bytes() for p in _tree(r / "data/raw")}

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(demo, "_sav_bytes", broken)
    with pytest.raises(OSError):
        demo.run(make_context(r, quiet=True))
    after = {p: (r / "data/raw" / p).read_bytes() for p in _tree(r / "data/raw")}
    assert after == before
    assert sorted(x.name for x in (r / "data").iterdir()) == ["raw"]  # no temporary folder left


def test_cli_demo_data_reruns_over_its_own_output_only(raw, tmp_path):
    r = _copy_round(raw, tmp_path / "cli")
    guide = "# data/raw/：原始数据放在这里\n"  # the repository's own data/raw/README.md is not data
    (r / "data/raw/README.md").write_text(guide, encoding="utf-8")
    result = CliRunner().invoke(app, ["demo-data", "--root", str(r), "--quiet"])
    assert result.exit_code == 0, result.output
    files = _tree(raw)
    assert _tree(r / "data/raw") == sorted([*files, "README.md"])
    assert filecmp.cmpfiles(raw, r / "data/raw", files, shallow=False)[1] == []
    assert (r / "data/raw/README.md").read_text(encoding="utf-8") == guide
    (r / "data/raw/schools/真实.csv").write_text("x\n", encoding="utf-8")
    result = CliRunner().invoke(app, ["demo-data", "--root", str(r), "--quiet"])
    assert result.exit_code == 1
    out = result.output + (result.stderr if result.stderr_bytes is not None else "")
    assert "真实.csv" in out and "Traceback" not in out


# ------------------------------------------------------------------------------------------------
# File forms
# ------------------------------------------------------------------------------------------------


def test_file_set_labels_and_sources(raw):
    files = _tree(raw)
    for f in (S20, S22, SC22, SCH20, SCH22, REPORTS, PREVIOUS):
        assert f in files and "合成演示" in f  # every data file is labelled in its name
    assert {"README.txt", "sources.yaml", "demo_truth.json", ".eqm-demo.json"} <= set(files)
    assert "合成演示数据" in (raw / "README.txt").read_text(encoding="utf-8")
    sources = yaml.safe_load((raw / "sources.yaml").read_text(encoding="utf-8"))
    assert sources["dataset"] == {"synthetic": True, "label": demo.SYNTHETIC_LABEL}
    # hints only where an office needs them: most files are left to detection
    assert sources["files"] == {SC22: {"year": 2022}, PREVIOUS: {"sheet": "问题清单"}}


def test_students_2020_is_gbk_csv_with_pii_and_wide_scores(raw, s20):
    data = (raw / S20).read_bytes()
    with pytest.raises(UnicodeDecodeError):
        data.decode("utf-8")
    assert b"\r\n" in data
    for col in ("姓名", "身份证号", "学籍号", "区县代码", "区县", "学校标识码", "最终权重",
                "科学成绩", "科学水平", "德育成绩", "德育水平"):  # fmt: skip
        assert col in s20.columns, col
    assert set(s20["性别"]) == {"1", "2"} and set(s20["城乡类型"]) == {"1", "2", "3"}
    assert set(s20["科学水平"]) <= {"待提高", "中等", "良好", "优秀"}
    hx = s20[s20["区县"] == "横县"]  # 横州市 under its pre-2021 name, without a code
    assert len(hx) > 200 and (hx["区县代码"] == "").all()
    assert "横州市" not in set(s20["区县"])


def test_students_2022_is_xlsx_with_title_row(raw, s22):
    wb = openpyxl.load_workbook(raw / S22, read_only=True)
    ws = wb[wb.sheetnames[0]]
    rows = list(ws.iter_rows(min_row=1, max_row=3, values_only=True))
    assert rows[0][0] == "2022年南宁市义务教育质量监测学生数据（合成演示数据）"
    assert rows[1][:3] == ("监测年份", "区县代码", "区县")
    assert isinstance(rows[2][1], str)  # codes and ids are text cells, as offices keep them
    assert set(s22["年级"]) == {"四年级", "八年级"} and set(s22["性别"]) == {"男", "女"}
    assert set(s22["城乡类型"]) == {"城区", "镇区", "乡村"} and set(s22["是否留守儿童"]) == {
        "是",
        "否",
    }
    assert set(s22["区县"]) == {"西乡塘区", "武鸣区", "上林县", "横州市"}
    assert {"姓名", "身份证件号"} <= set(s22.columns)


def test_scores_2022_long_utf8_bom(raw, sc22):
    assert (raw / SC22).read_bytes().startswith(b"\xef\xbb\xbf")
    assert list(sc22.columns) == ["学籍号", "学科", "量尺分数", "水平"]
    assert set(sc22["学科"]) == {"语文", "艺术", "英语"}
    assert set(sc22["水平"]) == {"Ⅰ", "Ⅱ", "Ⅲ", "Ⅳ", ""}  # "" only on the planted 9999 row
    assert (sc22["水平"] == "").sum() == 1


def test_schools_files(raw):
    wb = openpyxl.load_workbook(raw / SCH20, read_only=True)
    rows = list(wb[wb.sheetnames[0]].iter_rows(min_row=1, max_row=3, values_only=True))
    assert "合成演示数据" in rows[0][0] and "合成演示数据" in rows[1][0]
    assert "教学仪器设备值(万元)" in rows[2]
    df, meta = pyreadstat.read_sav(raw / SCH22, apply_value_formats=True)
    assert meta.file_label == "合成演示数据"
    assert set(df["学段"]) == {"小学", "初中", "九年一贯制"}
    assert set(df["学校类别"]) == {"普通", "特殊教育"} and set(df["教学点"]) == {"是", "否"}
    assert meta.column_names_to_labels["教学仪器设备值"] == "教学仪器设备值(元)"


@pytest.fixture(scope="module")
def schools(raw) -> pd.DataFrame:
    """Both years in one frame, equipment in yuan (万元 × 10 000 for 2020)."""
    a = pd.read_excel(raw / SCH20, header=2, dtype={"区县代码": str, "学校标识码": str})
    a = a.rename(columns={"教学仪器设备值(万元)": "equip", "教学及辅助用房面积(平方米)": "aux",
                          "体育运动场馆面积(平方米)": "sports"})  # fmt: skip
    a["equip"] = a["equip"] * 10000
    b, _ = pyreadstat.read_sav(raw / SCH22, apply_value_formats=True)
    b = b.rename(
        columns={
            "教学仪器设备值": "equip",
            "教学及辅助用房面积": "aux",
            "体育运动场馆面积": "sports",
        }
    )
    out = pd.concat([a, b], ignore_index=True)
    out["county_code"] = out["区县代码"].fillna("").replace("", "450181")
    out["year"] = out["年份"].astype(int)
    return out


def test_every_compulsory_school_is_listed(schools, students):
    for (year, code), f in schools.groupby(["year", "county_code"]):
        assert 30 <= len(f) <= 80, (year, code)
        tp = f[f["教学点"] == "是"]
        assert (tp["在校生数"] < 50).sum() >= 1 and (tp["在校生数"] >= 50).sum() == 1
        assert (f["学校类别"] == "特殊教育").sum() == 1
        nine = f[f["学段"] == "九年一贯制"]
        assert len(nine) == 1
        assert (
            nine["小学在校生数"].iloc[0] + nine["初中在校生数"].iloc[0] == nine["在校生数"].iloc[0]
        )
        assert f.loc[f["学段"] != "九年一贯制", "小学在校生数"].isna().all()
    # sampled schools keep their id; grade 4 only in primary schools, grade 8 only in junior ones
    stage = schools.set_index(["year", "学校标识码"])["学段"]
    st = students[students["school_id"] != ""]
    got = stage.reindex(pd.MultiIndex.from_frame(st[["year", "school_id"]])).to_numpy()
    assert (got == np.where(st["grade"] == 4, "小学", "初中")).all()


def test_sample_design(students, truth):
    ok = students[students["school_id"] != ""]
    for (year, code, grade), f in ok.groupby(["year", "county_code", "grade"]):
        per_school = f.groupby("school_id").size()
        assert len(per_school) == (12 if grade == 4 else 8), (year, code, grade)
        assert per_school.between(25, 36).all()  # 25–35, +1 where the duplicate sits
        assert f["weight"][f["weight"] > 0].between(3, 500).all()
        # HT weights add up to (about) the grade's population: non-response adjustment ≤ 8 %
        pop = truth["samples"][str(year)][code][str(grade)]["grade_population"]
        assert 0.9 < f["weight"].clip(lower=0).sum() / pop < 1.12
    assert len(students["county_code"].unique()) == 4
    assert (students["weight"] <= 0).sum() == 1  # only the planted one


def _gb11643_check(body17: str) -> str:
    """GB 11643-1999 check character (ISO 7064 MOD 11-2)."""
    w = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]
    return "10X98765432"[sum(int(c) * k for c, k in zip(body17, w, strict=True)) % 11]


def test_id_numbers_are_well_formed(students):
    assert (
        _gb11643_check("11010519491231002") == "X"
    )  # the standard's own example 11010519491231002X
    ids = students["id_number"]
    assert ids.str.fullmatch(r"4501\d{13}[\dX]").all()
    assert (ids.str[-1] == ids.str[:17].map(_gb11643_check)).all()
    male_digit = ids.str[16].astype(int) % 2 == 1
    assert (male_digit == ~students["female"]).all()
    assert (students["student_id"] == "G" + ids).all()
    born = pd.to_datetime(ids.str[6:14], format="%Y%m%d")
    age = students["year"] - born.dt.year
    assert (
        age[students["grade"] == 4].between(9, 11).all()
        and age[students["grade"] == 8].between(13, 15).all()
    )
    dup = students.duplicated(["year", "student_id"], keep=False)
    assert dup.sum() == 2  # the planted duplicate only


# ------------------------------------------------------------------------------------------------
# Planted defects
# ------------------------------------------------------------------------------------------------


def test_defects_are_planted_where_the_truth_says(raw, truth, s20, s22, sc22):
    kinds = {d["kind"]: d for d in truth["defects"]}
    assert set(kinds) == {"duplicate_student", "missing_school_id", "negative_weight", "score_9999"}
    tables = {S20: s20, S22: s22, SC22: sc22}
    header = {S20: 1, S22: 2, SC22: 1}
    for d in truth["defects"]:
        t = tables[d["file"]]
        idx = [r - header[d["file"]] - 1 for r in d["source_rows"]]
        assert (t.loc[idx, "学籍号"] == d["raw_student_id"]).all()
        if d["kind"] == "duplicate_student":
            assert idx[1] == idx[0] + 1 and t.loc[idx[0]].equals(t.loc[idx[1]].rename(idx[0]))
        elif d["kind"] == "missing_school_id":
            assert t.at[idx[0], d["column"]] == ""
            assert (t[d["column"]] == "").sum() == 1
        elif d["kind"] == "negative_weight":
            assert float(t.at[idx[0], d["column"]]) == d["value"] < 0
        else:
            assert float(t.at[idx[0], "量尺分数"]) == 9999
            assert (pd.to_numeric(t["量尺分数"]) > 900).sum() == 1
    # the 2022 xlsx row number is the one Excel shows (title row + header row above the data)
    wb = openpyxl.load_workbook(raw / S22, read_only=True)
    row = kinds["negative_weight"]["source_rows"][0]
    cells = next(wb[wb.sheetnames[0]].iter_rows(min_row=row, max_row=row, values_only=True))
    assert cells[5] == kinds["negative_weight"]["raw_student_id"]


# ------------------------------------------------------------------------------------------------
# Truth sidecar against the data
# ------------------------------------------------------------------------------------------------


def test_helpers_on_hand_worked_examples():
    # domain.md: schools A = [1, 2, 3], B = [4, 5, 6] → ICC(1) = 0.8065
    icc = demo._icc1(np.array([1, 2, 3, 4, 5, 6.0]), np.array(list("AAABBB")))
    assert icc == pytest.approx(0.8065, abs=1e-4)
    # hand: x = [1, 3], P = [1, 1] → mean 2, S = 1, CV = 0.5; P = [3, 1] → mean 1.5, S = √0.75
    assert demo._weighted_cv(np.array([1.0, 3.0]), np.array([1.0, 1.0])) == pytest.approx(0.5)
    assert demo._weighted_cv(np.array([1.0, 3.0]), np.array([3.0, 1.0])) == pytest.approx(
        0.75**0.5 / 1.5
    )


def test_truth_covers_every_cell(truth):
    cells = {(t["year"], t["county_code"], t["grade"], t["subject"]) for t in truth["scores"]}
    expected = {(2020, c, g, s) for c in COUNTIES for g in (4, 8) for s in ("science", "moral")}
    expected |= {(2022, c, 4, s) for c in COUNTIES for s in ("chinese", "arts")}
    expected |= {(2022, c, 8, s) for c in COUNTIES for s in ("chinese", "arts", "english")}
    assert cells == expected
    for t in truth["scores"]:
        assert t["icc"] == pytest.approx(t["tau2"] / (t["tau2"] + t["sigma2"]), abs=1e-6)
        assert t["tau2"] + t["sigma2"] == pytest.approx(100.0**2)
        lv = [t[f"pct_level_{x}"] for x in ("I", "II", "III", "IV")]
        assert sum(lv) == pytest.approx(100, abs=1e-3)  # each rounded to 4 decimals


def test_between_school_shares_straddle_015_and_are_recovered(truth, students, scores):
    iccs = {c: {t["icc"] for t in truth["scores"] if t["county_code"] == c} for c in COUNTIES}
    assert all(len(v) == 1 for v in iccs.values())
    icc = {c: v.pop() for c, v in iccs.items()}
    assert max(icc.values()) >= 0.25 and min(icc.values()) <= 0.08  # clearly above / below 0.15
    assert truth["planted"]["school_difference_rate_high"] == sorted(
        c for c in COUNTIES if icc[c] > 0.15
    )
    ok = students[students["school_id"] != ""].drop_duplicates(["year", "student_id"])
    m = scores[scores["score"] < 900].merge(ok, on=["year", "student_id"], validate="m:1")
    emp = {
        c: np.mean([demo._icc1(g["score"].to_numpy(), g["school_id"].to_numpy())
                    for _, g in m[m["county_code"] == c].groupby(["year", "grade", "subject"])])
        for c in COUNTIES
    }  # fmt: skip
    for c in COUNTIES:  # loose: 9 cells of 8–12 schools each
        assert abs(emp[c] - icc[c]) < 0.07, (c, emp[c], icc[c])
    order = sorted(COUNTIES, key=icc.get)
    assert emp[order[-1]] > emp[order[1]] and emp[order[-2]] > emp[order[0]]


def test_weighted_means_and_levels_track_the_truth(truth, students, scores):
    ok = students[students["weight"] > 0].drop_duplicates(["year", "student_id"])
    m = scores[scores["score"] < 900].merge(ok, on=["year", "student_id"], validate="m:1")
    for t in truth["scores"]:
        f = m[(m["year"] == t["year"]) & (m["county_code"] == t["county_code"]) & (m["grade"] == t["grade"])
              & (m["subject"] == t["subject"])]  # fmt: skip
        est = np.average(f["score"], weights=f["weight"])
        # SE of a county mean with 8–12 schools and ICC ≤ 0.35 is at most ~25 points
        assert abs(est - t["population_mean"]) < 75, t
    low = truth["planted"]["low_achievement"]
    assert low == ["450125"]
    for t in truth["scores"]:
        if t["county_code"] in low:
            assert t["population_mean"] < 480 and t["pct_medium_or_above"] < 85
        else:
            assert t["mu"] > 505


def test_levels_follow_cut_scores(scores):
    ok = scores[scores["score"] < 900]
    words = {"待提高": 0, "中等": 1, "良好": 2, "优秀": 3, "Ⅰ": 0, "Ⅱ": 1, "Ⅲ": 2, "Ⅳ": 3}
    # params.yaml monitoring.default_scale.cut_scores (illustrative): 380, 480, 580
    expected = np.searchsorted([380, 480, 580], ok["score"].to_numpy(), side="right")
    assert (ok["level"].map(words).to_numpy() == expected).all()
    assert ok["score"].between(100, 900).all()
    assert 470 < ok["score"].mean() < 530 and 80 < ok["score"].std() < 120


def test_burden_is_planted_in_one_county(truth, students, raw):
    burden = truth["planted"]["homework_burden"]
    assert burden == ["450181"]
    reports = pd.read_csv(raw / REPORTS, dtype={"区县代码": str})
    ok = students[students["weight"] > 0]
    for (year, code, grade), f in ok.groupby(["year", "county_code", "grade"]):
        limit, standard = (60, 10) if grade == 4 else (90, 9)
        over = 100 * np.average(f["homework"] > limit, weights=f["weight"])
        sleep_ok = 100 * np.average(f["sleep"] >= standard, weights=f["weight"])
        t = next(q for q in truth["questionnaire"]
                 if (q["year"], q["county_code"], q["grade"]) == (year, code, grade))  # fmt: skip
        assert (
            abs(over - t["pct_homework_over_limit"]) < 12
            and abs(sleep_ok - t["pct_sleep_sufficient"]) < 12
        )
        nation = reports[(reports["范围"] == "全国") & (reports["年级"] == grade) & (reports["区县代码"] == code)
                         & (reports["监测年份"] == year)].set_index("指标")["数值"]  # fmt: skip
        if code in burden:
            assert (
                over > nation["pct_homework_over_limit"] + 8
                and sleep_ok < nation["pct_sleep_sufficient"] - 10
            )
        else:
            assert (
                over < nation["pct_homework_over_limit"]
                and sleep_ok > nation["pct_sleep_sufficient"]
            )


def _sections(f: pd.DataFrame) -> pd.DataFrame:
    """The test's own split of the schools table into in-scope sections (domain.md rules)."""
    f = f[(f["学校类别"] == "普通") & ~((f["教学点"] == "是") & (f["在校生数"] < 50))]
    qty = [
        "高于规定学历教师数",
        "县级及以上骨干教师数",
        "体育艺术专任教师数",
        "aux",
        "sports",
        "equip",
        "网络多媒体教室数",
    ]
    per100 = [True, True, True, False, False, False, True]
    out = []
    for stage, zh in (("primary", "小学"), ("junior", "初中")):
        plain = f[f["学段"] == zh]
        nine = f[f["学段"] == "九年一贯制"]
        a, b = nine["小学在校生数"], nine["初中在校生数"]
        share = a / (a + 1.1 * b) if stage == "primary" else 1.1 * b / (a + 1.1 * b)
        enrol = pd.concat([plain["在校生数"], a if stage == "primary" else b])
        sec = pd.DataFrame({"school_id": pd.concat([plain["学校标识码"], nine["学校标识码"]]), "stage": stage,
                            "enrol": enrol})  # fmt: skip
        for k, (q, p100) in enumerate(zip(qty, per100, strict=True)):
            total = pd.concat([plain[q], nine[q] * share])
            sec[f"L{k + 1}"] = total / enrol * (100 if p100 else 1)
        out.append(sec)
    return pd.concat(out, ignore_index=True)


def test_resource_cvs_pass_and_fail_as_planted(truth, schools):
    rows = {
        (r["year"], r["county_code"], r["stage"], r["indicator"]): r for r in truth["resources"]
    }
    assert len(rows) == 2 * 4 * 2 * 7
    failing_sets = set()
    for (year, code), f in schools.groupby(["year", "county_code"]):
        sec = _sections(f)
        for stage, s in sec.groupby("stage"):
            w = s["enrol"] / s["enrol"].sum()
            for k in range(1, 8):
                x = s[f"L{k}"]
                mean = (w * x).sum()
                cv = np.sqrt((w * (x - mean) ** 2).sum()) / mean  # domain.md 差异系数
                r = rows[(year, code, stage, f"L{k}")]
                assert cv == pytest.approx(r["cv"], abs=1e-4)
                assert (
                    r["passes"]
                    == r["intended_pass"]
                    == (cv <= (0.50 if stage == "primary" else 0.45))
                )
                if not r["passes"]:
                    failing_sets.add((year, stage))
    assert failing_sets == {
        (2020, "primary"),
        (2020, "junior"),
        (2022, "primary"),
        (2022, "junior"),
    }
    n_pass = sum(r["passes"] for r in rows.values())
    assert 0.8 * len(rows) < n_pass < len(rows)


def test_school_compliance_failures_match_the_truth(truth, schools):
    failing = set()
    for (year, code), f in schools.groupby(["year", "county_code"]):
        sec = _sections(f)
        thr = np.array([THRESHOLDS[s] for s in sec["stage"]])
        ratio = sec[[f"L{k}" for k in range(1, 8)]].to_numpy() / thr
        met = ratio >= 1
        worst_unmet = np.where(met, np.inf, ratio).min(axis=1)
        bad = ~((met.sum(axis=1) >= 6) & (worst_unmet >= 0.85))
        failing |= {
            (year, code, s, st)
            for s, st in zip(sec["school_id"][bad], sec["stage"][bad], strict=True)
        }
        assert 0 < bad.sum() < len(sec)  # some schools fail, most do not... or at least not all
    planted = {
        (d["year"], d["county_code"], d["school_id"], d["stage"])
        for d in truth["planted"]["school_compliance_fail"]
    }
    assert failing == planted


@pytest.mark.parametrize("seed, with_defects", [(1, True), (2, False)])
def test_other_seeds(root, seed, with_defects):
    ctx = make_context(root, quiet=True)
    default = ctx.section(demo.DemoParams, "demo")
    p = dataclasses.replace(default, seed=seed, with_defects=with_defects)
    world = demo.generate(p, ctx.monitoring)
    forms = demo.file_forms(world, p, ctx.monitoring)
    st = next(f.table for f in forms if f.path == S20)
    assert (
        st["学籍号"].iloc[0]
        != pd.read_csv(root / "data/raw" / S20, encoding="gbk", nrows=1)["学籍号"].iloc[0]
    )
    # the resource plan and the between-school contrast do not hinge on one lucky seed
    assert all(r["passes"] == r["intended_pass"] for r in world.truth["resources"])
    hi = [t["sample_icc1"] for t in world.truth["scores"] if t["icc"] > 0.15]
    lo = [t["sample_icc1"] for t in world.truth["scores"] if t["icc"] < 0.15]
    assert np.mean(hi) > 0.18 and np.mean(lo) < 0.12
    if with_defects:
        assert len(world.truth["defects"]) == 4 and st.duplicated("学籍号").sum() == 1
    else:
        assert world.truth["defects"] == []
        assert not st.duplicated("学籍号").any() and (st["学校标识码"] != "").all()


# ------------------------------------------------------------------------------------------------
# Aggregates: county reports and the previous round's problem list
# ------------------------------------------------------------------------------------------------


def test_county_reports(raw):
    r = pd.read_csv(raw / REPORTS, dtype={"区县代码": str}, keep_default_na=False)
    assert list(r.columns) == ["监测年份", "区县代码", "区县", "年级", "学科", "指标", "分组变量", "分组取值",
                               "范围", "数值", "标准误", "样本量", "报告页码"]  # fmt: skip
    assert (r["报告页码"].str.fullmatch(r"第\d+页")).all()
    assert set(r["区县代码"]) == set(COUNTIES)
    need = {"mean_score", "pct_level_I", "pct_level_II", "pct_level_III", "pct_level_IV", "pct_medium_or_above",
            "pct_homework_over_limit", "pct_sleep_sufficient", "pct_myopia", "pct_fitness_pass"}  # fmt: skip
    for scope in ("本县", "全省", "全国"):
        assert need <= set(r.loc[r["范围"] == scope, "指标"]), scope
    gaps = r[r["指标"] == "gap_mean_score"]
    assert {"全国", "本县"} == set(gaps["范围"])
    nat = gaps[gaps["范围"] == "全国"]
    assert set(zip(nat["分组变量"], nat["分组取值"], strict=True)) == {
        ("gender", "female-male"), ("urban_rural", "urban-rural"), ("urban_rural", "town-rural"),
        ("left_behind", "not_left_behind-left_behind"), ("ses_quartile", "Q4-Q1"),
        ("migrant", "non_migrant-migrant"),
    }  # fmt: skip
    sdr = r[r["指标"] == "school_difference_rate"]
    assert (
        len(sdr) >= 1
        and (sdr["范围"] == "本县").all()
        and sdr["数值"].astype(float).between(0, 1).all()
    )
    lv = r[r["指标"].str.startswith("pct_level_")]
    sums = lv.groupby(["监测年份", "区县代码", "年级", "学科", "范围"])["数值"].sum()
    assert sums.between(99, 101).all()
    assert set(r.loc[(r["监测年份"] == 2020) & (r["区县代码"] == "450181"), "区县"]) == {"横县"}


def test_previous_problems(raw):
    wb = openpyxl.load_workbook(raw / PREVIOUS, read_only=True)
    assert wb.sheetnames == ["填表说明", "问题清单"]
    assert "合成演示数据" in next(wb["填表说明"].iter_rows(values_only=True))[0]
    p = pd.read_excel(raw / PREVIOUS, sheet_name="问题清单", dtype={"区县代码": str})
    for col in ("问题编号", "监测年份", "区县代码", "规则", "年级", "学科", "指标", "分组变量", "分组取值",
                "数值", "整改状态"):  # fmt: skip
        assert col in p.columns, col
    assert 5 <= len(p) <= 10 and p["问题编号"].is_unique and (p["监测年份"] == 2020).all()
    # some can be re-measured with 2022 data (questionnaire, resources), some cannot (2020 subjects)
    assert p["指标"].isin(["pct_homework_over_limit", "pct_sleep_sufficient"]).any()
    assert p["指标"].str.fullmatch(r"L[1-7]").any()
    assert p["学科"].isin(["科学", "德育"]).any()
    res = p[p["指标"].str.fullmatch(r"L[1-7]")]
    assert (res["分组变量"] == "stage").all() and res["分组取值"].isin(["primary", "junior"]).all()
