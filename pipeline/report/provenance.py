"""What a report rests on, for its own round: data-quality counts of that year, the source files
of that year, official values that differ from the computed ones, which parts of the 优质均衡
assessment the report covers, and the report's date.

Only counts of rows and printed values: nothing here computes a statistic.

* **Per year.** A round's report counts the rows of its own year: rows that passed validation per
  table, year, county and source file (:func:`row_counts`, from the validated tables' ``year`` /
  ``county_code`` / ``source_file`` columns) and rows set aside (the quarantine, which carries
  ``year``). The previous round's problem list is part of a round's inputs (the evidence stage
  re-checks it), so its rows of the latest earlier year count with the round that uses them.
  Rows whose year could not be read are shown with every year, and said so.
* **Official vs computed.** A county report may print the county's own values (``scope = county``);
  each is set beside the value computed from student data, and those that print differently at
  the report's decimals are listed with the one the report uses.
* **Date.** The monitoring year: the same data gives the same bytes on every rerun (never the clock).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd

from pipeline import schemas
from pipeline.report.formats import (
    MISSING,
    Fmt,
    _num,
    _table,
    _txt,
    cell_label,
    group_label,
    kind_of,
)

TABLE_LABELS = {
    t: tbl.label for t, tbl in {**schemas.INPUT_TABLES, **schemas.OUTPUT_TABLES}.items()
}
TABLE_ORDER = (
    "students", "scores", "schools", "county_reports", "previous_problems", "teachers", "principals",
)  # fmt: skip
COUNT_COLUMNS = ["table", "year", "county_code", "source_file", "n"]
INTERNAL_MARK = "内部资料"

# The four domains of 县域义务教育优质均衡发展督导评估办法 (2017) and what a report covers.
SCOPE_COVERED = (
    "资源配置（7 项指标的校际差异系数，及各校是否达到“至少 6 项达标、其余不低于标准的 85%”）",
    "教育质量中“国家义务教育质量监测学业水平Ⅲ级以上、校际差异率低于 {thr}”一项",
)
SCOPE_NOT_COVERED = "政府保障程度、社会认可度，以及教育质量的其余指标"
SCOPE_ALSO = "负担与健康（作业、睡眠、视力、体质）另列，不是优质均衡评估指标"


def scope(thr: float) -> dict:
    """Which parts of the 优质均衡 assessment a report covers, and which it does not."""
    return {
        "covered": [s.format(thr=f"{thr:g}") for s in SCOPE_COVERED],
        "not_covered": SCOPE_NOT_COVERED,
        "also": SCOPE_ALSO,
    }


def report_date(year: int) -> str:
    """The report's date: its monitoring year (from the data, so a rerun is byte-identical)."""
    return f"{int(year)} 年"


# ------------------------------------------------------------------------------------------------
# Rows per table, year, county and file
# ------------------------------------------------------------------------------------------------


def row_counts(tables: Mapping[str, pd.DataFrame | None]) -> pd.DataFrame:
    """Rows of each validated table per ``table``, ``year``, ``county_code`` and ``source_file``
    (counts of rows, column ``n``).

    ``scores`` carry no county: a score row takes its student's (``students`` joined many-to-one on
    year and student id; the validate stage keeps one row per student and year). Columns a table
    lacks count as empty.
    """
    frames = []
    students = tables.get("students")
    for name in sorted(tables, key=lambda t: (TABLE_ORDER.index(t) if t in TABLE_ORDER else 99, t)):
        df = tables[name]
        if df is None or df.empty or "year" not in df:
            continue
        if "county_code" not in df and {"year", "student_id"} <= set(df) and students is not None:
            who = students[["year", "student_id", "county_code"]].drop_duplicates(
                ["year", "student_id"]
            )
            df = df.merge(who, on=["year", "student_id"], how="left", validate="m:1")
        empty = pd.Series("", index=df.index, dtype="string")
        keys = pd.DataFrame(
            {
                "table": name,
                "year": pd.to_numeric(df["year"], errors="coerce").astype("Int64"),
                "county_code": df["county_code"].astype("string").fillna("")
                if "county_code" in df
                else empty,
                "source_file": df["source_file"].astype("string").fillna("")
                if "source_file" in df
                else empty,
            }
        )
        frames.append(
            keys.groupby(["table", "year", "county_code", "source_file"], dropna=False, sort=True)
            .size()
            .rename("n")
            .reset_index()
        )
    if not frames:
        return pd.DataFrame(columns=COUNT_COLUMNS)
    return pd.concat(frames, ignore_index=True)[COUNT_COLUMNS]


