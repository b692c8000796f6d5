"""Ingest: read every raw file under ``data/raw/<table>/`` into the canonical tables.

What it does, per file (``.csv``, ``.txt``/``.tsv``, ``.xlsx``, ``.sav``, ``.parquet``):

1. **Read** the cells as the office wrote them. CSV encoding is taken from ``sources.yaml`` or
   detected (UTF-8, UTF-8 with BOM, GBK, GB18030, UTF-16 with BOM), and so is the field separator
   (comma, tab, semicolon or pipe: :func:`detect_delimiter`; Excel's "Unicode 文本" is UTF-16 with
   tabs); the header row is taken from
   ``sources.yaml`` (``header_row`` counted from 1, as Excel shows it) or found by scoring the first
   ``ingest.header_scan_rows`` rows against the known column aliases, so title rows above the header
   are skipped; a two-line header (group titles over detail titles, merged cells) is joined into one
   when that matches more known columns (:func:`header_block`). SPSS value labels are applied.
2. **Map headers** to canonical names through the aliases of :mod:`pipeline.schemas` plus the user's
   own in ``sources.yaml``. Headers are compared after Unicode NFKC normalisation (full-width
   parentheses and digits become ASCII), removal of whitespace and case-folding. Wide score columns
   (``数学成绩``, ``math_score``, ``math_pv1``, ``科学水平`` …) are recognised and later melted into the
   long ``scores`` table; ``…(万元)`` money headers are converted to yuan (×10,000).
3. **Parse values** vectorised: numbers, years, code lists (性别, 城乡类型, 是/否, 学科, 水平, 年级,
   学段, 学校类别, 范围), county names → codes (``monitoring.counties`` / ``county_aliases``).
   A value that cannot be parsed sends its row to the quarantine (rule, column, Chinese message and
   the row's raw values with PII removed) — unless *every* row of the file fails for the same reason,
   which means a wrong file or column and is an :class:`EqmError`.
4. **Protect privacy**: names and ID numbers are dropped on read; student ids are replaced by a salted
   SHA-256 (first 16 hex digits). The salt comes from the environment variable named by
   ``ingest.salt_env`` or from the git-ignored ``Paths.salt_file`` created on first run.
5. **Split 一贯制 schools** into their compulsory sections (``domain.md``): a section's share of a
   whole-school quantity is ``w_s·E_s / Σ_t w_t·E_t`` with ``E`` the section's students and ``w`` the
   weights of ``ingest.split_weights`` (九年一贯制 1 : 1.1, so the primary share is A/(A + 1.1·B);
   完全中学 junior : senior = 1 : 1.2; 十二年一贯制 1 : 1.1 : 1.32). Only primary and junior sections
   are kept; ``source_stage`` records the original form.

Outputs (all-or-nothing through :func:`pipeline.io.outputs`): one parquet per input table, the
quarantine and ``ingest_manifest.json`` (per file: sha256, format, encoding, delimiter, header_row,
sheet, rows_read = rows_kept + rows_quarantined; and the ``dataset`` block of ``sources.yaml``).

Row numbers (``source_row``) are what the user sees: the Excel row number; for CSV the line number
with the header line of a file without title rows being line 1 (i.e. the physical line number);
for SPSS and parquet the case number (1 = first record).
"""

from __future__ import annotations

import codecs
import csv
import datetime as dt
import hashlib
import io
import json
import logging
import math
import os
import re
import secrets
import unicodedata
import zipfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path, PurePosixPath
from types import MappingProxyType
from typing import Any

import numpy as np
import pandas as pd
import yaml

import pipeline.schemas as schemas
from pipeline.config import RAW_TABLES, MonitoringParams, RunContext
from pipeline.errors import EqmError
from pipeline.io import outputs

log = logging.getLogger(__name__)

# .txt / .tsv: delimited text as Excel's "文本文件(制表符分隔)" / "Unicode 文本" (UTF-16, tab) save it
FORMATS = {
    ".csv": "csv",
    ".txt": "csv",
    ".tsv": "csv",
    ".xlsx": "xlsx",
    ".sav": "sav",
    ".parquet": "parquet",
}
# Field separators tried on text files, in order of preference on a tie; sources.yaml names them.
DELIMITERS = {ch: word for ch, word in schemas.TEXT_DELIMITERS.values()}  # char -> 逗号 …
DELIMITER_NAMES = {name: ch for name, (ch, _) in schemas.TEXT_DELIMITERS.items()}  # comma -> ,
DELIMITER_LABELS = {ch: name for name, ch in DELIMITER_NAMES.items()}  # as the manifest records
ACCEPTED_FORMATS = "、".join(FORMATS)
# data/raw/ folders read by a later stage: ledger/ (filled 整改台账, the evidence stage)
OTHER_STAGE_FOLDERS = frozenset({"ledger"})
TOP_LEVEL_IGNORED = {"sources.yaml", "sources.yml", "demo_truth.json"}
TRACE_COLUMNS = ("source_file", "source_row")
COMPULSORY_STAGES = ("primary", "junior")
SPLIT_FORMS = {
    "nine_year": "九年一贯制",
    "complete_middle": "完全中学",
    "twelve_year": "十二年一贯制",
}
SECTION_ENROLLMENT = {
    "primary": "enrollment_primary",
    "junior": "enrollment_junior",
    "senior": "enrollment_senior",
}
WAN = 10_000.0  # 1 万元 = 10,000 元
_NA_TOKENS = frozenset({"na", "n/a", "nan", "null", "none", "-", "—", "--", "缺失", "#n/a"})


# ------------------------------------------------------------------------------------------------
# Parameters and sources.yaml
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class IngestParams:
    salt_env: str  # environment variable holding the pseudonymisation salt
    header_scan_rows: int  # rows searched for the header when sources.yaml gives no header_row
    encodings: tuple[str, ...]  # CSV encodings tried in order when sources.yaml gives none
    split_weights: Mapping[str, Mapping[str, float]]  # 一贯制 form -> section -> per-student weight


@dataclass(frozen=True)
class FileHint:
    """Per-file settings from ``sources.yaml`` ``files:`` (all optional)."""

    encoding: str | None = None
    sheet: str | int | None = None  # sheet name, or its position counted from 1
    header_row: int | None = None  # counted from 1, as Excel shows it
    delimiter: str | None = None  # text files: one of DELIMITERS (None: detected)
    year: int | None = None
    county_code: str | None = None
    aliases: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))


@dataclass(frozen=True)
class Sources:
    dataset: Mapping[str, Any]
    aliases: Mapping[str, str]
    files: Mapping[str, FileHint]


SOURCES_NAME = "data/raw/sources.yaml"
_SOURCES_HINT = "请对照 data/raw/README.md 中 sources.yaml 的示例修改。"


def _sources_error(msg: str) -> EqmError:
    return EqmError(msg, file=SOURCES_NAME, hint=_SOURCES_HINT)


def _canonical_names() -> set[str]:
    return {c.name for t in schemas.INPUT_TABLES.values() for c in t.columns}


def _parse_aliases(obj: Any, where: str) -> Mapping[str, str]:
    if obj is None:
        return MappingProxyType({})
    if not isinstance(obj, Mapping):
        raise _sources_error(f"{where} 应为「表头: 标准列名」的键值对。")
    known = _canonical_names()
    out = {}
    for k, v in obj.items():
        if not isinstance(v, str) or v not in known:
            raise _sources_error(
                f"{where} 中「{k}」对应的标准列名「{v}」不存在；可用的标准列名：{'、'.join(sorted(known))}。"
            )
        out[str(k)] = v
    return MappingProxyType(out)


def parse_sources(obj: Any) -> Sources:
    """Check the shape of a loaded ``sources.yaml`` and return it typed (pure)."""
    if obj is None:
        obj = {}
    if not isinstance(obj, Mapping):
        raise _sources_error("sources.yaml 的顶层应为键值对（dataset / aliases / files）。")
    unknown = sorted(set(map(str, obj)) - {"dataset", "aliases", "files"})
    if unknown:
        raise _sources_error(
            f"sources.yaml 含未知的顶层键：{'、'.join(unknown)}；允许的键为 dataset、aliases、files。"
        )
    dataset = obj.get("dataset") or {}
    if not isinstance(dataset, Mapping):
        raise _sources_error(
            "sources.yaml 的 dataset 应为键值对（例如 synthetic: true、label: …）。"
        )
    dataset = json.loads(json.dumps(dataset, ensure_ascii=False, default=str))
    aliases = _parse_aliases(obj.get("aliases"), "aliases")
    files_obj = obj.get("files") or {}
    if not isinstance(files_obj, Mapping):
        raise _sources_error("sources.yaml 的 files 应以文件路径（相对 data/raw）为键。")
    files: dict[str, FileHint] = {}
    allowed = {"encoding", "delimiter", "sheet", "header_row", "year", "county_code", "aliases"}
    for key, spec in files_obj.items():
        rel = PurePosixPath(str(key).replace("\\", "/")).as_posix()
        where = f"files.「{key}」"
        if spec is None:
            spec = {}
        if not isinstance(spec, Mapping):
            raise _sources_error(f"{where} 应为键值对（{'、'.join(sorted(allowed))}）。")
        bad = sorted(set(map(str, spec)) - allowed)
        if bad:
            raise _sources_error(
                f"{where} 含未知的键 {'、'.join(bad)}；允许：{'、'.join(sorted(allowed))}。"
            )
        enc = spec.get("encoding")
        if enc is not None:
            try:
                codecs.lookup(str(enc))
            except LookupError:
                raise _sources_error(
                    f"{where} 的 encoding「{enc}」不是已知的编码；常用：utf-8、utf-8-sig、gbk、gb18030。"
                ) from None
        delim = spec.get("delimiter")
        if delim is not None:
            delim = DELIMITER_NAMES.get(str(delim).strip().lower(), str(delim))
            if delim not in DELIMITERS:
                raise _sources_error(
                    f"{where} 的 delimiter「{spec.get('delimiter')}」无法识别；"
                    "可用：comma（逗号）、tab（制表符）、semicolon（分号）、pipe（竖线）。"
                )
        hr = spec.get("header_row")
        if hr is not None and (isinstance(hr, bool) or not isinstance(hr, int) or hr < 1):
            raise _sources_error(
                f"{where} 的 header_row 应为从 1 开始的行号（与 Excel 显示一致），实际为「{hr}」。"
            )
        sheet = spec.get("sheet")
        if sheet is not None and (isinstance(sheet, bool) or not isinstance(sheet, str | int)):
            raise _sources_error(f"{where} 的 sheet 应为工作表名称或从 1 开始的序号。")
        year = spec.get("year")
        if year is not None and (isinstance(year, bool) or not isinstance(year, int)):
            raise _sources_error(f"{where} 的 year 应为四位年份，实际为「{year}」。")
        cc = spec.get("county_code")
        if cc is not None:
            cc = str(cc).strip()
            if not re.fullmatch(r"\d{6}", cc):
                raise _sources_error(
                    f"{where} 的 county_code 应为 6 位行政区划代码，实际为「{cc}」。"
                )
        files[rel] = FileHint(
            encoding=str(enc) if enc is not None else None,
            delimiter=delim,
            sheet=sheet,
            header_row=hr,
            year=year,
            county_code=cc,
            aliases=_parse_aliases(spec.get("aliases"), f"{where}.aliases"),
        )
    return Sources(MappingProxyType(dict(dataset)), aliases, MappingProxyType(files))


