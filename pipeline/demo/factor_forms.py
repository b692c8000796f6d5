"""File forms of the related-factor questionnaires (issue 14), as the offices send them.

The columns are headed with the Chinese labels and aliases of ``pipeline/schemas.py`` (STUDENTS'
questionnaire columns, TEACHERS, PRINCIPALS), one form per round, so ingest meets every variant:

* students, older round (GBK CSV with numeric codes): 是否参加学科类校外培训 1/0, minutes with
  their unit in the header, items ``学习兴趣1`` as the numbers 1–4;
* students, later round (xlsx): 是/否, headers without units, items ``学习兴趣_1`` as the answer
  words (非常同意 … / 从不 …, ``schemas.LIKERT_ANSWERS``);
* ``teachers/<year>年教师问卷_合成演示.csv`` (older round: GBK, answer words, 4/8, 道德与法治) and
  ``.xlsx`` (later rounds: a title row, 四年级/八年级, 音乐/美术 for 艺术, items as numbers, 学历 as
  大学本科/大专/硕士研究生/中专);
* ``principals/<year>年校长问卷_合成演示.xlsx`` (older round: a title row, answer words) and
  ``.sav`` (later rounds: SPSS with value labels 是/否 and 从不 … 经常).

Pure: DataFrames in, :class:`pipeline.demo.RawFile` keyword dicts out (no file access).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from pipeline import catalogue, schemas

_COLUMNS = {
    t: {c.name: c for c in schemas.INPUT_TABLES[t].columns}
    for t in ("students", "teachers", "principals")
}
WORDS_2022_EDUCATION = {
    "postgraduate": "硕士研究生",
    "bachelor": "大学本科",
    "college": "大专",
    "secondary": "中专",
}
SUBJECT_2020 = {**schemas.SUBJECT_LABELS, "moral": "道德与法治"}


def _int(x) -> pd.api.extensions.ExtensionArray:
    """Whole numbers as offices type them (blank when missing)."""
    return pd.array(np.round(np.asarray(x, float)), dtype="Int64")


def _yn(x, numbers: bool = False) -> Any:
    v = pd.array(x, dtype="boolean")
    if numbers:
        return pd.array(v, dtype="Int64")
    return np.where(pd.isna(v), "", np.where(v.fillna(False), "是", "否"))


def _words(table: str, name: str, x) -> np.ndarray:
    """Item answers 1–4 as the words of the column's answer format (blank when missing)."""
    words = np.array(["", *schemas.LIKERT_ANSWERS[_COLUMNS[table][name].answers]], object)
    return words[np.nan_to_num(np.asarray(x, float), nan=0).astype(int)]


def _items(table: str, frame: pd.DataFrame, header: str, words: bool) -> dict[str, Any]:
    """Every index item of ``table``: header ``{label}{k}`` (``header`` formats label and k)."""
    out = {}
    for idx in catalogue.INDICES.values():
        if idx.table != table:
            continue
        label = _COLUMNS[table][idx.items[0]].label[:-1]
        for k, name in enumerate(idx.items, start=1):
            out[header.format(label=label, k=k)] = (
                _words(table, name, frame[name]) if words else _int(frame[name])
            )
    return out


def student_columns(s: pd.DataFrame, later: bool) -> pd.DataFrame:
    """The student questionnaire's factor columns of one round's student file (rows as ``s``)."""
    if not later:
        cols = {
            "是否参加学科类校外培训": _yn(s["tutoring"], numbers=True),
            "每周校外培训时间(小时)": _int(s["tutoring_hours"]),
            "每天体育锻炼时间(分钟)": _int(s["exercise_minutes"]),
            "每天课外阅读时间(分钟)": _int(s["reading_minutes"]),
            **_items("students", s, "{label}{k}", words=False),
        }
    else:
        cols = {
            "是否参加校外培训": _yn(s["tutoring"]),
            "每周校外培训时间（小时）": s["tutoring_hours"].to_numpy(),
            "体育锻炼时间": s["exercise_minutes"].to_numpy(),
            "课外阅读时间": s["reading_minutes"].to_numpy(),
            **_items("students", s, "{label}_{k}", words=True),
        }
    return pd.DataFrame(cols, index=s.index)


def questionnaire_files(
    teachers: pd.DataFrame,
    principals: pd.DataFrame,
    years: list[int],
    names: Mapping[tuple[int, str], str],
    codes: Mapping[tuple[int, str], str],
) -> list[dict[str, Any]]:
    """Keyword arguments of the teacher and principal files' ``RawFile`` (one of each per year)."""
    files = []
    for year in years:
        later = year != years[0]
        t = teachers[teachers["year"] == year].sort_values(
            ["county_code", "school_id", "teacher_id"]
        )
        p = principals[principals["year"] == year].sort_values(["county_code", "school_id"])
        files.append(_teacher_file(t.reset_index(drop=True), year, later, names, codes))
        files.append(_principal_file(p.reset_index(drop=True), year, later, names, codes))
    return files


