"""Pure core: one raw file → canonical rows + quarantine + manifest entry.

Nothing leaves the count: every data row of a file is kept or set aside with a rule and a Chinese
reason (``rows_read = rows_kept + rows_quarantined``), and what cannot be a row is said out loud:

- a file without data rows (an empty template) is recorded (``empty: true``) with a WARNING;
- an Excel error value (#N/A, #DIV/0! …) or a formula without a saved result in a column that is
  read sets that row aside (``ingest.error_value`` / ``ingest.formula_no_value``), or only that
  subject's score when it sits in a wide score column of a student row;
- a student or teacher id that Excel has turned into a number (1.23E+17, 2020000101.5) or that
  breaks ``ingest.student_id_pattern`` sets its row aside (``ingest.bad_student_id`` /
  ``ingest.bad_teacher_id``), never becomes an id;
- a questionnaire item (``Column.answers``) takes 1–4 or an answer word of ``LIKERT_CODES``;
  anything else sets its row aside (``ingest.bad_answer``);
- a county code and a county name on one row that name different counties set it aside
  (``ingest.county_mismatch``), instead of silently trusting the code;
- a schools file that gives some of the 7 resource columns but not all is an error naming the
  missing ones and their accepted names; one that gives none (a school list) is read, with a
  WARNING and ``missing_indicator_columns`` in the manifest;
- ignored columns are listed at INFO, or at WARNING with what they look like when one resembles a
  known column (``suspect_columns``).

No message shows a student or teacher id, name or ID number: ids appear only pseudonymised, name
and ID number columns are dropped unread, and ID-number-like digits in any shown value are masked.
"""

from __future__ import annotations

import logging
import re
import unicodedata
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

import pipeline.schemas as schemas
from pipeline.errors import EqmError
from pipeline.ingest.headers import Lookups, _norm_county, header_target, resembled_column
from pipeline.ingest.quarantine import _Fails, _quarantine_cells, _quarantine_rows
from pipeline.ingest.readers import RawFile
from pipeline.ingest.reshape import SECTION_ENROLLMENT, SPLIT_FORMS, melt_wide, split_schools
from pipeline.ingest.sources import IngestParams
from pipeline.ingest.values import (
    CODE_EXAMPLES,
    CODE_MAPS,
    FORMULA_NO_VALUE,
    _map_unique,
    _to_code,
    _to_number,
    _to_year,
    as_text,
    error_cells,
    is_id_number,
    mask_id_numbers,
    pseudonymise,
)

log = logging.getLogger(__name__)

FORMULA_REASON = "公式没有保存计算结果（请在 Excel 中打开并保存后再发送）"
_SCIENTIFIC = re.compile(r"[+-]?[0-9]+(?:\.[0-9]*)?[eE][+-]?[0-9]+")
_DECIMAL = re.compile(r"[+-]?[0-9]*\.[0-9]+")


@dataclass
class FileResult:
    table: str
    source: str
    frame: pd.DataFrame  # canonical rows kept (schools: after the split)
    scores: pd.DataFrame | None  # scores melted from wide columns
    quarantine: pd.DataFrame
    manifest: dict[str, Any]


@dataclass
class HeaderMap:
    """What each raw header of a file means."""

    cols: dict[str, tuple[str, float]] = field(default_factory=dict)  # canonical -> (header, scale)
    wide: dict[tuple[str, str], str] = field(default_factory=dict)  # (subject, field) -> header
    pvs: dict[str, str] = field(default_factory=dict)  # pvK -> header
    pii: list[str] = field(default_factory=list)  # dropped unread
    unknown: list[str] = field(default_factory=list)  # ignored
    suspect: dict[str, str] = field(default_factory=dict)  # ignored header -> column it resembles

    def row_heads(self) -> list[str]:
        """Headers whose bad cell sets the whole row aside (all read columns but wide scores)."""
        return [h for h, _ in self.cols.values()] + list(self.pvs.values())