def load_sources(path: Path) -> Sources:
    if not path.is_file():
        return parse_sources({})
    try:
        obj = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        mark = getattr(exc, "problem_mark", None)
        raise EqmError(
            f"sources.yaml 不是有效的 UTF-8 YAML：{getattr(exc, 'problem', exc)}",
            file=SOURCES_NAME,
            row=(mark.line + 1) if mark else None,
            hint="请检查缩进和冒号，并以 UTF-8 编码保存。",
        ) from None
    return parse_sources(obj)


# ------------------------------------------------------------------------------------------------
# Header and value normalisation
# ------------------------------------------------------------------------------------------------


def norm_header(h: Any) -> str:
    """NFKC (full-width → ASCII), no whitespace, case-folded: the key headers are compared by."""
    return re.sub(r"\s+", "", unicodedata.normalize("NFKC", str(h))).casefold()


def _norm_code(v: str) -> str:
    t = re.sub(r"\s+", "", unicodedata.normalize("NFKC", v)).casefold()
    return re.sub(r"^(-?\d+)\.0+$", r"\1", t)


def _code_lookup(codes: Mapping[Any, Any]) -> dict[str, Any]:
    return {_norm_code(str(k)): v for k, v in codes.items()}


CODE_MAPS: dict[str, dict[str, Any]] = {
    "gender": _code_lookup(schemas.GENDER_CODES),
    "urban_rural": _code_lookup(schemas.URBAN_RURAL_CODES),
    "subject": _code_lookup(schemas.SUBJECT_CODES),
    "level": _code_lookup(schemas.LEVEL_CODES),
    "stage": _code_lookup(schemas.STAGE_CODES),
    "school_type": _code_lookup(schemas.SCHOOL_TYPE_CODES),
    "scope": _code_lookup(schemas.SCOPE_CODES),
    "grade": _code_lookup(schemas.GRADE_CODES),
    "bool": _code_lookup(schemas.BOOL_CODES),
}
CODE_EXAMPLES = {
    "gender": "男/女、1/2、M/F",
    "urban_rural": "城区/镇区/乡村、1/2/3",
    "subject": "、".join(k for k in schemas.SUBJECT_CODES if not k.isascii()),
    "level": "Ⅰ–Ⅳ、I–IV、待提高/中等/良好/优秀",
    "stage": "小学/初中/九年一贯制/完全中学/十二年一贯制",
    "school_type": "普通/特殊教育/职业",
    "scope": "本县/全省/全国（或 county/province/nation）",
    "grade": "4/8、四年级/八年级",
    "bool": "是/否、1/0",
}


def _cell_text(u: Any) -> str | None:
    """One raw cell → stripped text (None when empty); integral floats lose their ``.0``."""
    if u is None or u is pd.NA or u is pd.NaT:
        return None
    if isinstance(u, bool | np.bool_):
        return "1" if u else "0"
    if isinstance(u, int | np.integer):
        return str(int(u))
    if isinstance(u, float | np.floating):
        if math.isnan(u):
            return None
        return str(int(u)) if float(u).is_integer() and abs(u) < 1e15 else repr(float(u))
    if isinstance(u, dt.datetime | dt.date | pd.Timestamp):
        return u.isoformat()
    t = str(u).strip()
    return None if t == "" or t.casefold() in _NA_TOKENS else t


def _map_unique(s: pd.Series, fn: Callable[[Any], Any]) -> pd.Series:
    """Apply ``fn`` once per distinct non-missing value (vectorised gather); missing → None."""
    codes, uniques = pd.factorize(s.to_numpy(dtype=object), use_na_sentinel=True)
    mapped = np.empty(len(uniques) + 1, dtype=object)
    mapped[: len(uniques)] = [fn(u) for u in uniques]
    mapped[-1] = None
    return pd.Series(mapped[codes], index=s.index, dtype=object)


def as_text(s: pd.Series) -> pd.Series:
    """Raw column → object Series of stripped strings, None where empty/NA."""
    if pd.api.types.is_string_dtype(s.dtype) and not pd.api.types.is_object_dtype(s.dtype):
        t = s.str.strip()
        na = t.isna() | (t == "") | t.str.casefold().isin(_NA_TOKENS)
        out = t.astype(object)
        out[na.to_numpy()] = None
        return out
    return _map_unique(s, _cell_text)


def _nfkc(text: pd.Series) -> pd.Series:
    """NFKC per distinct value: full-width digits, points, commas and minus (２６．５) → ASCII."""
    return _map_unique(text, lambda u: unicodedata.normalize("NFKC", u))


_THOUSANDS = r"^[+-]?\d{1,3}(?:,\d{3})+(?:\.\d+)?$"  # 1,200 / 12,345,678.5 (after NFKC: ， → ,)
_DECIMAL_COMMA = r"^[+-]?\d*,\d+$"  # 12,5: a decimal comma (files from semicolon locales)
_DOT_THOUSANDS = r"^[+-]?\d{1,3}(?:\.\d{3})+(?:,\d+)?$"  # 1.200 / 1.200,5 in those files


def _to_number(raw: pd.Series, decimal_comma: bool = False) -> tuple[pd.Series, np.ndarray]:
    """Text cells → float; ``fail`` marks a non-empty cell that is not a number.

    A comma is a thousands separator only in a valid grouping (``1,200``, ``12,345.5``). In a
    semicolon-separated file (``decimal_comma``: Excel in a decimal-comma locale) the comma is the
    decimal mark and the dot groups thousands: ``12,5`` is 12.5, ``1,200`` is 1.2, ``1.200`` is
    1200 and ``1.200,5`` is 1200.5. Any other comma makes the cell not a number, so it is set
    aside rather than misread; so does a TRUE/FALSE cell (Excel boolean) in a numeric column.
    """
    if pd.api.types.is_numeric_dtype(raw.dtype) and not pd.api.types.is_bool_dtype(raw.dtype):
        return raw.astype("float64"), np.zeros(len(raw), dtype=bool)
    if pd.api.types.is_bool_dtype(raw.dtype):
        is_bool = raw.notna().to_numpy()
    else:
        is_bool = np.fromiter(
            (isinstance(v, bool | np.bool_) for v in raw), dtype=bool, count=len(raw)
        )
    text = _nfkc(as_text(raw))
    stripped = text.str.strip()
    if decimal_comma:
        dots = stripped.str.match(_DOT_THOUSANDS, na=False)
        stripped = stripped.where(~dots, stripped.str.replace(".", "", regex=False))
        dec = stripped.str.match(_DECIMAL_COMMA, na=False)
        cleaned = stripped.where(~dec, stripped.str.replace(",", ".", regex=False))
    else:
        grouped = stripped.str.match(_THOUSANDS, na=False)
        cleaned = stripped.where(~grouped, stripped.str.replace(",", "", regex=False))
    num = pd.to_numeric(cleaned, errors="coerce").astype("float64")
    num = num.where(np.isfinite(num) & ~is_bool)
    fail = text.notna().to_numpy() & num.isna().to_numpy()
    return num, fail


# Excel's day 0 (serials count days from here; the 1900 leap-year bug only affects serials < 61)
_EXCEL_EPOCH = dt.datetime(1899, 12, 30)
# an Excel serial in this range shown with a date format is a year typed into a date-formatted cell
_SERIAL_YEARS = (2015, 2100)