def _county(f: pd.DataFrame, year: int, names, codes) -> tuple[list[str], list[str]]:
    keys = [(year, c) for c in f["county_code"]]
    return [codes[k] for k in keys], [names[k] for k in keys]


def _teacher_file(t: pd.DataFrame, year: int, later: bool, names, codes) -> dict[str, Any]:
    code, name = _county(t, year, names, codes)
    if not later:  # GBK CSV, answer words, grade as a number
        table = pd.DataFrame(
            {"监测年份": year, "区县代码": code, "区县": name, "学校标识码": t["school_id"],
             "教师编号": t["teacher_id"], "姓名": t["name"], "身份证号": t["id_number"],
             "任教年级": t["grade"], "任教学科": t["subject"].map(SUBJECT_2020),
             "最高学历": t["education"].map(schemas.EDUCATION_LABELS).fillna(""),
             "所学专业与任教学科是否一致": _yn(t["major_match"]), "教龄": _int(t["years_teaching"]),
             "近一年参加培训学时": _int(t["training_hours"]), "周课时": _int(t["weekly_lessons"]),
             **_items("teachers", t, "{label}{k}", words=True)}
        )  # fmt: skip
        return {"path": f"teachers/{year}年教师问卷_合成演示.csv", "kind": "csv", "table": table,
                "encoding": "gbk", "lineterminator": "\r\n"}  # fmt: skip
    arts = np.where(np.arange(len(t)) % 2 == 0, "音乐", "美术")  # 艺术 is taught as music or art
    subject = np.where(t["subject"] == "arts", arts, t["subject"].map(schemas.SUBJECT_LABELS))
    table = pd.DataFrame(
        {"监测年份": year, "区县代码": code, "区县": name, "学校代码": t["school_id"],
         "教师工号": t["teacher_id"], "教师姓名": t["name"], "身份证号码": t["id_number"],
         "任教年级": t["grade"].map(schemas.GRADE_LABELS), "任教学科": subject,
         "学历": t["education"].map(WORDS_2022_EDUCATION).fillna(""), "专业对口": _yn(t["major_match"]),
         "教龄(年)": t["years_teaching"], "近一年培训学时": t["training_hours"], "周课时数": t["weekly_lessons"],
         **_items("teachers", t, "{label}_{k}", words=False)}
    )  # fmt: skip
    return {"path": f"teachers/{year}年教师问卷_合成演示.xlsx", "kind": "xlsx", "table": table,
            "title_rows": (f"{year}年南宁市义务教育质量监测教师问卷（合成演示数据）",), "sheet": "教师问卷"}  # fmt: skip


def _principal_file(p: pd.DataFrame, year: int, later: bool, names, codes) -> dict[str, Any]:
    code, name = _county(p, year, names, codes)
    if not later:  # xlsx with a title row, answer words
        table = pd.DataFrame(
            {"监测年份": year, "区县代码": code, "区县": name, "学校标识码": p["school_id"],
             "校长姓名": p["name"], "身份证号": p["id_number"],
             "国家课程是否开齐开足": _yn(p["curriculum_complete"]),
             "音体美专任教师是否配齐": _yn(p["pe_art_staffed"]),
             **_items("principals", p, "{label}{k}", words=True),
             "每周课后服务天数": _int(p["after_school_days"])}
        )  # fmt: skip
        return {"path": f"principals/{year}年校长问卷_合成演示.xlsx", "kind": "xlsx", "table": table,
                "title_rows": (f"{year}年南宁市义务教育质量监测校长问卷（合成演示数据）",), "sheet": "校长问卷"}  # fmt: skip
    yes_no = {0: "否", 1: "是"}
    items = {  # SPSS: numbers with value labels; 设施使用 under its other name 功能室使用
        (f"功能室使用{k}" if idx == "facility_use" else f"家校合作_{k}"): p[f"{idx}_{k}"].to_numpy(
            float
        )
        for idx in ("facility_use", "home_school")
        for k in (1, 2, 3)
    }
    table = pd.DataFrame(
        {"年份": float(year), "区县代码": code, "区县": name, "学校代码": p["school_id"], "姓名": p["name"],
         "身份证号码": p["id_number"],
         "课程开齐开足": pd.array(p["curriculum_complete"], dtype="boolean").astype("Float64").astype(float),
         "音体美教师是否配齐": pd.array(p["pe_art_staffed"], dtype="boolean").astype("Float64").astype(float),
         **items, "课后服务天数": p["after_school_days"].to_numpy(float)}
    )  # fmt: skip
    often = dict(enumerate(schemas.LIKERT_ANSWERS["often"], start=1))
    return {"path": f"principals/{year}年校长问卷_合成演示.sav", "kind": "sav", "table": table,
            "value_labels": {"课程开齐开足": yes_no, "音体美教师是否配齐": yes_no, **dict.fromkeys(items, often)},
            "column_labels": {"课程开齐开足": "国家课程是否开齐开足", "音体美教师是否配齐": "音体美专任教师是否配齐",
                              "课后服务天数": "每周课后服务天数"}}  # fmt: skip