def previous_year(df: pd.DataFrame | None, year: int) -> int | None:
    """The latest year before ``year`` with previous-round problem-list rows (the list the evidence
    stage re-checks in ``year``), or None."""
    if df is None or df.empty or "year" not in df:
        return None
    if "table" in df:
        df = df[df["table"] == "previous_problems"]
    yrs = pd.to_numeric(df["year"], errors="coerce")
    earlier = yrs[yrs < year]
    return int(earlier.max()) if len(earlier) else None


def _of_round(df: pd.DataFrame, year: int, prev: int | None, county: str | None, keep_na: bool):
    """Rows of a round: its year (previous-problem rows: the previous round's year) and county."""
    yr = pd.to_numeric(df["year"], errors="coerce").astype("float64")  # NA → NaN: never equal
    is_prev = df["table"].astype(str).eq("previous_problems")
    mine = (~is_prev & (yr == year)) | (is_prev & (yr == (prev if prev is not None else -1)))
    if keep_na:
        mine |= yr.isna()
    if county is not None and "county_code" in df:
        cc = df["county_code"].astype("string").fillna("")
        mine &= (cc == county) | ((cc == "") if keep_na else False)
    return df[mine]


def _quarantine(q: pd.DataFrame | None) -> pd.DataFrame:
    if q is None or q.empty:
        return pd.DataFrame(columns=["table", "year", "county_code", "source_file", "stage"])
    return q.assign(
        table=q.get("table", pd.Series("", index=q.index)).fillna("").astype(str),
        year=pd.to_numeric(q["year"], errors="coerce").astype("float64")
        if "year" in q
        else float("nan"),
        county_code=q.get("county_code", pd.Series("", index=q.index)).astype("string").fillna(""),
        source_file=q.get("source_file", pd.Series("", index=q.index)).fillna("").astype(str),
        stage=q.get("stage", pd.Series("", index=q.index)).fillna("").astype(str),
    )


# ------------------------------------------------------------------------------------------------
# Data quality
# ------------------------------------------------------------------------------------------------


def data_quality(
    quarantine: pd.DataFrame | None,
    summary: Any,
    year: int | None,
    county: str | None,
    counts: pd.DataFrame | None = None,
    previous_problems: pd.DataFrame | None = None,
) -> dict:
    """Rows set aside per table and rule, and rows in / passed / set aside per table, of one round
    (and county): counts of quarantine and validated rows.

    Without ``counts`` (an older run, or no validated tables) the per-table counts come from the
    validation summary, which pools every year: the label says so.
    """
    q = _quarantine(quarantine)
    prev = previous_year(previous_problems, year) if year is not None else None
    note = ""
    if year is not None and not q.empty:
        q = _of_round(q, year, prev, county, keep_na=True)
        parts = []
        if q["year"].isna().any():
            parts.append("无法确定年份的记录")
        if county is not None and (q["county_code"] == "").any():
            parts.append("无法确定区县的记录")
        if parts:
            note = f"剔除记录含{'及'.join(parts)}（每份报告都列出）。"
    rows: list[list[str]] = []
    if not q.empty:
        q = q.assign(
            rule=q.get("rule", pd.Series("", index=q.index)).fillna("").astype(str),
            message=q.get("message", pd.Series("", index=q.index)).fillna("").astype(str),
        )
        grouped = q.groupby(["table", "rule"], sort=True).agg(
            n=("rule", "size"), message=("message", "first")
        )
        for (table, rule), r in grouped.iterrows():
            rows.append([
                TABLE_LABELS.get(table, table), schemas.rule_label(rule), f"{int(r['n'])}", r["message"],
            ])  # fmt: skip
    rules = _table(["数据表", "规则", "剔除行数", "示例说明"], rows)
    where = "本县" if county is not None else "各区县"
    if counts is not None and year is not None:
        tables = round_table_counts(counts, q, year, prev, county)
        label = f"{year} 年各数据表（{where}）"
        if prev is not None:
            label += f"；上一轮问题清单为 {prev} 年的"
        raw: list = []
    else:
        tables = table_counts(summary)
        label = "各数据表（校验摘要未按年份分列：全部区县、全部年份合计）"
        raw = (
            []
            if tables["rows"] or (quarantine is not None and not quarantine.empty)
            else (_flatten_counts(summary))
        )
    return {"table": rules, "note": note, "raw": raw, "tables": tables, "tables_label": label}