# ------------------------------------------------------------------------------------------------
# Headers and columns
# ------------------------------------------------------------------------------------------------


def map_headers(table: str, headers: list[str], lookups: Lookups, hint, source: str) -> HeaderMap:
    """Map every raw header (:func:`header_target`); two headers meaning one column is an error."""
    tbl = schemas.INPUT_TABLES[table]
    hm = HeaderMap()
    for h in headers:
        t = header_target(table, h, lookups, hint.aliases)
        if t is None:
            hm.unknown.append(h)
            continue
        if t.kind == "pii":
            hm.pii.append(h)
            continue
        key, store = (
            (t.column, hm.cols)
            if t.kind == "col"
            else ((t.subject, t.column), hm.wide)
            if t.kind == "wide"
            else (t.column, hm.pvs)
        )
        if key in store:
            prev = store[key][0] if t.kind == "col" else store[key]
            what = (
                tbl[t.column].display
                if t.kind == "col"
                else f"{schemas.SUBJECT_LABELS.get(t.subject or '', t.subject)} {t.column}"
                if t.kind == "wide"
                else t.column
            )
            raise EqmError(
                f"列「{prev}」和「{h}」都对应 {what}，无法确定使用哪一列。",
                file=source,
                column=h,
                hint="请删除或重命名其中一列。",
            )
        store[key] = (h, t.scale) if t.kind == "col" else h
    if table == "scores" and "subject" in hm.cols:
        # long form: score-like extra columns are not melted
        hm.unknown += list(hm.wide.values())
        hm.wide = {}
    for h in hm.unknown:
        like = resembled_column(table, h, lookups)
        if like is not None and like not in hm.cols and not tbl[like].pii:
            hm.suspect[h] = like
    _log_columns(table, hm, source)
    return hm


def _log_columns(table: str, hm: HeaderMap, source: str) -> None:
    tbl = schemas.INPUT_TABLES[table]
    if hm.suspect:
        like = "；".join(
            f"「{h}」像是「{tbl[c].label}」（{c}）" for h, c in sorted(hm.suspect.items())
        )
        log.warning(
            "%s：以下列不是已知的列，已忽略：%s。其中%s：如果是同一列，请在 data/raw/sources.yaml 的"
            " aliases 中添加「你的列名: 标准列名」后重新运行。",
            source,
            mask_id_numbers("、".join(hm.unknown)),
            mask_id_numbers(like),
        )
    elif hm.unknown:  # a header may be a value pasted in the wrong place, even an ID number
        log.info(
            "%s：以下列不是已知的列，已忽略：%s", source, mask_id_numbers("、".join(hm.unknown))
        )
    if hm.pii:
        log.info("%s：已删除个人信息列 %s", source, "、".join(hm.pii))


def _accepted_names(col: schemas.Column) -> str:
    return "、".join(dict.fromkeys((*col.aliases, col.name)))


def _shown_headers(header: list[str]) -> str:
    return "、".join(header[:12]) + ("…" if len(header) > 12 else "")


def _missing_column_error(
    col: schemas.Column, source: str, header: list[str], extra: str = ""
) -> EqmError:
    return EqmError(
        f"缺少必需的列「{col.label}」（{col.name}）{extra}。可接受的列名：{_accepted_names(col)}。"
        f"文件中的列：{_shown_headers(header)}。",
        file=source,
        column=col.label,
        hint=f"请检查表头拼写；如果该列用了别的名称，可在 data/raw/sources.yaml 的 aliases 中添加"
        f"「你的列名: {col.name}」。",
    )