def _date_year(u: Any) -> float:
    """A date-typed year cell → the year it stands for (NaN when it cannot be told).

    1 January of a year → that year (a year entered as a date); a date whose Excel serial number is
    in 2015–2100 (i.e. in mid-1905) → the serial (a year typed into a cell formatted as a date).
    """
    if not isinstance(u, dt.date) or pd.isna(u):
        return math.nan
    d = u if isinstance(u, dt.datetime) else dt.datetime(u.year, u.month, u.day)
    if d.month == 1 and d.day == 1 and d.time() == dt.time(0):
        return float(d.year)
    serial = (d.replace(tzinfo=None) - _EXCEL_EPOCH).total_seconds() / 86400
    if serial == int(serial) and _SERIAL_YEARS[0] <= serial <= _SERIAL_YEARS[1]:
        return float(serial)
    return math.nan


def _to_year(raw: pd.Series) -> tuple[pd.Series, np.ndarray, np.ndarray]:
    """Year cells → float years, the failure mask, and the mask of failures that are date cells."""
    text = _nfkc(as_text(raw))
    cleaned = text.str.replace(r"(年度|年)$", "", regex=True)
    num = pd.to_numeric(cleaned, errors="coerce").astype("float64")
    is_date = np.zeros(len(raw), dtype=bool)
    if raw.dtype == object or pd.api.types.is_datetime64_any_dtype(raw.dtype):
        is_date = raw.map(lambda u: isinstance(u, dt.date) and not pd.isna(u)).to_numpy(bool)
        if is_date.any():
            from_date = _map_unique(raw[is_date], _date_year).astype("float64")
            num = num.copy()
            num[is_date] = from_date.to_numpy()
    ok = np.isfinite(num) & (num == np.round(num))
    num = num.where(ok)
    fail = text.notna().to_numpy() & num.isna().to_numpy()
    return num, fail, fail & is_date


def _to_code(raw: pd.Series, lookup: Mapping[str, Any]) -> tuple[pd.Series, np.ndarray]:
    text = as_text(raw)
    mapped = _map_unique(text, lambda u: lookup.get(_norm_code(u)))
    fail = text.notna().to_numpy() & mapped.isna().to_numpy()
    return mapped, fail


def pseudonymise(ids: pd.Series, salt: str) -> pd.Series:
    """Salted SHA-256 of each id, first 16 hex digits (64 bits); None stays None.

    ``sha256(salt + "\\x1f" + id)``: the same id and salt always give the same key, so rounds that
    share the salt can be linked; without the salt the raw id cannot be recovered by enumeration.
    """
    return _map_unique(ids, lambda u: hashlib.sha256(f"{salt}\x1f{u}".encode()).hexdigest()[:16])


# ------------------------------------------------------------------------------------------------
# Lookups: header aliases per table and county names
# ------------------------------------------------------------------------------------------------

_WAN_HEADERS = frozenset(norm_header(a) for a in schemas.EQUIPMENT_WAN_ALIASES)
_WIDE_SUFFIX = {
    "scale_score": r"量尺分数|量尺成绩|成绩|分数|scalescore|score",
    "level": r"学业水平|水平|等级|level",
}


@dataclass(frozen=True)
class Lookups:
    headers: Mapping[str, Mapping[str, str]]  # table -> normalised alias -> canonical column
    counties: Mapping[str, str]  # normalised county name or code -> county_code
    county_names: Mapping[str, str]  # county_code -> official name


def _norm_county(v: str) -> str:
    t = re.sub(r"\s+", "", unicodedata.normalize("NFKC", v))
    return re.sub(r"^(广西壮族自治区|广西)?(南宁市)?", "", t).casefold() or t.casefold()


def build_lookups(monitoring: MonitoringParams, aliases: Mapping[str, str]) -> Lookups:
    headers: dict[str, dict[str, str]] = {}
    for name, table in schemas.INPUT_TABLES.items():
        m: dict[str, str] = {}
        for c in table.columns:
            for a in (c.name, c.label, *c.aliases):
                m.setdefault(norm_header(a), c.name)
        names = set(table.names)
        for a, canonical in aliases.items():
            if canonical in names:
                m[norm_header(a)] = canonical
        headers[name] = MappingProxyType(m)
    counties: dict[str, str] = {}
    short: dict[str, set[str]] = {}
    for code, name in monitoring.counties.items():
        counties[_norm_county(str(code))] = str(code)
        counties[_norm_county(name)] = str(code)
        base = re.sub(r"(区|县|市)$", "", _norm_county(name))
        if len(base) >= 2:
            short.setdefault(base, set()).add(str(code))
    for name, code in monitoring.county_aliases.items():
        counties[_norm_county(name)] = str(code)
    for base, codes in short.items():
        if len(codes) == 1:
            counties.setdefault(base, next(iter(codes)))
    return Lookups(
        MappingProxyType(headers),
        MappingProxyType(counties),
        MappingProxyType({str(k): v for k, v in monitoring.counties.items()}),
    )


@dataclass(frozen=True)
class Target:
    kind: str  # "col" | "pii" | "wide" | "pv"
    column: str  # canonical column (col/pii), field (wide: scale_score/level/pvK), pvK (pv)
    subject: str | None = None
    scale: float = 1.0


def header_target(
    table: str, header: Any, lookups: Lookups, file_aliases: Mapping[str, str]
) -> Target | None:
    """What a raw header means in ``table`` (None: not a known column)."""
    h = norm_header(header)
    if not h:
        return None
    tbl = schemas.INPUT_TABLES[table]
    names = set(tbl.names)
    canonical = None
    for a, c in file_aliases.items():
        if norm_header(a) == h and c in names:
            canonical = c
    canonical = canonical or lookups.headers[table].get(h)
    if canonical is not None:
        col = tbl[canonical]
        return Target("pii" if col.pii and canonical != "student_id" else "col", canonical)
    if h.endswith("(万元)") or h in _WAN_HEADERS:  # money in 万元: the 元 column, ×10,000
        base = h.removesuffix("(万元)")
        for cand in (base, base + "(元)"):
            c = lookups.headers[table].get(cand)
            if c is not None and tbl[c].unit == "元":
                return Target("col", c, scale=WAN)
        if h in _WAN_HEADERS and "equipment_value_yuan" in names:
            return Target("col", "equipment_value_yuan", scale=WAN)
    if table == "scores":
        m = re.fullmatch(r"pv_?(\d+)", h)
        if m and int(m.group(1)) >= 1:
            return Target("pv", f"pv{int(m.group(1))}")
    if table in ("students", "scores"):
        return _wide_target(h)
    return None


def _wide_target(h: str) -> Target | None:
    subjects = CODE_MAPS["subject"]
    m = re.fullmatch(r"(.+?)_?pv_?(\d+)", h)
    if m and m.group(1) in subjects and int(m.group(2)) >= 1:
        return Target("wide", f"pv{int(m.group(2))}", subject=subjects[m.group(1)])
    for fld, suffix in _WIDE_SUFFIX.items():
        m = re.fullmatch(rf"(.+?)_?(?:{suffix})", h)
        if m and m.group(1) in subjects:
            return Target("wide", fld, subject=subjects[m.group(1)])
    return None


def _score_header_row(cells: Iterable[Any], table: str, lookups: Lookups, file_aliases) -> int:
    seen = set()
    for c in cells:
        if c is None or (isinstance(c, float) and math.isnan(c)):
            continue
        t = header_target(table, c, lookups, file_aliases)
        if t is not None:
            seen.add((t.kind, t.column, t.subject))
    return len(seen)


def find_header_row(
    rows: list[list[Any]], table: str, lookups: Lookups, file_aliases, source: str, scan: int
) -> int:
    """Index (0-based) of the row among the first ``scan`` that matches the most known columns."""
    best, best_i = 0, -1
    for i, row in enumerate(rows[:scan]):
        s = _score_header_row(row, table, lookups, file_aliases)
        if s > best:
            best, best_i = s, i
    if best_i < 0:
        raise EqmError(
            f"在前 {scan} 行中找不到表头（没有任何一列能对应到「{schemas.INPUT_TABLES[table].label}」的列名）。",
            file=source,
            hint="请确认文件放在正确的文件夹中；如果表头在更靠下的行，请在 data/raw/sources.yaml 中为该文件"
            "设置 header_row（从 1 开始，与 Excel 行号一致）；文本文件如果分隔符识别有误，可设置 delimiter"
            "（comma、tab、semicolon 或 pipe）。",
        )
    return best_i


def _is_number_cell(c: Any) -> bool:
    t = _cell_text(c)
    if t is None:
        return False
    try:
        float(t.replace(",", ""))
    except ValueError:
        return False
    return True


def _merge_header_rows(
    upper: Sequence[Any], lower: Sequence[Any], table: str, lookups: Lookups, file_aliases
) -> list[str | None]:
    """One header from two header lines (a group line over a detail line, as 教育事业统计 tables
    and Excel merged cells give them).

    A group title merged across columns is stored in its first cell only, so it is carried right
    over the following columns that have a detail cell but no upper cell of their own. A column
    then takes the first of ``upper + lower``, ``lower + upper`` (成绩 over 数学 → 数学成绩),
    ``lower``, ``upper`` that is a known column name;
    an unknown column is named ``upper + lower`` (or whichever line has text), so repeated detail
    titles such as 合计 under different groups stay distinct.
    """
    width = max(len(upper), len(lower))
    up = [_cell_text(c) for c in upper] + [None] * (width - len(upper))
    lo = [_cell_text(c) for c in lower] + [None] * (width - len(lower))
    carried: str | None = None
    out: list[str | None] = []
    for u, low in zip(up, lo, strict=True):
        if u is not None:
            carried = u
        elif low is not None:
            u = carried
        else:
            carried = None
        joined = (u or "") + (low or "") or None
        reverse = low + u if (u and low) else None
        choices = [c for c in (joined, reverse, low, u) if c is not None]
        known = next(
            (c for c in choices if header_target(table, c, lookups, file_aliases) is not None),
            None,
        )
        out.append(known or joined)
    return out