def round_table_counts(
    counts: pd.DataFrame, q: pd.DataFrame, year: int, prev: int | None, county: str | None
) -> dict:
    """Per table of one round (and county): rows passed, set aside by validation, set aside at
    ingest, and their total (counts of rows). ``q`` is the round's quarantine already."""
    c = _of_round(counts, year, prev, county, keep_na=False) if not counts.empty else counts
    passed = c.groupby("table")["n"].sum() if not c.empty else pd.Series(dtype="int64")
    ingest = q["stage"].eq("ingest") if not q.empty else pd.Series(dtype=bool)
    by_stage = {
        "validate": q[~ingest].groupby("table").size() if not q.empty else pd.Series(dtype="int64"),
        "ingest": q[ingest].groupby("table").size() if not q.empty else pd.Series(dtype="int64"),
    }
    names = set(passed.index) | set(by_stage["validate"].index) | set(by_stage["ingest"].index)
    rows = []
    for t in sorted(names, key=lambda t: (TABLE_ORDER.index(t) if t in TABLE_ORDER else 99, t)):
        n_pass = int(passed.get(t, 0))
        n_val = int(by_stage["validate"].get(t, 0))
        n_ing = int(by_stage["ingest"].get(t, 0))
        label = TABLE_LABELS.get(t, t)
        if t == "previous_problems" and prev is not None:
            label += f"（{prev} 年）"
        rows.append([label, str(n_pass + n_val + n_ing), str(n_pass), str(n_val), str(n_ing)])
    return _table(["数据表", "读入行数", "通过校验行数", "校验剔除行数", "导入时隔离行数"], rows)


def table_counts(summary: Any) -> dict:
    """Rows in / passed / set aside per table, from the validation summary when it carries them
    (all years pooled: the validate stage's summary is not split by year)."""
    rows = []
    tables = summary.get("tables") if isinstance(summary, Mapping) else None
    if isinstance(tables, Mapping):
        for name in sorted(tables, key=str):
            t = tables[name]
            if not isinstance(t, Mapping):
                continue
            rows.append([
                TABLE_LABELS.get(str(name), str(name)),
                *(_txt(t.get(k)) or MISSING for k in ("rows_in", "passed", "quarantined", "ingest_quarantined")),
            ])  # fmt: skip
    return _table(["数据表", "进入校验行数", "通过行数", "校验剔除行数", "导入时隔离行数"], rows)


def _flatten_counts(obj: Any, prefix: str = "", depth: int = 0) -> list[tuple[str, str]]:
    """Numeric leaves of the validation summary (its shape belongs to the validate stage)."""
    out: list[tuple[str, str]] = []
    if depth > 3:
        return out
    if isinstance(obj, Mapping):
        for k in sorted(obj, key=str):
            out += _flatten_counts(obj[k], f"{prefix} / {k}" if prefix else str(k), depth + 1)
    elif isinstance(obj, bool):
        out.append((prefix, "是" if obj else "否"))
    elif isinstance(obj, int | float):
        out.append((prefix, f"{obj:g}"))
    return out[:40]


def set_aside(quarantine: pd.DataFrame | None, year: int, county: str) -> int:
    """Rows of one county and year set aside (quarantine rows of any table)."""
    q = _quarantine(quarantine)
    if q.empty:
        return 0
    return int(((q["year"] == year) & (q["county_code"] == county)).sum())


def passed_rows(counts: pd.DataFrame | None, table: str, year: int, county: str) -> int | None:
    """Rows of one table, county and year that passed validation; None without counts."""
    if counts is None:
        return None
    c = counts[
        (counts["table"] == table) & (counts["year"] == year) & (counts["county_code"] == county)
    ]
    return int(c["n"].sum())


# ------------------------------------------------------------------------------------------------
# Source files
# ------------------------------------------------------------------------------------------------


def source_files(
    manifest: Mapping | None,
    counts: pd.DataFrame | None = None,
    quarantine: pd.DataFrame | None = None,
    year: int | None = None,
    county: str | None = None,
    previous_problems: pd.DataFrame | None = None,
) -> dict:
    """The ingest manifest's files; with ``counts`` and ``year`` only the files holding rows of that
    round (and county), with the rows the report uses and the rows set aside."""
    files = (manifest or {}).get("files") or {}
    if isinstance(files, Mapping):
        info = {str(k): v for k, v in files.items()}
    else:
        info = {
            _txt(x.get("path") or x.get("file") or x.get("source_file")): x
            for x in files
            if isinstance(x, Mapping)
        }
    per_round = counts is not None and year is not None
    used: dict[str, int] = {}
    dropped: dict[str, int] = {}
    if per_round:
        prev = previous_year(previous_problems, year)
        c = _of_round(counts, year, prev, county, keep_na=False) if not counts.empty else counts
        used = {str(k): int(v) for k, v in c.groupby("source_file")["n"].sum().items() if k}
        q = _quarantine(quarantine)
        if not q.empty:
            q = _of_round(q, year, prev, county, keep_na=False)
            dropped = {str(k): int(v) for k, v in q.groupby("source_file").size().items() if k}
        names = sorted(set(used) | set(dropped))
    else:
        names = sorted(info)
    rows = []
    for path in names:
        i = info.get(path)
        i = i if isinstance(i, Mapping) else {}
        fmt = _txt(i.get("format"))
        sep = _txt(i.get("delimiter"))
        if sep in schemas.TEXT_DELIMITERS and sep != "comma":
            fmt += f"（{schemas.TEXT_DELIMITERS[sep][1]}分隔）"
        row = [path, fmt, _txt(i.get("encoding")), _header_lines(i), _txt(i.get("rows_read"))]
        if per_round:
            row += [str(used.get(path, 0)), str(dropped.get(path, 0))]
        else:
            row += [_txt(i.get("rows_kept")), _txt(i.get("rows_quarantined"))]
        rows.append(row)
    cols = ["文件", "格式", "编码", "表头所在行", "读取行数"]
    if per_round:
        where = "本年度、本县" if county is not None else "本年度"
        note = (
            f"只列出含{where}数据的文件。读取行数为整个文件；一个文件含多个年度或区县时，"
            f"“本报告使用”与“剔除”只计{where}的行（九年一贯制等学校按学段拆分后计）。"
        )
        return _table([*cols, "本报告使用行数", "剔除行数"], rows, note=note,
                      widths=[40, 8, 9, 10, 10, 13, 10])  # fmt: skip
    return _table([*cols, "保留行数", "隔离行数"], rows)


