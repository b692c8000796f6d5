"""Header matching: raw header → canonical column (aliases, wide score columns, 万元), header location."""

from __future__ import annotations

import difflib
import math
import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import pipeline.schemas as schemas
from pipeline.config import MonitoringParams
from pipeline.errors import EqmError
from pipeline.ingest.sources import _SOURCES_HINT, FileHint, IngestParams
from pipeline.ingest.values import CODE_MAPS, _cell_text

WAN = 10_000.0  # 1 万元 = 10,000 元


def norm_header(h: Any) -> str:
    """NFKC (full-width → ASCII), no whitespace, case-folded: the key headers are compared by."""
    return re.sub(r"\s+", "", unicodedata.normalize("NFKC", str(h))).casefold()


_WAN_HEADERS = frozenset(norm_header(a) for a in schemas.EQUIPMENT_WAN_ALIASES)
_WIDE_SUFFIX = {
    "scale_score": r"量尺分数|量尺成绩|成绩|分数|scalescore|score",
    "level": r"学业水平|水平|等级|level",
}


# --- loose header matching ----------------------------------------------------------------------
# Statistical forms write the same column in many ways: 网络多媒体教室数(间), 教学仪器设备资产值【元】,
# 县级以上骨干教师数, 高于规定学历的专任教师数. A header that is no alias as written is compared once
# more by its loose key (:func:`loose_header`): brackets unified, a trailing unit in brackets taken
# off (it must suit the column's unit; 万元/千元 scale a 元 column), and the wordings below made one.
_BRACKETS = str.maketrans({"【": "(", "】": ")", "[": "(", "]": ")", "〔": "(", "〕": ")"})
_UNIT_SUFFIX = re.compile(r"(.+?)\((?:计量)?(?:单位:?)?([^()]{1,6})\)")
# column unit (schemas.Column.unit) -> unit written in a header -> factor to the column's unit
UNIT_FACTORS: Mapping[str, Mapping[str, float]] = {
    "元": {"元": 1.0, "万元": 10_000.0, "千元": 1_000.0},
    "平方米": {"平方米": 1.0, "m2": 1.0, "平米": 1.0},  # ㎡ and m² are m2 after NFKC
    "人": {"人": 1.0, "名": 1.0, "个": 1.0},
    "间": {"间": 1.0, "个": 1.0},
    "分钟": {"分钟": 1.0, "分": 1.0, "min": 1.0},
    "小时": {"小时": 1.0, "h": 1.0},
}
_HEADER_UNITS = frozenset(u for units in UNIT_FACTORS.values() for u in units)
_SYNONYMS = (
    (re.compile(r"县级以上"), "县级及以上"),
    (re.compile(r"^专任教师中"), ""),  # 专任教师中高于规定学历的教师数
    (re.compile(r"专任教师"), "教师"),
    (re.compile(r"(教师|生)人数"), r"\1数"),
    (re.compile(r"资产总值|资产值|总值"), "值"),  # 教学仪器设备资产值 / 总值
    (re.compile(r"建筑面积"), "面积"),
    (re.compile(r"数量"), "数"),
    (re.compile(r"[的、,·/]"), ""),
)


def loose_header(header: Any) -> tuple[str, str | None]:
    """The loose key of a header and the unit written in brackets at its end (None: no unit)."""
    t = norm_header(header).translate(_BRACKETS)
    unit = None
    m = _UNIT_SUFFIX.fullmatch(t)
    if m and m.group(2) in _HEADER_UNITS:
        t, unit = m.group(1), m.group(2)
    for pattern, repl in _SYNONYMS:
        t = pattern.sub(repl, t)
    return t, unit