# Units as statistical tables print them under a header: （人） （万元） 万元 单位：元 …
UNIT_WORDS = frozenset(
    [
        "人",
        "名",
        "个",
        "所",
        "间",
        "台",
        "套",
        "册",
        "元",
        "万元",
        "千元",
        "平方米",
        "m2",
        "㎡",
        "分钟",
        "小时",
        "h",
        "分",
        "%",
        "％",
        "岁",
        "班",
    ]
)
UNIT_LABELS = frozenset({"单位", "计量单位"})


def _unit_of(text: str) -> str | None:
    """The unit a header-line cell names (``（万元）``, ``万元``, ``单位：元``), else None."""
    t = unicodedata.normalize("NFKC", text).strip()
    t = re.sub(r"^(?:计量)?单位[:：]", "", t)
    m = re.fullmatch(r"[(\[【](.{1,6})[)\]】]", t)
    t = (m.group(1) if m else t).strip()
    return t if t in UNIT_WORDS else None


def _is_units_line(cells: Sequence[Any]) -> bool:
    """A line of units under the header, e.g. ``单位 （人） （万元）``: every filled cell is a unit
    (or the label 单位 / 计量单位), and at least one is a unit. A remark such as （无） or an
    accounting negative (1200) is not a unit, so a first data row is never taken for one."""
    texts = [t.strip() for t in (_cell_text(c) for c in cells) if t is not None]
    units = [t for t in texts if _unit_of(t) is not None]
    return bool(units) and all(t in UNIT_LABELS or _unit_of(t) is not None for t in texts)


def header_block(
    rows: Sequence[Sequence[Any]], idx: int, table: str, lookups: Lookups, file_aliases
) -> tuple[list[Any], int, int]:
    """The header cells and the first/last row index (0-based) of the header.

    Row ``idx`` alone, or merged (:func:`_merge_header_rows`) with the line above or below it when
    that matches strictly more known columns. A line holding a number is data, never a header
    line, so a first data row is not taken for a detail line. A units line right below the header
    (``（人） （万元）``, after a two-line header too) is always joined: it can change what a
    column means (万元 → × 10,000) without changing how many columns are known.
    """
    single = list(rows[idx])
    best = (_score_header_row(single, table, lookups, file_aliases), single, idx, idx)
    for top in (idx - 1, idx):
        low = top + 1
        if top < 0 or low >= len(rows):
            continue
        if any(_is_number_cell(c) for c in rows[low if top == idx else top]):
            continue
        cells = _merge_header_rows(rows[top], rows[low], table, lookups, file_aliases)
        score = _score_header_row(cells, table, lookups, file_aliases)
        if score > best[0]:
            best = (score, cells, top, low)
    _, cells, top, low = best
    if low + 1 < len(rows) and _is_units_line(rows[low + 1]):
        # each unit as "(unit)" so that 教学仪器设备值 + 万元 reads 教学仪器设备值(万元)
        units = [_unit_of(t) if t is not None else None for t in map(_cell_text, rows[low + 1])]
        units = [f"({u})" if u else None for u in units]
        cells = _merge_header_rows(cells, units, table, lookups, file_aliases)
        low += 1
    return cells, top, low


def locate_header(
    rows: Sequence[Sequence[Any]],
    table: str,
    lookups: Lookups,
    hint: FileHint,
    params: IngestParams,
    source: str,
    extent: str,
) -> tuple[list[Any], int, int]:
    """The header of a csv/xlsx sheet: the ``header_row`` of sources.yaml taken as one line, or
    found (:func:`find_header_row`, :func:`header_block`). ``extent`` names the sheet's size in the
    error for a ``header_row`` beyond it."""
    if hint.header_row:
        idx = hint.header_row - 1
        if idx >= len(rows):
            raise EqmError(
                f"sources.yaml 指定的表头行 {idx + 1} 超出了{extent}。",
                file=source,
                hint=_SOURCES_HINT,
            )
        return list(rows[idx]), idx, idx
    idx = find_header_row(rows, table, lookups, hint.aliases, source, params.header_scan_rows)
    return header_block(rows, idx, table, lookups, hint.aliases)


# ------------------------------------------------------------------------------------------------
# Readers (file access): raw cells + row numbers + manifest facts
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RawFile:
    """One source file as read: raw headers/values, the row number the user sees for each row."""

    table: str
    source: str  # path relative to data/raw, posix
    data: pd.DataFrame
    rows: np.ndarray  # int64, same length as data
    hint: FileHint = FileHint()
    meta: Mapping[str, Any] = field(default_factory=dict)


def _unique_headers(cells: list[Any]) -> list[str]:
    out, seen = [], {}
    for j, c in enumerate(cells):
        name = _cell_text(c) or f"第{j + 1}列"
        n = seen.get(name, 0)
        seen[name] = n + 1
        out.append(name if n == 0 else f"{name}#{n + 1}")
    return out


def _drop_duplicate_headers(
    frame: pd.DataFrame,
    cells: list[Any],
    numbers: np.ndarray,
    source: str,
    fmt: str,
    table: str,
    lookups: Lookups,
    hint: FileHint,
) -> pd.DataFrame:
    """A known header given twice: drop the later copy when it repeats the first (or is empty).

    Copies that differ anywhere are an error naming both positions (Excel letters for xlsx,
    1-based column numbers for csv), since either could be the right one.
    """
    names = _unique_headers(cells)
    first: dict[str, int] = {}
    drop = []
    for j, name in enumerate(names):
        base = _cell_text(cells[j]) if j < len(cells) else None
        if base is None or name == base:
            first.setdefault(name, j)
            continue
        if name not in frame.columns or base not in frame.columns:
            continue
        if header_target(table, base, lookups, hint.aliases) is None:
            continue
        a, b = as_text(frame[base]), as_text(frame[name])
        differ = (b.notna() & (a.isna() | (a != b))).to_numpy(dtype=bool)
        j0 = first[base]
        if fmt == "xlsx":
            from openpyxl.utils import get_column_letter

            pos = f"第 {get_column_letter(j0 + 1)} 列和第 {get_column_letter(j + 1)} 列"
        else:
            pos = f"第 {j0 + 1} 列和第 {j + 1} 列"
        if differ.any():
            i = int(np.argmax(differ))
            raise EqmError(
                f"表头「{base}」出现了两次（{pos}），两列的内容不一致，例如第 {numbers[i]} 行："
                f"「{a.iloc[i] or ''}」与「{b.iloc[i]}」。无法确定使用哪一列。",
                file=source,
                row=int(numbers[i]),
                column=base,
                hint="请核对这两列：删除错误或多余的一列；如果它们其实是不同的内容，请把其中一列改成"
                "正确的列名后重新运行。",
            )
        log.info("%s：表头「%s」出现了两次（%s），内容相同，已忽略后一列。", source, base, pos)
        drop.append(name)
    return frame.drop(columns=drop) if drop else frame


def _frame_from_rows(
    rows: list[tuple], header_idx: int, first_row_number: int, cells: list[Any] | None = None
) -> tuple[pd.DataFrame, np.ndarray]:
    """Rows below the header (last header line ``header_idx``; its ``cells`` when given, e.g. of a
    two-line header) → DataFrame (object) and their row numbers; blank rows dropped."""
    cells = list(rows[header_idx]) if cells is None else cells
    header = _unique_headers(cells)
    width = len(header)
    body = rows[header_idx + 1 :]
    frame = pd.DataFrame.from_records(
        [tuple(r[:width]) + (None,) * (width - len(r)) for r in body] if body else [],
        columns=range(width),
    ).astype(object)
    frame.columns = header
    numbers = np.arange(len(body), dtype=np.int64) + first_row_number
    empty = frame.apply(lambda c: as_text(c).isna()) if len(frame) else frame.isna()
    blank = empty.all(axis=1).to_numpy() if width else np.ones(len(body), dtype=bool)
    # columns without a header and without any value (Excel's formatted-but-empty columns)
    unnamed_empty = [
        c for j, c in enumerate(header) if _cell_text(cells[j]) is None and empty[c].all()
    ]
    frame = frame.loc[~blank, [c for c in header if c not in unnamed_empty]].reset_index(drop=True)
    return frame, numbers[~blank]


def _decode_csv(
    data: bytes, source: str, hint: FileHint, encodings: tuple[str, ...]
) -> tuple[str, str]:
    if hint.encoding:
        try:
            return data.decode(hint.encoding), hint.encoding
        except UnicodeDecodeError as exc:
            raise EqmError(
                f"无法按 sources.yaml 指定的编码「{hint.encoding}」读取（第 {exc.start} 字节处出错）。",
                file=source,
                hint="请删除 sources.yaml 中该文件的 encoding 让程序自动识别，或改为正确的编码（如 gbk、utf-8）。",
            ) from None
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return data.decode("utf-16"), "utf-16"
    if b"\x00" in data[:8192]:
        raise EqmError(
            "文件含二进制内容，不是文本 CSV，可能已损坏或扩展名有误。",
            file=source,
            hint="请用 Excel 打开确认内容，另存为「CSV UTF-8」或 .xlsx 后重新放入。",
        )
    for enc in encodings:
        try:
            text = data.decode(enc)
        except (UnicodeDecodeError, LookupError):
            continue
        name = codecs.lookup(enc).name
        if name == "utf-8-sig":
            return text, "utf-8-sig" if data.startswith(codecs.BOM_UTF8) else "utf-8"
        if name == "gb18030":
            try:
                data.decode("gbk")
                return text, "gbk"
            except UnicodeDecodeError:
                return text, "gb18030"
        return text, name
    raise EqmError(
        f"无法识别文件编码（已尝试 {'、'.join(encodings)}）。",
        file=source,
        hint="请用 Excel 或记事本另存为「UTF-8」编码，或在 data/raw/sources.yaml 中为该文件设置 encoding。",
    )