def _header_lines(info: Mapping) -> str:
    """The header's row(s) as ingest found them: "3", or "3–4" for a two-line header."""
    first = _num(info.get("header_row"))
    if first is None:
        return ""
    n = _num(info.get("header_rows")) or 1
    return f"{int(first)}" if n <= 1 else f"{int(first)}–{int(first + n - 1)}"


def dataset_info(manifest: Mapping | None) -> dict:
    ds = (manifest or {}).get("dataset") or {}
    synthetic = bool(ds.get("synthetic", False)) if isinstance(ds, Mapping) else False
    label = _txt(ds.get("label")) if isinstance(ds, Mapping) else ""
    return {"synthetic": synthetic, "label": label or ("合成演示数据" if synthetic else "")}


# ------------------------------------------------------------------------------------------------
# Official vs computed
# ------------------------------------------------------------------------------------------------


def reconciliation(f: Fmt, lk, year: int, county: str, n_set_aside: int = 0) -> dict:
    """The county's own values printed in its county report beside the values computed from
    student data: those that print differently at the report's decimals, with the one used.

    ``lk`` is a :class:`pipeline.report.views.Lookup`. Returns ``table``, ``note``, ``n_checked``,
    ``n_differ``.
    """
    rows, n_checked = [], 0
    for r in lk.county_values(year, county):
        ind = _txt(r.get("indicator"))
        g, s = r.get("grade"), _txt(r.get("subject"))
        gv, gval = _txt(r.get("group_var")), _txt(r.get("group_value"))
        local = lk.local(year, county, g, s, ind, gv, gval)
        if local is None or local.get("suppressed") or _num(local.get("estimate")) is None:
            continue
        kind = kind_of(ind)
        n_checked += 1
        off_text = f.num(r.get("value"), kind)
        loc_text = f.num(local.get("estimate"), kind)
        if off_text == loc_text:
            continue
        what = schemas.INDICATOR_LABELS.get(ind, ind)
        if gv:
            what += f"（{schemas.GROUP_VAR_LABELS.get(gv, gv)}：{group_label(gv, gval)}）"
        cell = cell_label(g, s) if s or _num(g) is not None else ""
        label = f"{cell} {what}" if s else f"{cell}{what}"
        page = _txt(r.get("source_page"))
        used = "官方值（判定依据）" if lk.official(year, county, g, s, ind, gv, gval) else "计算值"
        rows.append([label.strip(), off_text + (f"（{page}）" if page else ""), loc_text, used])
    if not n_checked:
        note = "本轮区县监测报告没有可与本地计算值逐项对照的本县数值。"
    elif not rows:
        note = f"区县监测报告中的本县数值共 {n_checked} 项与本地计算值对照，按本报告的小数位显示均一致。"
    else:
        note = (
            f"区县监测报告中的本县数值共 {n_checked} 项与本地由学生数据计算的数值对照，上表列出按本报告"
            f"小数位显示后不一致的 {len(rows)} 项。报告中的估计值、置信区间和检验均用计算值"
            "（校际差异率有官方值时以官方值判定）。不一致可能来自校验中剔除的记录"
            f"（本县本年度剔除 {n_set_aside} 行，见“数据质量”）、官方报告的四舍五入，或官方报告所用样本"
            "与本地数据不完全相同；请与国家监测报告核对。"
        )
    return {
        "table": _table(
            ["项目", "官方报告值（页码）", "本地计算值", "报告采用"], rows, widths=[46, 22, 14, 18]
        ),  # fmt: skip
        "note": note,
        "n_checked": n_checked,
        "n_differ": len(rows),
    }