def check_columns(
    table: str, hm: HeaderMap, hint, headers: list[str], source: str
) -> list[str]:  # fmt: skip
    """Raise for a missing required column; return the resource columns a school list lacks."""
    tbl = schemas.INPUT_TABLES[table]
    cols, wide, pvs = hm.cols, hm.wide, hm.pvs
    for col in tbl.required:
        if col.name in cols:
            continue
        if col.name == "year" and hint.year is not None:
            continue
        if table == "scores" and col.name == "subject" and wide:
            continue
        raise _missing_column_error(col, source, headers)
    if table in ("students", "schools", "county_reports") and not (
        {"county_code", "county_name"} & set(cols) or hint.county_code
    ):
        raise _missing_column_error(
            tbl["county_code"],
            source,
            headers,
            extra=f"或「{tbl['county_name'].label}」（county_name）",
        )
    if (
        table == "scores"
        and "subject" in cols
        and not ({"scale_score", "level"} & set(cols) or pvs)
    ):
        raise _missing_column_error(tbl["scale_score"], source, headers, extra="或 pv1…pvM")
    if table != "schools":
        return []
    return _check_indicator_columns(hm, headers, source)


def _check_indicator_columns(hm: HeaderMap, headers: list[str], source: str) -> list[str]:
    """The 7 resource columns (优质均衡 L1–L7) of a schools file: all, or none (a school list).

    Schools are one row per school section, so a file cannot hold half of a school's indicators
    and another file the rest (validate would take the two rows for duplicates). Hence some but
    not all of the 7 (or none, next to an ignored column that looks like one) is an error naming
    each missing column with its accepted names; none at all is a school list (enrolment, 教学点):
    read, with a WARNING, and the missing columns recorded in the manifest."""
    tbl = schemas.SCHOOLS
    missing = [q for q in schemas.RESOURCE_QUANTITIES if q not in hm.cols]
    if not missing:
        return []
    lookalikes = {h: c for h, c in hm.suspect.items() if c in schemas.RESOURCE_QUANTITIES}
    if len(missing) == len(schemas.RESOURCE_QUANTITIES) and not lookalikes:
        log.warning(
            "%s：没有办学条件 7 项指标（%s）中的任何一列，按学校名单读入；这些学校不会有资源配置指标。"
            "如果这是办学条件统计表，请检查表头。",
            source,
            "、".join(tbl[q].label for q in missing),
        )
        return missing
    each = "；".join(f"「{tbl[q].label}」（可接受：{_accepted_names(tbl[q])}）" for q in missing)
    like = "".join(f"列「{h}」像是「{tbl[c].label}」；" for h, c in sorted(lookalikes.items()))
    raise EqmError(
        f"办学条件文件缺少指标列：{each}。{like}文件中的列：{_shown_headers(headers)}。"
        "（表头也可带单位，如「网络多媒体教室数(间)」「教学仪器设备值(万元)」。）",
        file=source,
        column=tbl[missing[0]].label,
        hint="7 项资源配置指标需在同一文件的同一行给出：请检查表头拼写，或在 data/raw/sources.yaml 的"
        " aliases 中添加「你的列名: 标准列名」；某项确实没有数据时，请保留该列并留空（该项按缺失处理）。",
    )


# ------------------------------------------------------------------------------------------------
# Cells that hold no value: Excel error values, formulas without a saved result
# ------------------------------------------------------------------------------------------------


@dataclass
class _BadCells:
    data: pd.DataFrame  # the raw cells with those cells blanked
    errors: dict[str, int]  # header -> Excel error values set aside
    formulas: dict[str, int]  # header -> formulas without a saved result set aside


