"""Cell values: raw cell → text, number, year or code (vectorised per distinct value); pseudonyms."""

from __future__ import annotations

import datetime as dt
import hashlib
import math
import re
import unicodedata
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import pandas as pd

import pipeline.schemas as schemas

# Texts that mean "no value". Not Excel's #N/A: that is an error value (EXCEL_ERRORS), set aside.
_NA_TOKENS = frozenset({"na", "n/a", "nan", "null", "none", "-", "—", "--", "缺失"})
# Excel's error values, as an xlsx error cell (openpyxl gives the text) or a CSV cell shows them;
# LibreOffice writes Err:502 and the like. A cell holding one never had a value (ingest.error_value).
EXCEL_ERRORS = frozenset(
    {
        "#N/A", "#VALUE!", "#REF!", "#DIV/0!", "#NAME?", "#NUM!", "#NULL!", "#SPILL!", "#CALC!",
        "#GETTING_DATA", "#FIELD!", "#BLOCKED!", "#CONNECT!", "#BUSY!", "#UNKNOWN!",
    }
)  # fmt: skip
_LIBREOFFICE_ERROR = re.compile(r"ERR:\d{3}")
# Put by the xlsx reader in place of a formula cell whose result was never saved (openpyxl reads
# it as empty), so that the row is not taken for a blank one and the cell is set aside
# (ingest.formula_no_value); it is also what quarantine.raw_values shows for that cell.
FORMULA_NO_VALUE = "=（公式，无计算结果）"
# An ID-card number (18 digits, the last may be X; or the old 15 digits), alone or inside a text
# such as a 学籍号 G450107201001011234: masked wherever a cell value is shown (messages, raw_values).
_ID_NUMBER = re.compile(r"(?<![0-9])(?:[0-9]{17}[0-9Xx]|[0-9]{15})(?![0-9A-Za-z])")
ID_NUMBER_MASK = "（疑似身份证号，已隐去）"
# GB 11643-1999 公民身份号码: 6-digit area, birth date YYYYMMDD, 3-digit order, ISO 7064 MOD 11-2
# check character. Used to decide that a kept column holds an ID number (the row is set aside):
# the date and the check character make a school code or 统一社会信用代码 pass by chance rarely.
_ID18 = re.compile(r"[1-9][0-9]{5}(?P<date>(?:18|19|20)[0-9]{6})[0-9]{3}[0-9Xx]")
_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK = "10X98765432"


def is_id_number(u: Any) -> bool:
    """True for a valid 18-character 身份证号 (date and check character right), alone in the cell."""
    t = str(u).strip()
    m = _ID18.fullmatch(t)
    if m is None:
        return False
    try:
        dt.date.fromisoformat(f"{m['date'][:4]}-{m['date'][4:6]}-{m['date'][6:]}")
    except ValueError:
        return False
    total = sum(int(d) * w for d, w in zip(t[:17], _ID_WEIGHTS, strict=True))
    return _ID_CHECK[total % 11] == t[17].upper()


def mask_id_numbers(text: str) -> str:
    """``text`` with ID-number-like digits masked (headers, messages)."""
    return _ID_NUMBER.sub(ID_NUMBER_MASK, text)


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
    "education": _code_lookup(schemas.EDUCATION_CODES),
    # questionnaire items: the answer words and the numbers 1–4 (1.0 … 4.0 after _norm_code)
    "likert": _code_lookup({**schemas.LIKERT_CODES, **{str(k): k for k in range(1, 5)}}),
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
    "education": "研究生/本科/专科/高中及以下（或 硕士、大学本科、大专、中专 等）",
    "likert": "1–4 的整数，或作答文字（"
    + "，或 ".join("/".join(words) for words in schemas.LIKERT_ANSWERS.values())
    + "）",
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


def excel_error(u: Any) -> str | None:
    """The error value a raw cell holds (``#N/A``, ``#DIV/0!``, ``Err:502`` …), else None."""
    if not isinstance(u, str):
        return None
    e = unicodedata.normalize("NFKC", u).strip().upper()
    return e if e in EXCEL_ERRORS or _LIBREOFFICE_ERROR.fullmatch(e) else None


def error_cells(raw: pd.Series) -> pd.Series:
    """Per row the Excel error value of the cell (None for every other cell); vectorised."""
    if not (pd.api.types.is_object_dtype(raw.dtype) or pd.api.types.is_string_dtype(raw.dtype)):
        return pd.Series(None, index=raw.index, dtype=object)
    return _map_unique(raw, excel_error)


# A value longer than this, or holding a line break, is not shown: it is no single cell's value but
# several lines run together (a stray quote in a CSV file), which may carry other rows' ids and names.
SHOWN_MAX_CHARS = 80


def _shown_one(u: Any) -> str:
    t = mask_id_numbers(str(u))
    if len(t) > SHOWN_MAX_CHARS or "\n" in t or "\r" in t:
        return f"（含换行或过长的内容，共 {len(t)} 个字符，已略去）"
    return t


def shown_text(text: pd.Series) -> pd.Series:
    """Texts as a message or ``raw_values`` may show them: ID-number-like digits masked, values
    that are several lines run together elided (missing stays None); once per distinct value."""
    return _map_unique(text, _shown_one)