def detect_delimiter(text: str, scan_rows: int) -> str:
    """The field separator of a delimited text file: the candidate of :data:`DELIMITERS` under
    which the first ``scan_rows`` non-blank lines form the largest consistent table, scored as
    (lines split into the modal number ≥ 2 of fields) × (that number of fields).

    Title lines above the header split into one field under most candidates; a separator that also
    occurs inside values (a ``;`` in a remark of a comma file, commas in a title above a tab table)
    splits only a few lines, or into few fields, and loses to the one that splits every row into
    the table's columns. Ties go to the earlier candidate (comma first). A single-column file is
    read as comma-separated.
    """
    lines = [ln for ln in islice(io.StringIO(text), scan_rows * 4) if ln.strip()][:scan_rows]
    best, best_score = ",", 0
    for d in DELIMITERS:
        try:
            widths = [len(r) for r in csv.reader(lines, delimiter=d)]
        except csv.Error:
            continue
        multi = [w for w in widths if w >= 2]
        if not multi:
            continue
        modal = max(set(multi), key=lambda w: (multi.count(w) * w, w))
        score = multi.count(modal) * modal
        if score > best_score:
            best, best_score = d, score
    return best


def _parse_csv_body(
    text: str, idx: int, source: str, sep: str = ",", header_lines: int = 1
) -> pd.DataFrame:
    """All cells as text from the header line (0-based ``idx``) on; blank lines kept for numbering.

    Rows longer than the header (e.g. trailing commas) are accepted when the extra fields are
    empty; a value in a column without a header is an error naming the line.
    """
    opts = {"header": None, "skiprows": idx, "dtype": str, "keep_default_na": False, "sep": sep}
    try:
        return pd.read_csv(io.StringIO(text), skip_blank_lines=False, **opts)
    except (pd.errors.ParserError, ValueError):
        pass
    rows = csv.reader(io.StringIO(text), delimiter=sep)
    width = max((len(r) for r in islice(rows, idx, None)), default=0)
    frame = pd.read_csv(io.StringIO(text), skip_blank_lines=False, names=range(width), **opts)
    n_header = max(
        (
            int(frame.iloc[i].replace("", np.nan).last_valid_index() or 0) + 1
            for i in range(min(header_lines, len(frame)))
        ),
        default=0,
    )
    extra = frame.iloc[header_lines:, n_header:]
    filled = extra.apply(lambda c: as_text(c).notna()).any(axis=1).to_numpy() if extra.size else []
    if len(filled) and filled.any():
        name = DELIMITERS[sep]
        raise EqmError(
            f"文本格式错误：该行的字段数比表头多（可能有未加引号的{name}），多出的值没有对应的列名。",
            file=source,
            row=idx + header_lines + 1 + int(np.argmax(filled)),
            hint=f"请用 Excel 打开检查该行（含{name}的内容需用英文双引号括起来）后另存为 CSV。",
        )
    return frame.iloc[:, :n_header]


def read_csv(
    path: Path, source: str, table: str, hint: FileHint, params: IngestParams, lookups: Lookups
) -> RawFile:
    data = path.read_bytes()
    text, encoding = _decode_csv(data, source, hint, params.encodings)
    if not text.strip():
        raise EqmError(
            "文件是空的。", file=source, hint="请放入含表头和数据的文件，或删除该空文件。"
        )
    scan = max(params.header_scan_rows, hint.header_row or 0)
    sep = hint.delimiter or detect_delimiter(text, scan)
    try:
        head = list(islice(csv.reader(io.StringIO(text), delimiter=sep), scan))
    except csv.Error as exc:
        raise EqmError(
            f"CSV 格式错误：{exc}", file=source, hint="请用 Excel 打开检查后另存为 CSV。"
        ) from None
    cells, top, low = locate_header(head, table, lookups, hint, params, source, "文件的行数")
    lines = low - top + 1
    frame = _parse_csv_body(text, top, source, sep, lines)
    width = frame.shape[1]
    cells = (list(cells) + [None] * width)[:width]
    header = _unique_headers(cells) if len(frame) else []
    body = frame.iloc[lines:].reset_index(drop=True)
    body.columns = header
    numbers = np.arange(len(body), dtype=np.int64) + low + 2
    if len(body):
        blank = body.apply(lambda c: as_text(c).isna()).all(axis=1).to_numpy()
        body = body.loc[~blank].reset_index(drop=True)
        numbers = numbers[~blank]
    if len(frame):
        body = _drop_duplicate_headers(body, cells, numbers, source, "csv", table, lookups, hint)
    meta = {
        "format": "csv",
        "encoding": encoding,
        "delimiter": DELIMITER_LABELS[sep],
        "header_row": top + 1,
        "header_rows": lines,
        "sheet": None,
    }
    return RawFile(table, source, body, numbers, hint, meta)


def read_xlsx(
    path: Path, source: str, table: str, hint: FileHint, params: IngestParams, lookups: Lookups
) -> RawFile:
    import openpyxl
    from openpyxl.utils.exceptions import InvalidFileException

    try:
        wb = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except (
        zipfile.BadZipFile,
        InvalidFileException,
        KeyError,
        OSError,
        ValueError,
        TypeError,
    ) as exc:
        raise EqmError(
            f"无法打开 Excel 文件（{type(exc).__name__}），文件可能已损坏或并非 .xlsx 格式。",
            file=source,
            hint="请用 Excel 打开该文件确认能正常显示，再「另存为」Excel 工作簿（.xlsx）后重新放入；"
            ".xls 旧格式也需要另存为 .xlsx。",
        ) from None
    try:
        names = wb.sheetnames
        if hint.sheet is None:
            sheet = names[0]
        elif isinstance(hint.sheet, int):
            if not 1 <= hint.sheet <= len(names):
                raise EqmError(
                    f"sources.yaml 指定第 {hint.sheet} 个工作表，但文件只有 {len(names)} 个：{'、'.join(names)}。",
                    file=source,
                    hint=_SOURCES_HINT,
                )
            sheet = names[hint.sheet - 1]
        else:
            if hint.sheet not in names:
                raise EqmError(
                    f"找不到 sources.yaml 指定的工作表「{hint.sheet}」；文件中的工作表：{'、'.join(names)}。",
                    file=source,
                    hint="请修改 sources.yaml 中该文件的 sheet。",
                )
            sheet = hint.sheet
        rows = [tuple(r) for r in wb[sheet].iter_rows(values_only=True)]
    except (zipfile.BadZipFile, KeyError, OSError, ValueError) as exc:
        raise EqmError(
            f"读取 Excel 工作表时出错（{type(exc).__name__}），文件可能已损坏。",
            file=source,
            hint="请用 Excel 打开后另存为 .xlsx 再试。",
        ) from None
    finally:
        wb.close()
    if not rows:
        raise EqmError(
            f"工作表「{sheet}」是空的。",
            file=source,
            hint="请确认数据在第一个工作表，或在 sources.yaml 中指定 sheet。",
        )
    cells, top, low = locate_header(
        [list(r) for r in rows], table, lookups, hint, params, source, f"工作表的行数 {len(rows)}"
    )
    frame, numbers = _frame_from_rows(rows, low, low + 2, cells)
    frame = _drop_duplicate_headers(frame, cells, numbers, source, "xlsx", table, lookups, hint)
    meta = {
        "format": "xlsx",
        "encoding": None,
        "delimiter": None,
        "header_row": top + 1,
        "header_rows": low - top + 1,
        "sheet": sheet,
    }
    return RawFile(table, source, frame, numbers, hint, meta)


def _named_by_label(
    frame: pd.DataFrame, labels: list[str | None], table: str, lookups: Lookups, hint: FileHint
) -> pd.DataFrame:
    """SPSS/parquet: a column whose name is unknown but whose variable label is known takes the label."""
    rename = {}
    for col, label in zip(frame.columns, labels, strict=False):
        if (
            label
            and header_target(table, col, lookups, hint.aliases) is None
            and header_target(table, label, lookups, hint.aliases) is not None
        ):
            rename[col] = label
    return frame.rename(columns=rename)


def read_sav(
    path: Path, source: str, table: str, hint: FileHint, params: IngestParams, lookups: Lookups
) -> RawFile:
    import pyreadstat

    try:
        frame, meta = pyreadstat.read_sav(str(path), apply_value_formats=True)
    except Exception as exc:  # noqa: BLE001 - pyreadstat raises several private types
        raise EqmError(
            f"无法读取 SPSS 文件（{type(exc).__name__}），文件可能已损坏或不是 .sav 格式。",
            file=source,
            hint="请在 SPSS 中打开该文件确认无误后重新保存为 .sav；或导出为 .xlsx / .csv 后放入。",
        ) from None
    frame = frame.astype(
        {c: object for c in frame.columns if isinstance(frame[c].dtype, pd.CategoricalDtype)}
    )
    frame = _named_by_label(frame, list(meta.column_labels or []), table, lookups, hint)
    numbers = np.arange(1, len(frame) + 1, dtype=np.int64)
    info = {
        "format": "sav",
        "encoding": meta.file_encoding,
        "delimiter": None,
        "header_row": None,
        "header_rows": None,
        "sheet": None,
    }
    return RawFile(table, source, frame.reset_index(drop=True), numbers, hint, info)