def _set_aside_bad_cells(
    data: pd.DataFrame, hm: HeaderMap, fails: _Fails, cell_fails: dict[str, _Fails]
) -> _BadCells:
    """Excel error values and unsaved formulas in the columns that are read: each sets its row
    aside (``fails``), or in a wide score column that subject's score (``cell_fails``), and is
    blanked so that no other rule reports it again."""
    errors: dict[str, int] = {}
    formulas: dict[str, int] = {}
    heads = [(h, None) for h in hm.row_heads()] + [(h, s) for (s, _), h in sorted(hm.wide.items())]
    blanked = None
    for h, subject in heads:
        s = data[h]
        err = error_cells(s)
        is_err = err.notna().to_numpy()
        is_formula = (s == FORMULA_NO_VALUE).to_numpy(dtype=bool) if s.dtype == object else None
        if not is_err.any() and (is_formula is None or not is_formula.any()):
            continue
        target = fails if subject is None else cell_fails.setdefault(subject, _Fails(len(data)))
        if is_err.any():
            msg = (f"{h}：单元格为 Excel 错误值 " + err.fillna("")).to_numpy(dtype=object)
            target.add_messages(is_err, h, "ingest.error_value", msg)
            errors[h] = int(is_err.sum())
        if is_formula is not None and is_formula.any():
            target.add(is_formula, h, "ingest.formula_no_value", f"{h}：{FORMULA_REASON}")
            formulas[h] = int(is_formula.sum())
        blanked = data.copy() if blanked is None else blanked
        drop = is_err | (is_formula if is_formula is not None else False)
        blanked[h] = s.mask(pd.Series(drop, index=s.index))
    return _BadCells(data if blanked is None else blanked, errors, formulas)


def _log_bad_cells(source: str, bad: _BadCells, wide_heads: set[str]) -> None:
    for what, counts in (("Excel 错误值（#N/A、#DIV/0! 等）", bad.errors), ("", bad.formulas)):
        for h, k in counts.items():
            where = "该科成绩" if h in wide_heads else "所在行"
            if what:
                log.warning(
                    "%s：列「%s」有 %d 个单元格为 %s，%s已隔离。", source, h, k, what, where
                )
            else:
                log.warning(
                    "%s：列「%s」有 %d 个单元格是%s，%s已隔离。",
                    source,
                    h,
                    k,
                    FORMULA_REASON,
                    where,
                )


# ------------------------------------------------------------------------------------------------
# Values
# ------------------------------------------------------------------------------------------------


def _id_failures(text: pd.Series, pattern: str, label: str) -> tuple[np.ndarray, np.ndarray]:
    """Rows whose raw id (``label``: 学生编号, 教师编号) breaks ``pattern`` and a message each that
    never shows the id."""
    rx = re.compile(pattern)

    def why(u: str) -> str | None:
        if rx.fullmatch(u):
            return None
        if _SCIENTIFIC.fullmatch(u):
            return (
                f"{label}是科学计数法形式（如 1.23E+17）：Excel 把编号当成了数字，末尾几位已经丢失，"
                f"无法还原；请在原系统中把{label}按文本导出"
            )
        if _DECIMAL.fullmatch(u):
            return f"{label}带小数点：Excel 把编号当成了数字；请在原系统中把{label}按文本导出"
        return (
            f"{label}不符合规定的格式（params.yaml 的 ingest.student_id_pattern，默认只含字母、数字、"
            "短横线和下划线）；请核对该单元格"
        )

    msg = _map_unique(text, why)
    return msg.notna().to_numpy(), msg.fillna("").to_numpy(dtype=object)


