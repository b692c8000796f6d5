"""Benchmark of the ingest stage.

    .venv/bin/python benchmarks/bench_ingest.py [--students 50000] [--keep] [--json FILE]

Builds, under ``benchmarks/_data/`` (git-ignored), (1) the demo round (``eqm demo-data``) when
``pipeline/demo/`` is present and (2) a larger synthetic file set in every format — a GBK CSV with
wide score columns and PII, an xlsx with a title row, a long UTF-8-BOM scores CSV with plausible
values, a schools xlsx with a 万元 column and 一贯制 rows, and a schools .sav — then times
``pipeline.ingest.run`` (reading + parsing + writing) on each, best of ``--repeat`` runs.
Issue 2 asks for the demo round in under 10 s. ``--json`` also writes the figures to a file.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyreadstat

from pipeline import ingest
from pipeline.config import make_context

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
COUNTIES = ["西乡塘区", "武鸣区", "上林县", "横县"]


def _root(name: str) -> Path:
    root = HERE / "_data" / name
    if root.exists():
        shutil.rmtree(root)
    (root / "data" / "raw").mkdir(parents=True)
    shutil.copy(REPO / "params.yaml", root / "params.yaml")
    return root


def synthetic_round(n_students: int, seed: int = 1) -> Path:
    """A large raw file set in every accepted format (values random, shapes realistic)."""
    rng = np.random.default_rng(seed)
    root = _root("synthetic")
    raw = root / "data" / "raw"
    for d in ("students", "scores", "schools"):
        (raw / d).mkdir()
    n_csv = int(n_students * 0.8)
    n_xlsx = n_students - n_csv

    def students(n: int, year: int, start: int) -> pd.DataFrame:
        return pd.DataFrame(
            {
                "监测年份": year,
                "学生编号": [f"S{year}{i:07d}" for i in range(start, start + n)],
                "姓名": "张某",
                "身份证号": "450107201001011234",
                "区县": rng.choice(COUNTIES, n),
                "学校编号": rng.integers(4501000000, 4501000800, n).astype(str),
                "年级": rng.choice(["四年级", "八年级"], n),
                "性别": rng.choice(["男", "女"], n),
                "城乡类型": rng.choice(["城区", "镇区", "乡村"], n),
                "是否留守儿童": rng.choice(["是", "否"], n),
                "是否随迁子女": rng.choice(["是", "否"], n),
                "家庭社会经济文化地位": rng.normal(0, 1, n).round(3),
                "学生权重": rng.uniform(5, 50, n).round(4),
                "每天书面作业时间（分钟）": rng.integers(0, 150, n),
                "每天睡眠时间(小时)": rng.uniform(6, 11, n).round(1),
                "视力不良": rng.choice(["是", "否"], n),
                "体质健康总分": rng.uniform(40, 110, n).round(1),
                "科学成绩": rng.normal(500, 100, n).round(1),
                "科学水平": rng.choice(["待提高", "中等", "良好", "优秀"], n),
                "德育成绩": rng.normal(500, 100, n).round(1),
            }
        )

    s_csv = students(n_csv, 2020, 0)
    s_csv.to_csv(raw / "students" / "students_2020.csv", index=False, encoding="gbk")
    s_x = students(n_xlsx, 2022, 0)
    with pd.ExcelWriter(raw / "students" / "students_2022.xlsx", engine="xlsxwriter") as xw:
        s_x.to_excel(xw, index=False, startrow=1, sheet_name="学生数据")
        xw.sheets["学生数据"].write(0, 0, "2022年学生数据（基准测试合成数据）")
    long = pd.DataFrame(
        {
            "学生编号": np.repeat(s_x["学生编号"].to_numpy(), 2),
            "学科": np.tile(["语文", "艺术"], n_xlsx),
            **{f"PV{k}": rng.normal(500, 100, 2 * n_xlsx).round(1) for k in range(1, 6)},
            "水平": rng.choice(["Ⅰ", "Ⅱ", "Ⅲ", "Ⅳ"], 2 * n_xlsx),
        }
    )
    long.to_csv(raw / "scores" / "scores_2022.csv", index=False, encoding="utf-8-sig")
    n_sch = max(200, n_students // 25)
    stage = rng.choice(["小学", "初中", "九年一贯制"], n_sch, p=[0.6, 0.3, 0.1])
    schools = pd.DataFrame(
        {
            "年份": 2020, "区县": rng.choice(COUNTIES, n_sch), "学校编号": [f"K{i:05d}" for i in range(n_sch)],
            "学校名称": [f"第{i}学校" for i in range(n_sch)], "学段": stage,
            "在校生数": rng.integers(30, 3000, n_sch), "小学在校生数": rng.integers(100, 900, n_sch),
            "初中在校生数": rng.integers(100, 900, n_sch), "高于规定学历教师数": rng.integers(1, 200, n_sch),
            "教学仪器设备值（万元）": rng.uniform(1, 900, n_sch).round(2),
            "县级以上骨干教师数": rng.integers(0, 40, n_sch), "体育、艺术专任教师数": rng.integers(0, 30, n_sch),
            "教学及辅助用房面积(平方米)": rng.uniform(500, 20000, n_sch).round(1),
            "体育运动场馆面积（㎡）": rng.uniform(500, 30000, n_sch).round(1),
            "网络多媒体教室数(间)": rng.integers(0, 80, n_sch),
        }
    )  # fmt: skip
    with pd.ExcelWriter(raw / "schools" / "schools_2020.xlsx", engine="xlsxwriter") as xw:
        schools.to_excel(xw, index=False, startrow=1)
        xw.sheets["Sheet1"].write(0, 0, "2020年学校办学条件（基准测试合成数据）")
    sav = schools.assign(
        年份=2022, 学段=pd.Series(stage).map({"小学": 1.0, "初中": 2.0, "九年一贯制": 3.0})
    )
    sav.columns = [f"v{i}" for i in range(sav.shape[1])]
    pyreadstat.write_sav(
        sav,
        str(raw / "schools" / "schools_2022.sav"),
        column_labels=list(schools.columns),
        variable_value_labels={"v4": {1.0: "小学", 2.0: "初中", 3.0: "九年一贯制"}},
    )
    (raw / "sources.yaml").write_text(
        "dataset: {synthetic: true, label: 基准测试合成数据}\nfiles:\n  scores/scores_2022.csv: {year: 2022}\n",
        encoding="utf-8",
    )
    return root


def demo_round() -> Path | None:
    if not (REPO / "pipeline" / "demo" / "__init__.py").is_file():
        return None
    from pipeline import demo

    root = _root("demo")
    demo.run(make_context(root, quiet=True))
    return root


def time_ingest(root: Path, repeat: int) -> tuple[float, dict]:
    best, result = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = ingest.run(make_context(root, quiet=True))
        best = min(best, time.perf_counter() - t0)
    return best, result.manifest


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--students", type=int, default=50_000, help="students in the synthetic set")
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--keep", action="store_true", help="keep the generated rounds afterwards")
    ap.add_argument("--json", help="also write the figures to this file")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    os.environ.setdefault("EQM_SALT", "benchmark-salt")
    rounds = []
    demo = demo_round()
    if demo is not None:
        rounds.append(("demo round", demo))
    else:
        print("pipeline/demo/ not present: demo round skipped")
    t0 = time.perf_counter()
    rounds.append((f"synthetic {args.students:,} students", synthetic_round(args.students)))
    print(f"built synthetic files in {time.perf_counter() - t0:.1f} s")
    figures = {}
    for label, root in rounds:
        seconds, manifest = time_ingest(root, args.repeat)
        rows = sum(m["rows_read"] for m in manifest["files"].values())
        figures[label] = {
            "ingest_s": round(seconds, 2),
            "raw_rows": rows,
            "files": len(manifest["files"]),
        }
        print(f"{label}: ingest {seconds:.2f} s (best of {args.repeat}) for {rows:,} raw rows "
              f"in {len(manifest['files'])} files -> {manifest['tables']}")  # fmt: skip
        for src, m in manifest["files"].items():
            print(f"    {src}: {m['format']} {m.get('encoding') or ''} rows {m['rows_read']:,}")
    if args.json:
        Path(args.json).write_text(
            json.dumps(figures, indent=2, ensure_ascii=False), encoding="utf-8"
        )
    if (
        not args.keep
    ):  # only the rounds built here: benchmarks/_data/ also holds make bench's results
        for _, root in rounds:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