def read_parquet_raw(
    path: Path, source: str, table: str, hint: FileHint, params: IngestParams, lookups: Lookups
) -> RawFile:
    try:
        frame = pd.read_parquet(path)
    except Exception as exc:  # noqa: BLE001 - pyarrow raises many types for a bad file
        raise EqmError(
            f"无法读取 parquet 文件（{type(exc).__name__}），文件可能已损坏。",
            file=source,
            hint="请重新导出该文件，或改用 .xlsx / .csv。",
        ) from None
    frame = frame.reset_index(drop=True)
    frame.columns = _unique_headers(list(frame.columns))
    numbers = np.arange(1, len(frame) + 1, dtype=np.int64)
    info = {
        "format": "parquet",
        "encoding": None,
        "delimiter": None,
        "header_row": None,
        "header_rows": None,
        "sheet": None,
    }
    return RawFile(table, source, frame, numbers, hint, info)


READERS = {"csv": read_csv, "xlsx": read_xlsx, "sav": read_sav, "parquet": read_parquet_raw}


def discover(raw: Path) -> list[tuple[str, Path]]:
    """(table, file) for every data file under ``raw/<table>/``, sorted; unknown formats are errors."""
    if not raw.is_dir():
        raise EqmError(
            f"找不到原始数据目录 {raw}。",
            hint="请把数据文件放到 data/raw/<表名>/ 下（students、scores、schools、county_reports、"
            "previous_problems），或先运行 eqm demo-data 生成演示数据。",
        )
    found: list[tuple[str, Path]] = []
    for entry in sorted(raw.iterdir()):
        if entry.name.startswith(".") or entry.name.startswith("README"):
            continue
        if entry.is_file():
            if entry.name not in TOP_LEVEL_IGNORED:
                log.warning(
                    "data/raw/%s 不在任何表文件夹中，已忽略（请放入 %s 之一）",
                    entry.name,
                    "、".join(RAW_TABLES),
                )
            continue
        if entry.name in OTHER_STAGE_FOLDERS:  # read by a later stage, not a table of ingest
            continue
        if entry.name not in RAW_TABLES:
            log.warning(
                "data/raw/%s/ 不是已知的表文件夹，已忽略（已知：%s）",
                entry.name,
                "、".join(RAW_TABLES),
            )
            continue
        for f in sorted(p for p in entry.rglob("*") if p.is_file()):
            rel = f.relative_to(raw)
            if any(part.startswith(".") for part in rel.parts) or f.name.startswith(
                ("README", "~$")
            ):
                continue
            if f.suffix.lower() not in FORMATS:
                raise EqmError(
                    f"不支持的文件格式「{f.suffix or '（无扩展名）'}」。可接受的格式：{ACCEPTED_FORMATS}。",
                    file=rel.as_posix(),
                    hint="请另存为 .xlsx 或 CSV（UTF-8）后放入；不是数据的文件请移出 data/raw/。",
                )
            found.append((entry.name, f))
    tables = {t for t, _ in found}
    if not found:
        raise EqmError(
            f"原始数据目录 {raw} 中没有任何数据文件。",
            hint="请把数据文件放到 data/raw/<表名>/ 下（students、scores、schools、county_reports、"
            "previous_problems），或先运行 eqm demo-data 生成演示数据。",
        )
    if not tables & {"students", "schools", "county_reports"}:
        raise EqmError(
            "data/raw/ 中既没有学生数据（students/）、学校数据（schools/），也没有区县报告汇总数据"
            "（county_reports/），无法计算任何指标。",
            hint="请把学生监测数据放到 data/raw/students/，学校办学条件数据放到 data/raw/schools/。",
        )
    return found


# ------------------------------------------------------------------------------------------------
# Pure core: one raw file -> canonical rows + quarantine
# ------------------------------------------------------------------------------------------------


@dataclass
class FileResult:
    table: str
    source: str
    frame: pd.DataFrame  # canonical rows kept (schools: after the split)
    scores: pd.DataFrame | None  # scores melted from wide columns
    quarantine: pd.DataFrame
    manifest: dict[str, Any]


class _Fails:
    """Per-row parse failures collected column by column (vectorised)."""

    def __init__(self, n: int) -> None:
        self.bad = np.zeros(n, dtype=bool)
        self.column = np.full(n, None, dtype=object)
        self.rule = np.full(n, None, dtype=object)
        self.message = np.full(n, "", dtype=object)

    def add(
        self,
        mask: np.ndarray,
        column: str,
        rule: str,
        template: str,
        values: pd.Series | None = None,
    ) -> None:
        """Record failures; ``template``'s ``{}`` is replaced by each row's quoted raw value."""
        mask = np.asarray(mask, dtype=bool)
        if not mask.any():
            return
        if values is None:
            msg = np.full(len(mask), template, dtype=object)
        else:  # built only when some row failed
            before, _, after = template.partition("{}")
            msg = (before + _quote(as_text(values)) + after).to_numpy(dtype=object)
        new = mask & ~self.bad
        self.column[new] = column
        self.rule[new] = rule
        prev = self.message[mask]
        self.message[mask] = np.where(prev == "", msg[mask], prev + "；" + msg[mask])
        self.bad |= mask


def _quote(text: pd.Series) -> pd.Series:
    return "「" + text.fillna("").astype(str) + "」"


def _missing_column_error(
    col: schemas.Column, source: str, header: list[str], extra: str = ""
) -> EqmError:
    aliases = "、".join(dict.fromkeys((*col.aliases, col.name)))
    shown = "、".join(header[:12]) + ("…" if len(header) > 12 else "")
    return EqmError(
        f"缺少必需的列「{col.label}」（{col.name}）{extra}。可接受的列名：{aliases}。文件中的列：{shown}。",
        file=source,
        column=col.label,
        hint=f"请检查表头拼写；如果该列用了别的名称，可在 data/raw/sources.yaml 的 aliases 中添加"
        f"「你的列名: {col.name}」。",
    )