def _parse_columns(
    data: pd.DataFrame,
    table: str,
    hm: HeaderMap,
    params: IngestParams,
    fails: _Fails,
    decimal_comma: bool,
) -> dict[str, pd.Series]:
    """Every read column but the county ones, parsed (vectorised); failures into ``fails``."""
    tbl = schemas.INPUT_TABLES[table]
    out: dict[str, pd.Series] = {}
    for c in tbl.columns:
        if c.name not in hm.cols or c.name in ("county_code", "county_name"):
            continue
        h, scale = hm.cols[c.name]
        s = data[h]
        if c.name == "year":
            val, bad, dated = _to_year(s)
            fails.add(
                dated,
                h,
                "ingest.bad_year",
                f"{c.label}{{}}所在单元格被设置成了日期格式，无法看出年份；请在 Excel 中把该列单元格格式"
                "改为「常规」或「数值」，再重新输入四位年份（如 2022）",
                s,
            )
            fails.add(bad & ~dated, h, "ingest.bad_year", f"{c.label}{{}}不是四位年份", s)
        elif c.name == "grade":
            val, bad = _to_code(s, CODE_MAPS["grade"])
            fails.add(
                bad,
                h,
                "ingest.unknown_code",
                f"{c.label}{{}}无法识别，应为 {CODE_EXAMPLES['grade']}",
                s,
            )
        elif c.answers is not None:  # a questionnaire item: 1–4 or an answer word
            val, bad = _to_code(s, CODE_MAPS["likert"])
            val = val.astype("float64")
            fails.add(
                bad,
                h,
                "ingest.bad_answer",
                f"{c.label}{{}}不是可识别的作答，应为 {CODE_EXAMPLES['likert']}；请按问卷的编码改正该"
                "单元格（未作答的留空）",
                s,
            )
        elif c.dtype == "float":
            val, bad = _to_number(s, decimal_comma)
            val = val * scale
            fails.add(bad, h, "ingest.not_a_number", f"{c.label}{{}}不是数字", s)
        elif c.dtype == "bool" or c.dtype == "category":
            kind = "bool" if c.dtype == "bool" else c.name
            val, bad = _to_code(s, CODE_MAPS[kind])
            fails.add(
                bad,
                h,
                "ingest.unknown_code",
                f"{c.label}{{}}无法识别，应为 {CODE_EXAMPLES[kind]}",
                s,
            )
        else:
            val = as_text(s)
            if c.pseudonymised:  # pseudonymised below: an ID number never leaves ingest
                bad, msg = _id_failures(val, params.student_id_pattern, c.label)
                fails.add_messages(bad, h, f"ingest.bad_{c.name}", msg)
            else:  # a kept text column (school id, name …) would carry an ID number out
                fails.add(
                    _map_unique(val, is_id_number).fillna(False).to_numpy(dtype=bool),
                    h,
                    "ingest.id_number_in_field",
                    f"{c.label}中是一个身份证号（已隐去），它不会被写入任何输出；请核对是否填错了列",
                )
        out[c.name] = val.reset_index(drop=True)
    for k, h in sorted(hm.pvs.items()):
        val, bad = _to_number(data[h], decimal_comma)
        fails.add(bad, h, "ingest.not_a_number", f"{k}{{}}不是数字", data[h])
        out[k] = val
    return out


def _parse_wide(
    data: pd.DataFrame, hm: HeaderMap, cell_fails: dict[str, _Fails], decimal_comma: bool
) -> dict[tuple[str, str], pd.Series]:
    """Wide score cells: a bad cell sets aside that subject's score of the row, not the row."""
    wide_vals: dict[tuple[str, str], pd.Series] = {}
    for (subj, fld), h in sorted(hm.wide.items()):
        s = data[h]
        sf = cell_fails.setdefault(subj, _Fails(len(data)))
        if fld == "level":
            val, bad = _to_code(s, CODE_MAPS["level"])
            sf.add(
                bad,
                h,
                "ingest.unknown_code",
                f"{h}{{}}无法识别，应为 {CODE_EXAMPLES['level']}",
                s,
            )
        else:
            val, bad = _to_number(s, decimal_comma)
            sf.add(bad, h, "ingest.not_a_number", f"{h}{{}}不是数字", s)
        wide_vals[(subj, fld)] = val
    return wide_vals


def _fill_year_and_grade(
    out: dict[str, pd.Series], table: str, hm: HeaderMap, hint, fails: _Fails, n: int
) -> None:
    """Year from the file hint where the column is missing or empty; a missing year or grade."""
    tbl = schemas.INPUT_TABLES[table]
    if "year" in tbl.names:
        year = out.get("year", pd.Series(np.nan, index=pd.RangeIndex(n), dtype="float64"))
        if hint.year is not None:
            year = year.fillna(float(hint.year))
        out["year"] = year
        fails.add(
            year.isna().to_numpy() & ~fails.bad,
            hm.cols.get("year", ("监测年份",))[0],
            "ingest.missing_value",
            "缺少监测年份",
        )
    if table in ("students", "county_reports", "teachers") and "grade" in out:
        g = out["grade"]
        fails.add(
            g.isna().to_numpy() & ~fails.bad,
            hm.cols["grade"][0],
            "ingest.missing_value",
            "缺少年级",
        )


