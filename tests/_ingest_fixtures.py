"""Builders of small raw files for the ingest tests (written into tmp_path, never committed)."""

from __future__ import annotations

import csv
import hashlib
import io
import shutil
from pathlib import Path

import openpyxl
import pandas as pd

from pipeline import ingest
from pipeline.config import MonitoringParams, build_params, load_params, make_context

REPO = Path(__file__).resolve().parents[1]

SALT = "test-salt"
_P = load_params(REPO)
PARAMS = build_params(ingest.IngestParams, _P["ingest"], "ingest")
MONITORING = build_params(MonitoringParams, _P["monitoring"], "monitoring")
LOOKUPS = ingest.build_lookups(MONITORING, {})


def h(raw_id: str, salt: str = SALT) -> str:
    """Independent recomputation of the pseudonym: sha256(salt + 0x1F + id), first 16 hex digits."""
    return hashlib.sha256(f"{salt}\x1f{raw_id}".encode()).hexdigest()[:16]


# Raw identifiers planted in the fixtures: none of them may appear in any output byte.
RAW_IDS = ["S2020000101", "S2020000102", "S2020000103", "S2020000104"]
NAMES = ["张小明", "李华华", "王芳芳", "赵强强"]
ID_NUMBERS = [
    "450107201001011234",
    "450107201002022345",
    "45010720100303345X",
    "450107201004044567",
]

STUDENT_HEADER = [
    "监测年份", "学生编号", "姓名", "身份证号", "区县", "学校编号", "年级", "性别", "城乡类型",
    "是否留守儿童", "是否随迁子女", "家庭社会经济文化地位", "学生权重", "每天书面作业时间（分钟）",
    "每天睡眠时间(小时)", "视力不良", "体质健康总分", "数学成绩", "数学水平", "科学成绩",
]  # fmt: skip
STUDENT_ROWS = [
    ["2020", RAW_IDS[0], NAMES[0], ID_NUMBERS[0], "西乡塘区", "4501070001", "四年级", "男", "城区",
     "是", "否", "0.25", "12.5", "45", "9.5", "否", "88.5", "512.3", "Ⅲ", "498"],
    ["2020", RAW_IDS[1], NAMES[1], ID_NUMBERS[1], "横县", "4501810002", "4", "女", "乡村",
     "否", "1", "-1.2", "20", "70", "10", "是", "61", "401", "待提高", ""],
    ["2020", RAW_IDS[2], NAMES[2], ID_NUMBERS[2], "武鸣区", "4501100003", "八年级", "2", "镇区",
     "0", "0", "", "15.25", "", "8", "1", "", "", "", "601.5"],
]  # fmt: skip


def make_root(tmp_path: Path) -> Path:
    root = tmp_path / "round"
    (root / "data" / "raw").mkdir(parents=True)
    shutil.copy(REPO / "params.yaml", root / "params.yaml")
    return root


def write_csv(
    path: Path,
    header,
    rows,
    encoding: str = "utf-8",
    title: str | None = None,
    delimiter: str = ",",
    lineterminator: str = "\n",
) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator=lineterminator, delimiter=delimiter)
    if title is not None:
        w.writerow([title])
    w.writerow(header)
    w.writerows(rows)
    path.write_bytes(buf.getvalue().encode(encoding))
    return path


def write_xlsx(path: Path, header, rows, titles=(), sheet: str = "Sheet1", extra_sheets=()) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    wb = openpyxl.Workbook()
    for name, sheet_rows in extra_sheets:
        ws = wb.create_sheet(name)
        for r in sheet_rows:
            ws.append(list(r))
    ws = wb.worksheets[0]
    ws.title = sheet
    for t in titles:
        ws.append(list(t) if isinstance(t, list | tuple) else [t])
    ws.append(list(header))
    for r in rows:
        ws.append(list(r))
    wb.save(path)
    return path


def write_parquet(path: Path, df: pd.DataFrame) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    df.to_parquet(path, index=False)
    return path


# The 7 resource columns (优质均衡 L1–L7): a schools file gives all of them or none (ingest).
RESOURCE_HEADER = [
    "高于规定学历教师数", "县级及以上骨干教师数", "体育艺术专任教师数", "教学及辅助用房面积",
    "体育运动场馆面积", "网络多媒体教室数",
]  # fmt: skip
RESOURCE_VALUES = ["30", "6", "5", "2700", "4500", "14"]  # one school of 600 students


def minimal_schools(root: Path, name: str = "schools/schools.csv") -> Path:
    return write_csv(
        root / "data" / "raw" / name,
        ["年份", "区县代码", "学校编号", "学校名称", "学段", "在校生数", "教学仪器设备值(元)",
         *RESOURCE_HEADER],
        [["2020", "450107", "4501070001", "一小", "小学", "600", "1200000", *RESOURCE_VALUES]],
    )  # fmt: skip


def ctx(root: Path):
    return make_context(root, quiet=True)


def all_output_bytes(root: Path) -> bytes:
    out = b""
    for p in sorted((root / "data" / "processed").rglob("*")):
        if p.is_file():
            out += p.read_bytes()
            if (
                p.suffix == ".parquet"
            ):  # also the decoded text (compressed bytes could hide a string)
                out += pd.read_parquet(p).to_csv().encode("utf-8")
    return out