def normalise_file(raw: RawFile, lookups: Lookups, params: IngestParams, salt: str) -> FileResult:
    """Canonical rows and quarantine for one raw file (pure: no file access)."""
    # a semicolon-separated file comes from a decimal-comma locale: 12,5 means 12.5
    decimal_comma = raw.meta.get("delimiter") == "semicolon"
    table, source, hint = raw.table, raw.source, raw.hint
    tbl = schemas.INPUT_TABLES[table]
    data = raw.data
    n = len(data)
    headers = [str(c) for c in data.columns]

    # --- map headers ---------------------------------------------------------------------------
    cols: dict[str, tuple[str, float]] = {}  # canonical -> (raw header, scale)
    wide: dict[tuple[str, str], str] = {}  # (subject, field) -> raw header
    pvs: dict[str, str] = {}  # pvK -> raw header
    pii, unknown = [], []
    for h in headers:
        t = header_target(table, h, lookups, hint.aliases)
        if t is None:
            unknown.append(h)
            continue
        if t.kind == "pii":
            pii.append(h)
            continue
        key, store = (
            (t.column, cols)
            if t.kind == "col"
            else ((t.subject, t.column), wide)
            if t.kind == "wide"
            else (t.column, pvs)
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
    if table == "scores" and "subject" in cols:
        # long form: score-like extra columns are not melted
        unknown += list(wide.values())
        wide = {}
    if unknown:
        log.info("%s：以下列不是已知的列，已忽略：%s", source, "、".join(unknown))
    if pii:
        log.info("%s：已删除个人信息列 %s", source, "、".join(pii))

    # --- required columns ----------------------------------------------------------------------
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

    # --- parse values --------------------------------------------------------------------------
    fails = _Fails(n)
    out: dict[str, pd.Series] = {}
    index = pd.RangeIndex(n)

    def raw_col(h: str) -> pd.Series:
        return data[h].reset_index(drop=True)

    for c in tbl.columns:
        if c.name not in cols or c.name in ("county_code", "county_name"):
            continue
        h, scale = cols[c.name]
        s = raw_col(h)
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
        out[c.name] = val.reset_index(drop=True)

    for k, h in sorted(pvs.items()):
        val, bad = _to_number(raw_col(h), decimal_comma)
        fails.add(bad, h, "ingest.not_a_number", f"{k}{{}}不是数字", raw_col(h))
        out[k] = val
    # wide score cells: a bad cell sets aside that subject's score of the row, not the student row
    wide_vals: dict[tuple[str, str], pd.Series] = {}
    cell_fails: dict[str, _Fails] = {}
    for (subj, fld), h in sorted(wide.items()):
        s = raw_col(h)
        sf = cell_fails.setdefault(subj, _Fails(n))
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

    # year from the file hint where the column is missing or empty
    if "year" in tbl.names:
        year = out.get("year", pd.Series(np.nan, index=index, dtype="float64"))
        if hint.year is not None:
            year = year.fillna(float(hint.year))
        out["year"] = year
        fails.add(
            year.isna().to_numpy() & ~fails.bad,
            cols.get("year", ("监测年份",))[0],
            "ingest.missing_value",
            "缺少监测年份",
        )
    if table in ("students", "county_reports") and "grade" in out:
        g = out["grade"]
        fails.add(
            g.isna().to_numpy() & ~fails.bad, cols["grade"][0], "ingest.missing_value", "缺少年级"
        )

    # county: code column, else name column, else file hint
    if "county_code" in tbl.names:
        code_h = cols.get("county_code", (None,))[0]
        name_h = cols.get("county_name", (None,))[0]
        code_t = as_text(raw_col(code_h)) if code_h else pd.Series(None, index=index, dtype=object)
        name_t = as_text(raw_col(name_h)) if name_h else pd.Series(None, index=index, dtype=object)
        county_map = lookups.counties

        def resolve(u: str) -> str | None:
            u = unicodedata.normalize("NFKC", u)
            if re.fullmatch(r"[0-9]{6}", u):
                return u
            return county_map.get(_norm_county(u))

        from_code = _map_unique(code_t, resolve)
        from_name = _map_unique(name_t, resolve)
        bad_code = code_t.notna().to_numpy() & from_code.isna().to_numpy()
        bad_name = (
            code_t.isna().to_numpy() & name_t.notna().to_numpy() & from_name.isna().to_numpy()
        )
        hint_msg = "无法对应到区县代码；请核对名称，或在 params.yaml 的 monitoring.counties / county_aliases 中补充"
        if code_h:
            fails.add(bad_code, code_h, "ingest.unknown_county", f"区县代码{{}}{hint_msg}", code_t)
        if name_h:
            fails.add(bad_name, name_h, "ingest.unknown_county", f"区县{{}}{hint_msg}", name_t)
        county = from_code.where(from_code.notna(), from_name)
        if hint.county_code:
            county = county.where(
                county.notna() | code_t.notna() | name_t.notna(), hint.county_code
            )
        out["county_code"] = county
        official = county.map(dict(lookups.county_names))
        out["county_name"] = official.where(official.notna(), name_t)

    # 一贯制 rows need the enrolment of every section to be split
    if table == "schools" and "stage" in out:
        stage = out["stage"]
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
                cols["stage"][0],
                "ingest.split_enrollment",
                f"{SPLIT_FORMS.get(form, form)}学校需要填写{need}（不能全为 0）才能按学段拆分",
            )

    if table == "schools":  # 学校类别 defaults to 普通 (regular) when absent or blank
        st = out.get("school_type", pd.Series(None, index=index, dtype=object))
        out["school_type"] = st.where(st.notna(), "regular")
    if "student_id" in out:
        out["student_id"] = pseudonymise(out["student_id"], salt)

    # --- quarantine ----------------------------------------------------------------------------
    bad = fails.bad
    source_rows = np.asarray(raw.rows, dtype=np.int64)
    if n and bad.all():
        pairs = set(zip(fails.rule.tolist(), fails.column.tolist(), strict=True))
        if len(pairs) == 1:
            rule, column = pairs.pop()
            raise EqmError(
                f"全部 {n} 行的该列都无法解析，例如第 {source_rows[0]} 行：{fails.message[0]}。",
                file=source,
                column=column,
                hint="这通常说明文件放错了文件夹、列对应错了或代码表不全：请核对该列；区县名称可在 params.yaml "
                "的 monitoring.county_aliases 中补充，列名可在 data/raw/sources.yaml 的 aliases 中指定。",
            )
    # a student row set aside anyway also reports its bad score cells; a kept row's bad score
    # cells become quarantine records of their own (table scores) and that subject is not melted
    cell_q = []
    for subj, sf in sorted(cell_fails.items()):
        both = bad & sf.bad
        if both.any():
            fails.message[both] = fails.message[both] + "；" + sf.message[both]
        only = sf.bad & ~bad
        if only.any():
            heads = [h for (s_, _), h in sorted(wide.items()) if s_ == subj]
            cell_q.append(_quarantine_cells(raw, only, sf, out, cols, heads))
            for k in [k for k in wide_vals if k[0] == subj]:
                wide_vals[k] = wide_vals[k].mask(only)
    quarantine = _quarantine_rows(raw, bad, fails, out, cols, wide, pvs)
    cells_quarantined = sum(len(c) for c in cell_q)
    if cell_q:
        quarantine = pd.concat([quarantine, *cell_q], ignore_index=True)

    # --- canonical frame -----------------------------------------------------------------------
    keep = ~bad
    frame = (
        pd.DataFrame({k: v for k, v in out.items()}, index=index).loc[keep].reset_index(drop=True)
    )
    frame["source_file"] = source
    frame["source_row"] = source_rows[keep]
    melted = None
    if wide:
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
    kept = int(keep.sum())
    manifest = dict(raw.meta)
    manifest.update(
        table=table,
        rows_read=n + cells_quarantined,
        rows_kept=kept,
        rows_quarantined=int(bad.sum()) + cells_quarantined,
        data_rows=n,
        data_rows_quarantined=int(bad.sum()),
        score_cells_quarantined=cells_quarantined,
        rows_written=len(frame),
        columns={h: c for c, (h, _) in sorted(cols.items())},
        ignored_columns=unknown,
        dropped_pii_columns=len(pii),
    )
    if melted is not None:
        manifest["score_rows_from_wide_columns"] = len(melted)
    if manifest["rows_read"] != manifest["rows_kept"] + manifest["rows_quarantined"]:
        raise AssertionError(f"ingest bookkeeping broken for {source}: {manifest}")
    return FileResult(table, source, frame, melted, quarantine, manifest)


def _quarantine_rows(raw, bad, fails, out, cols, wide, pvs) -> pd.DataFrame:
    if not bad.any():
        return empty_quarantine()
    shown = (
        [h for c, (h, _) in cols.items() if c != "student_id"]
        + list(wide.values())
        + list(pvs.values())
    )
    sub = raw.data.reset_index(drop=True).loc[bad, [h for h in raw.data.columns if h in set(shown)]]
    texts = {h: as_text(sub[h]).tolist() for h in sub.columns}
    if "student_id" in cols:
        texts[cols["student_id"][0]] = [v for v in out["student_id"][bad].tolist()]
    keys = sorted(texts)
    records = [
        json.dumps({k: texts[k][i] for k in keys}, ensure_ascii=False, sort_keys=True)
        for i in range(int(bad.sum()))
    ]
    year = out["year"][bad] if "year" in out else pd.Series(np.nan, index=range(int(bad.sum())))
    county = (
        out["county_code"][bad]
        if "county_code" in out
        else pd.Series(None, index=year.index, dtype=object)
    )
    return pd.DataFrame(
        {
            "table": raw.table,
            "source_file": raw.source,
            "source_row": np.asarray(raw.rows, dtype=np.int64)[bad],
            "column": fails.column[bad],
            "rule": fails.rule[bad],
            "message": fails.message[bad],
            "raw_values": records,
            "stage": "ingest",
            "county_code": county.to_numpy(dtype=object),
            "year": pd.array(year.to_numpy(dtype=float), dtype="Float64").astype("Int64"),
        }
    )


def _quarantine_cells(raw, mask, sf, out, cols, heads) -> pd.DataFrame:
    """Quarantine records for one subject's wide score cells of kept student rows (table scores)."""
    m = int(mask.sum())
    data = raw.data.reset_index(drop=True)
    texts = {h: as_text(data.loc[mask, h]).tolist() for h in heads}
    if "student_id" in cols:
        texts[cols["student_id"][0]] = out["student_id"][mask].tolist()
    keys = sorted(texts)
    records = [
        json.dumps({k: texts[k][i] for k in keys}, ensure_ascii=False, sort_keys=True)
        for i in range(m)
    ]
    year = out["year"][mask] if "year" in out else pd.Series(np.nan, index=range(m))
    county = out["county_code"][mask] if "county_code" in out else pd.Series([None] * m)
    return pd.DataFrame(
        {
            "table": "scores",
            "source_file": raw.source,
            "source_row": np.asarray(raw.rows, dtype=np.int64)[mask],
            "column": sf.column[mask],
            "rule": sf.rule[mask],
            "message": sf.message[mask] + "（该生其他数据已保留，仅该科成绩被隔离）",
            "raw_values": records,
            "stage": "ingest",
            "county_code": county.to_numpy(dtype=object),
            "year": pd.array(year.to_numpy(dtype=float), dtype="Float64").astype("Int64"),
        }
    )


def empty_quarantine() -> pd.DataFrame:
    return _finalise_quarantine(pd.DataFrame({c: [] for c in schemas.QUARANTINE.names}))


def melt_wide(frame: pd.DataFrame, wide_vals: Mapping[tuple[str, str], pd.Series]) -> pd.DataFrame:
    """Wide score columns (one per subject × field) → long scores rows (pure).

    A subject's row is kept when any of its values is present (a blank column = not tested).
    """
    parts = []
    for subj in sorted({s for s, _ in wide_vals}):
        fields = {f: v for (s, f), v in wide_vals.items() if s == subj}
        part = pd.DataFrame(
            {
                "year": frame["year"].to_numpy(),
                "student_id": frame["student_id"].to_numpy(dtype=object),
                "subject": subj,
                **{f: v.to_numpy() for f, v in fields.items()},
                "source_file": frame["source_file"].to_numpy(dtype=object),
                "source_row": frame["source_row"].to_numpy(),
            }
        )
        part = part.loc[pd.DataFrame(fields).notna().any(axis=1).to_numpy()]
        parts.append(part)
    if not parts:
        return pd.DataFrame(columns=["year", "student_id", "subject", "source_file", "source_row"])
    return pd.concat(parts, ignore_index=True)