def _resolve_county(
    out: dict[str, pd.Series],
    data: pd.DataFrame,
    hm: HeaderMap,
    lookups: Lookups,
    hint,
    fails: _Fails,
) -> None:
    """County code from the code column, else the name column, else the file hint.

    A code and a name on one row that resolve to different counties set the row aside
    (``ingest.county_mismatch``): which of the two is wrong cannot be told."""
    n = len(data)
    index = pd.RangeIndex(n)
    code_h = hm.cols.get("county_code", (None,))[0]
    name_h = hm.cols.get("county_name", (None,))[0]
    code_t = as_text(data[code_h]) if code_h else pd.Series(None, index=index, dtype=object)
    name_t = as_text(data[name_h]) if name_h else pd.Series(None, index=index, dtype=object)
    county_map = lookups.counties

    def resolve(u: str) -> str | None:
        u = unicodedata.normalize("NFKC", u)
        if re.fullmatch(r"[0-9]{6}", u):
            return u
        return county_map.get(_norm_county(u))

    from_code = _map_unique(code_t, resolve)
    from_name = _map_unique(name_t, resolve)
    bad_code = code_t.notna().to_numpy() & from_code.isna().to_numpy()
    bad_name = code_t.isna().to_numpy() & name_t.notna().to_numpy() & from_name.isna().to_numpy()
    hint_msg = "无法对应到区县代码；请核对名称，或在 params.yaml 的 monitoring.counties / county_aliases 中补充"
    if code_h:
        fails.add(bad_code, code_h, "ingest.unknown_county", f"区县代码{{}}{hint_msg}", code_t)
    if name_h:
        fails.add(bad_name, name_h, "ingest.unknown_county", f"区县{{}}{hint_msg}", name_t)
        clash = (from_code.notna() & from_name.notna() & (from_code != from_name)).to_numpy()
        if code_h and clash.any():
            msg = (
                "区县代码「" + code_t.fillna("") + "」与区县「" + name_t.fillna("")
                + "」不一致（「" + name_t.fillna("") + "」的代码是 " + from_name.fillna("")
                + "）；无法判断哪一个正确，请核对该行属于哪个区县"
            )  # fmt: skip
            fails.add_messages(clash, code_h, "ingest.county_mismatch", msg.to_numpy(dtype=object))
    county = from_code.where(from_code.notna(), from_name)
    if hint.county_code:
        county = county.where(county.notna() | code_t.notna() | name_t.notna(), hint.county_code)
    out["county_code"] = county
    official = county.map(dict(lookups.county_names))
    out["county_name"] = official.where(official.notna(), name_t)


def _check_split_enrollment(
    out: dict[str, pd.Series], hm: HeaderMap, params: IngestParams, fails: _Fails, n: int
) -> None:
    """一贯制 rows need the enrolment of every section to be split."""
    tbl = schemas.SCHOOLS
    stage = out["stage"]
    index = pd.RangeIndex(n)
    for form, weights in params.split_weights.items():
        is_form = (stage == form).to_numpy()
        if not is_form.any():
            continue
        ok = np.ones(n, dtype=bool)
        denom = np.zeros(n)
        for section, w in weights.items():
            e = out.get(SECTION_ENROLLMENT[section], pd.Series(np.nan, index=index)).to_numpy(
                dtype=float
            )
            ok &= ~np.isnan(e)
            denom = denom + w * np.nan_to_num(e)
        need = "、".join(tbl[SECTION_ENROLLMENT[s]].label for s in weights)
        fails.add(
            is_form & ~(ok & (denom > 0)),
            hm.cols["stage"][0],
            "ingest.split_enrollment",
            f"{SPLIT_FORMS.get(form, form)}学校需要填写{need}（不能全为 0）才能按学段拆分",
        )