# Words that make an unknown header of a schools file look like one of the 7 resource columns.
RESOURCE_WORDS: Mapping[str, tuple[str, ...]] = {
    "teachers_above_degree": ("学历",),
    "backbone_teachers": ("骨干",),
    "pe_art_teachers": ("体育艺术", "体艺", "音乐", "美术"),
    "teaching_aux_area_m2": ("辅助用房", "教辅用房"),
    "sports_area_m2": ("运动场", "体育场", "场馆"),
    "equipment_value_yuan": ("仪器", "设备值", "设备资产"),
    "multimedia_classrooms": ("多媒体",),
}


@dataclass(frozen=True)
class Lookups:
    headers: Mapping[str, Mapping[str, str]]  # table -> normalised alias -> canonical column
    counties: Mapping[str, str]  # normalised county name or code -> county_code
    county_names: Mapping[str, str]  # county_code -> official name
    # table -> loose key of an alias (loose_header) -> canonical column; ambiguous keys left out
    loose: Mapping[str, Mapping[str, str]] = field(default_factory=lambda: MappingProxyType({}))


def _norm_county(v: str) -> str:
    t = re.sub(r"\s+", "", unicodedata.normalize("NFKC", v))
    return re.sub(r"^(广西壮族自治区|广西)?(南宁市)?", "", t).casefold() or t.casefold()


def build_lookups(monitoring: MonitoringParams, aliases: Mapping[str, str]) -> Lookups:
    headers: dict[str, dict[str, str]] = {}
    loose: dict[str, Mapping[str, str]] = {}
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
        loose[name] = MappingProxyType(_loose_map(table, aliases))
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
        MappingProxyType(loose),
    )


def _loose_map(table: schemas.Table, aliases: Mapping[str, str]) -> dict[str, str]:
    """Loose key -> canonical column over every alias of ``table`` (and the user's aliases).

    A key two columns share is dropped (never guessed); so is a key of under two characters."""
    names = set(table.names)
    pairs = [(a, c.name) for c in table.columns for a in (c.name, c.label, *c.aliases)]
    pairs += [(a, c) for a, c in aliases.items() if c in names]
    found: dict[str, set[str]] = {}
    for a, c in pairs:
        key, _ = loose_header(a)
        if len(key) >= 2:
            found.setdefault(key, set()).add(c)
    return {k: next(iter(cs)) for k, cs in found.items() if len(cs) == 1}


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
        return Target("pii" if col.dropped else "col", canonical)
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
        wide = _wide_target(h)
        if wide is not None:
            return wide
    return _loose_target(tbl, header, lookups.loose.get(table, {}))


def _loose_target(tbl: schemas.Table, header: Any, loose: Mapping[str, str]) -> Target | None:
    """The column a header names by its loose key, when a unit it writes suits that column."""
    key, unit = loose_header(header)
    canonical = loose.get(key)
    if canonical is None:
        return None
    col = tbl[canonical]
    scale = 1.0
    if unit is not None:
        factors = UNIT_FACTORS.get(col.unit or "", {})
        if unit not in factors:
            return None
        scale = factors[unit]
    return Target("pii" if col.dropped else "col", canonical, scale=scale)


def resembled_column(table: str, header: Any, lookups: Lookups) -> str | None:
    """The canonical column an unknown header looks like, else None (for the warning that lists
    ignored columns; never used to read a column).

    It looks like one when an alias (of three or more characters, not plain ASCII) is part of it
    or it is part of an alias, when its wording is close to an alias (difflib ratio >= 0.8), or, in
    a schools file, when it holds a word of :data:`RESOURCE_WORDS` (学历, 骨干, 多媒体 …)."""
    key, _ = loose_header(header)
    if len(key) < 2:
        return None
    loose = lookups.loose.get(table, {})
    for a, c in loose.items():
        if len(a) >= 3 and not a.isascii() and (a in key or (len(key) >= 3 and key in a)):
            return c
    if table == "schools":
        for c, words in RESOURCE_WORDS.items():
            if any(w in key for w in words):
                return c
    close = difflib.get_close_matches(key, [a for a in loose if len(a) >= 4], n=1, cutoff=0.8)
    return loose[close[0]] if close else None


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