def split_schools(
    frame: pd.DataFrame, split_weights: Mapping[str, Mapping[str, float]]
) -> pd.DataFrame:
    """Split 一贯制 rows into their compulsory sections (pure, vectorised per form).

    Section ``s`` of a school with enrolments ``E`` gets ``w_s·E_s / Σ_t w_t·E_t`` of every
    whole-school resource quantity (``schemas.RESOURCE_QUANTITIES``) and ``enrollment = E_s``;
    weights from ``ingest.split_weights`` (domain.md: 九年一贯制 primary share A/(A + 1.1·B);
    完全中学 junior : senior = 1 : 1.2; 十二年一贯制 1 : 1.1 : 1.32). Only primary and junior sections
    are kept. Single-section rows keep ``enrollment`` (falling back to that section's enrolment
    column) and get ``source_stage = stage``. Rows reaching here have every enrolment needed.
    """
    frame = frame.copy()
    for c in ("stage", "enrollment", *SECTION_ENROLLMENT.values(), *schemas.RESOURCE_QUANTITIES):
        if c not in frame:
            frame[c] = np.nan if c != "stage" else None
    stage = frame["stage"]
    plain = ~stage.isin(list(split_weights)).to_numpy()
    single = frame.loc[plain].copy()
    single["source_stage"] = single["stage"]
    for sec in COMPULSORY_STAGES:
        m = (single["stage"] == sec).to_numpy()
        single.loc[m, "enrollment"] = single.loc[m, "enrollment"].fillna(
            single.loc[m, SECTION_ENROLLMENT[sec]]
        )
    parts = [single]
    for form, weights in split_weights.items():
        rows = frame.loc[(stage == form).to_numpy()]
        if rows.empty:
            continue
        denom = sum(w * rows[SECTION_ENROLLMENT[s]].astype(float) for s, w in weights.items())
        for sec, w in weights.items():
            if sec not in COMPULSORY_STAGES:
                continue
            e = rows[SECTION_ENROLLMENT[sec]].astype(float)
            share = (w * e / denom).to_numpy()
            part = rows.copy()
            for q in schemas.RESOURCE_QUANTITIES:
                part[q] = part[q].astype(float).to_numpy() * share
            part["stage"] = sec
            part["enrollment"] = e.to_numpy()
            part["source_stage"] = form
            parts.append(part)
    return pd.concat(parts, ignore_index=True)


# ------------------------------------------------------------------------------------------------
# Pure core: all files -> canonical tables
# ------------------------------------------------------------------------------------------------

INT64_COLUMNS = {
    "students": {"year", "grade"},
    "scores": {"year"},
    "schools": {"year"},
    "county_reports": {"year", "grade"},
    "previous_problems": {"year"},
}


def output_columns(table: str, pv_count: int = 0) -> list[str]:
    tbl = schemas.INPUT_TABLES[table]
    cols = [c.name for c in tbl.columns if not c.pii or c.name == "student_id"]
    if table == "scores":
        cols = [
            "year",
            "student_id",
            "subject",
            "scale_score",
            *[f"pv{k}" for k in range(1, pv_count + 1)],
            "level",
        ]
    return cols + list(TRACE_COLUMNS)


def _finalise(df: pd.DataFrame, table: str, pv_count: int) -> pd.DataFrame:
    tbl = schemas.INPUT_TABLES[table]
    cols = output_columns(table, pv_count)
    df = df.reindex(columns=cols)
    res = {}
    for c in cols:
        s = df[c]
        if c == "source_row":
            res[c] = s.astype("int64")
        elif c == "source_file" or c.startswith("pv") and c not in tbl.names:
            res[c] = s.astype("str") if c == "source_file" else s.astype("float64")
        elif c in INT64_COLUMNS[table]:
            res[c] = s.astype("float64").astype("int64")
        else:
            dtype = tbl[c].dtype
            if dtype == "int":
                res[c] = pd.array(s.astype("float64"), dtype="Float64").astype("Int64")
            elif dtype == "float":
                res[c] = s.astype("float64")
            elif dtype == "bool":
                res[c] = s.astype("boolean")
            else:
                res[c] = s.astype("str")
    out = pd.DataFrame(res, columns=cols)
    key = [k for k in tbl.key if k in out] + list(TRACE_COLUMNS)
    return out.sort_values(key, kind="mergesort", na_position="last").reset_index(drop=True)


def _finalise_quarantine(df: pd.DataFrame) -> pd.DataFrame:
    res = {}
    for c in schemas.QUARANTINE.names:
        s = df[c] if c in df else pd.Series([None] * len(df), dtype=object)
        if c == "source_row":
            res[c] = s.astype("int64")
        elif c == "year":
            res[c] = (
                pd.array(s, dtype="Float64").astype("Int64")
                if len(s)
                else pd.array([], dtype="Int64")
            )
        else:
            res[c] = s.astype("str")
    out = pd.DataFrame(res, columns=schemas.QUARANTINE.names)
    return out.sort_values(["table", "source_file", "source_row"], kind="mergesort").reset_index(
        drop=True
    )


@dataclass
class IngestResult:
    tables: dict[str, pd.DataFrame]
    quarantine: pd.DataFrame
    manifest: dict[str, Any]


def ingest_frames(
    raws: Iterable[RawFile],
    lookups: Lookups,
    params: IngestParams,
    salt: str,
    dataset: Mapping[str, Any] | None = None,
    progress: Callable[[int], None] | None = None,
) -> IngestResult:
    """Pure core: raw files → canonical tables, quarantine and manifest."""
    results = []
    for raw in raws:
        results.append(normalise_file(raw, lookups, params, salt))
        if progress:
            progress(1)
    return assemble(results, dataset or {})


def assemble(results: list[FileResult], dataset: Mapping[str, Any]) -> IngestResult:
    frames: dict[str, list[pd.DataFrame]] = {t: [] for t in RAW_TABLES}
    for r in results:
        if len(r.frame):
            frames[r.table].append(r.frame)
        if r.scores is not None and len(r.scores):
            frames["scores"].append(r.scores)
    pv_count = max(
        [int(c[2:]) for f in frames["scores"] for c in f.columns if re.fullmatch(r"pv\d+", c)]
        or [0]
    )
    tables = {}
    for t in RAW_TABLES:
        df = pd.concat(frames[t], ignore_index=True) if frames[t] else pd.DataFrame()
        tables[t] = _finalise(df, t, pv_count if t == "scores" else 0)
    q = [r.quarantine for r in results if len(r.quarantine)]
    quarantine = _finalise_quarantine(pd.concat(q, ignore_index=True)) if q else empty_quarantine()
    files = {r.source: r.manifest for r in results}
    for src, m in files.items():
        if m["rows_read"] != m["rows_kept"] + m["rows_quarantined"]:
            raise AssertionError(f"rows_read != rows_kept + rows_quarantined for {src}")
    manifest = {
        "dataset": dict(dataset),
        "files": files,
        "tables": {t: len(df) for t, df in tables.items()},
        "rows_quarantined": len(quarantine),
    }
    return IngestResult(tables, quarantine, manifest)


# ------------------------------------------------------------------------------------------------
# Shell
# ------------------------------------------------------------------------------------------------


def get_salt(params: IngestParams, salt_file: Path) -> str:
    """The pseudonymisation salt: env ``params.salt_env``, else ``salt_file`` (created once)."""
    env = os.environ.get(params.salt_env, "").strip()
    if env:
        return env
    if salt_file.is_file():
        salt = salt_file.read_text(encoding="utf-8").strip()
        if salt:
            return salt
    salt = secrets.token_hex(32)
    salt_file.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(salt_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(salt + "\n")
    log.warning(
        "已生成新的假名化盐值文件 %s（请妥善保管、不要提交到仓库；各轮次应使用同一盐值）", salt_file
    )
    return salt


def read_raw_file(
    table: str, path: Path, raw_dir: Path, sources: Sources, params: IngestParams, lookups: Lookups
) -> RawFile:
    rel = path.relative_to(raw_dir).as_posix()
    hint = sources.files.get(rel, FileHint())
    fmt = FORMATS[path.suffix.lower()]
    try:
        raw = READERS[fmt](path, rel, table, hint, params, lookups)
    except PermissionError:
        raise EqmError(
            "没有读取该文件的权限。", file=rel, hint="请检查文件权限，或关闭正在占用它的程序。"
        ) from None
    meta = dict(raw.meta)
    meta["sha256"] = hashlib.sha256(path.read_bytes()).hexdigest()
    return RawFile(raw.table, raw.source, raw.data, raw.rows, raw.hint, meta)


def run(ctx: RunContext) -> IngestResult:
    params = ctx.section(IngestParams, "ingest")
    paths = ctx.paths
    sources = load_sources(paths.sources_file)
    lookups = build_lookups(ctx.monitoring, sources.aliases)
    files = discover(paths.raw)
    listed = {p.relative_to(paths.raw).as_posix() for _, p in files}
    for rel in sorted(set(sources.files) - listed):
        log.warning("sources.yaml 中列出的文件 %s 不存在，已忽略", rel)
    salt = get_salt(params, paths.salt_file)
    with ctx.step("读取原始数据", len(files)) as advance:
        raws = []
        for table, path in files:
            raws.append(read_raw_file(table, path, paths.raw, sources, params, lookups))
            advance(1)
    result = ingest_frames(raws, lookups, params, salt, sources.dataset)
    for src, m in result.manifest["files"].items():
        log.info(
            "%s：读取 %d 行，保留 %d 行，隔离 %d 行（%s%s）",
            src, m["rows_read"], m["rows_kept"], m["rows_quarantined"], m["format"],
            f"，{m['encoding']}" if m.get("encoding") else "",
        )  # fmt: skip
    with outputs() as out:
        for t, df in result.tables.items():
            out.parquet(df, paths.ingested(t))
        out.parquet(result.quarantine, paths.ingest_quarantine)
        out.json(result.manifest, paths.ingest_manifest)
    log.info(
        "导入完成：%s；隔离 %d 行",
        "，".join(
            f"{schemas.INPUT_TABLES[t].label} {n} 行" for t, n in result.manifest["tables"].items()
        ),
        len(result.quarantine),
    )
    return result