def _parse_values(
    raw: RawFile,
    data: pd.DataFrame,
    hm: HeaderMap,
    lookups: Lookups,
    params: IngestParams,
    salt: str,
    fails: _Fails,
    cell_fails: dict[str, _Fails],
) -> tuple[dict[str, pd.Series], dict[tuple[str, str], pd.Series]]:
    """Canonical values of every row (bad ones recorded in ``fails`` / ``cell_fails``)."""
    table, hint, n = raw.table, raw.hint, len(data)
    # a semicolon-separated file comes from a decimal-comma locale: 12,5 means 12.5
    decimal_comma = raw.meta.get("delimiter") == "semicolon"
    out = _parse_columns(data, table, hm, params, fails, decimal_comma)
    wide_vals = _parse_wide(data, hm, cell_fails, decimal_comma)
    _fill_year_and_grade(out, table, hm, hint, fails, n)
    if "county_code" in schemas.INPUT_TABLES[table].names:
        _resolve_county(out, data, hm, lookups, hint, fails)
    if table == "schools" and "stage" in out:
        _check_split_enrollment(out, hm, params, fails, n)
    if table == "schools":  # 学校类别 defaults to 普通 (regular) when absent or blank
        st = out.get("school_type", pd.Series(None, index=pd.RangeIndex(n), dtype=object))
        out["school_type"] = st.where(st.notna(), "regular")
    for c in schemas.INPUT_TABLES[table].columns:
        if c.pseudonymised and c.name in out:  # the same salt for every id: rounds link
            out[c.name] = pseudonymise(out[c.name], salt)
    return out, wide_vals


# ------------------------------------------------------------------------------------------------
# One file
# ------------------------------------------------------------------------------------------------


def _whole_column_error(source: str, fails: _Fails, source_rows: np.ndarray, n: int) -> None:
    """Every row failing for one reason in one column: a wrong file or column, not bad rows."""
    if not (n and fails.bad.all()):
        return
    pairs = set(zip(fails.rule.tolist(), fails.column.tolist(), strict=True))
    if len(pairs) == 1:
        _rule, column = pairs.pop()
        raise EqmError(
            f"全部 {n} 行的该列都无法解析，例如第 {source_rows[0]} 行：{fails.message[0]}。",
            file=source,
            column=column,
            hint="这通常说明文件放错了文件夹、列对应错了或代码表不全：请核对该列；区县名称可在 params.yaml "
            "的 monitoring.county_aliases 中补充，列名可在 data/raw/sources.yaml 的 aliases 中指定。",
        )


def _quarantine(
    raw: RawFile,
    hm: HeaderMap,
    fails: _Fails,
    cell_fails: dict[str, _Fails],
    out: dict[str, pd.Series],
    wide_vals: dict[tuple[str, str], pd.Series],
) -> tuple[pd.DataFrame, int]:
    """The file's quarantine records and how many of them are score cells set aside alone.

    A student row set aside anyway also reports its bad score cells; a kept row's bad score cells
    become quarantine records of their own (table scores) and that subject is not melted
    (``wide_vals`` is masked in place)."""
    bad = fails.bad
    cell_q = []
    for subj, sf in sorted(cell_fails.items()):
        both = bad & sf.bad
        if both.any():
            fails.message[both] = fails.message[both] + "；" + sf.message[both]
        only = sf.bad & ~bad
        if only.any():
            heads = [h for (s_, _), h in sorted(hm.wide.items()) if s_ == subj]
            cell_q.append(_quarantine_cells(raw, only, sf, out, hm.cols, heads))
            for k in [k for k in wide_vals if k[0] == subj]:
                wide_vals[k] = wide_vals[k].mask(only)
    quarantine = _quarantine_rows(raw, bad, fails, out, hm.cols, hm.wide, hm.pvs)
    if cell_q:
        quarantine = pd.concat([quarantine, *cell_q], ignore_index=True)
    return quarantine, sum(len(c) for c in cell_q)


def normalise_file(raw: RawFile, lookups: Lookups, params: IngestParams, salt: str) -> FileResult:
    """Canonical rows and quarantine for one raw file (pure: no file access)."""
    table, source, hint = raw.table, raw.source, raw.hint
    data = raw.data.reset_index(drop=True)
    n = len(data)
    headers = [str(c) for c in data.columns]
    hm = map_headers(table, headers, lookups, hint, source)
    missing_indicators = check_columns(table, hm, hint, headers, source)
    if n == 0:
        log.warning(
            "%s：文件只有表头、没有任何数据行（读入 0 行），可能是误发的空白模板；请确认后换成填好的文件。",
            source,
        )

    fails = _Fails(n)
    cell_fails: dict[str, _Fails] = {}
    cells = _set_aside_bad_cells(data, hm, fails, cell_fails)
    _log_bad_cells(source, cells, set(hm.wide.values()))
    out, wide_vals = _parse_values(raw, cells.data, hm, lookups, params, salt, fails, cell_fails)

    bad = fails.bad
    source_rows = np.asarray(raw.rows, dtype=np.int64)
    _whole_column_error(source, fails, source_rows, n)
    quarantine, cells_quarantined = _quarantine(raw, hm, fails, cell_fails, out, wide_vals)

    # --- canonical frame -----------------------------------------------------------------------
    keep = ~bad
    index = pd.RangeIndex(n)
    frame = pd.DataFrame(dict(out), index=index).loc[keep].reset_index(drop=True)
    frame["source_file"] = source
    frame["source_row"] = source_rows[keep]
    melted = None
    if hm.wide:
        w = {k: v.loc[keep].reset_index(drop=True) for k, v in wide_vals.items()}
        melted = melt_wide(frame, w)
    if table == "scores" and "subject" not in out:
        frame, melted = melted if melted is not None else frame.iloc[:0], None
    if table == "schools":
        frame = split_schools(frame, params.split_weights)

    # Counting (rows_read = rows_kept + rows_quarantined, and rows_quarantined = this file's
    # quarantine records, which validate checks): a record is a data row of the file, or a wide
    # score cell set aside on its own while its student row was kept. So rows_read = data_rows +
    # score_cells_quarantined, rows_kept = data rows kept, rows_quarantined = data rows set aside +
    # score_cells_quarantined. Files without wide scores: rows_read = data_rows.
    manifest = dict(raw.meta)
    manifest.update(
        table=table,
        rows_read=n + cells_quarantined,
        rows_kept=int(keep.sum()),
        rows_quarantined=int(bad.sum()) + cells_quarantined,
        data_rows=n,
        data_rows_quarantined=int(bad.sum()),
        score_cells_quarantined=cells_quarantined,
        rows_written=len(frame),
        empty=n == 0,
        columns={h: c for c, (h, _) in sorted(hm.cols.items())},
        ignored_columns=[mask_id_numbers(h) for h in hm.unknown],
        suspect_columns=dict(sorted(hm.suspect.items())),
        missing_indicator_columns=missing_indicators,
        error_value_cells=cells.errors,
        formula_cells_without_value=cells.formulas,
        dropped_pii_columns=len(hm.pii),
    )
    if melted is not None:
        manifest["score_rows_from_wide_columns"] = len(melted)
    if manifest["rows_read"] != manifest["rows_kept"] + manifest["rows_quarantined"]:
        raise AssertionError(f"ingest bookkeeping broken for {source}: {manifest}")
    return FileResult(table, source, frame, melted, quarantine, manifest)
