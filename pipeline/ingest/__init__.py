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
   parentheses and digits become ASCII), removal of whitespace and case-folding; a header that is
   no alias as written is compared once more loosely (a unit in brackets that suits the column,
   【】, 县级以上, 专任教师, 资产值 …: :func:`pipeline.ingest.headers.loose_header`). Wide score columns
   (``数学成绩``, ``math_score``, ``math_pv1``, ``科学水平`` …) are recognised and later melted into the
   long ``scores`` table; ``…(万元)`` money headers are converted to yuan (×10,000). An ignored
   column that looks like a known one is a WARNING; a schools file with some but not all of the 7
   resource columns is an error (:mod:`pipeline.ingest.normalise`).
3. **Parse values** vectorised: numbers, years, code lists (性别, 城乡类型, 是/否, 学科, 水平, 年级,
   学段, 学校类别, 范围, 最高学历), questionnaire items (1–4 or the answer words of
   ``schemas.LIKERT_CODES``: 非常不同意 … 非常同意, 从不 … 经常), county names → codes
   (``monitoring.counties`` / ``county_aliases``).
   A value that cannot be parsed sends its row to the quarantine (rule, column, Chinese message and
   the row's raw values with PII removed) — unless *every* row of the file fails for the same reason,
   which means a wrong file or column and is an :class:`EqmError`. Excel error values, formulas
   without a saved result, student ids Excel turned into numbers and county codes contradicting
   the county name are set aside too; a file without data rows is recorded and warned about.
4. **Protect privacy**: names and ID numbers are dropped on read; student and teacher ids
   (``Column.pseudonymised``) are replaced by a salted SHA-256 (first 16 hex digits). The salt comes from the environment variable named by
   ``ingest.salt_env`` or from the git-ignored ``Paths.salt_file`` created on first run. No message
   shows a raw id; ID-number-like digits in any value shown are masked.
5. **Split 一贯制 schools** into their compulsory sections (``domain.md``): a section's share of a
   whole-school quantity is ``w_s·E_s / Σ_t w_t·E_t`` with ``E`` the section's students and ``w`` the
   weights of ``ingest.split_weights`` (九年一贯制 1 : 1.1, so the primary share is A/(A + 1.1·B);
   完全中学 junior : senior = 1 : 1.2; 十二年一贯制 1 : 1.1 : 1.32). Only primary and junior sections
   are kept; ``source_stage`` records the original form.

Which files are read, and which links under ``data/raw/`` are refused: :mod:`pipeline.ingest.discover`.
``sources.yaml`` is read without YAML anchors/aliases and up to ``ingest.sources_max_bytes``.

Outputs (all-or-nothing through :func:`pipeline.io.outputs`): one parquet per input table, the
quarantine and ``ingest_manifest.json``: per file (``files[<path>]``) sha256, format, encoding,
delimiter, header_row, sheet, rows_read = rows_kept + rows_quarantined, ``empty``, ``columns``,
``ignored_columns``, ``suspect_columns`` (ignored header → the column it looks like),
``missing_indicator_columns``, ``error_value_cells`` / ``formula_cells_without_value`` (header →
cells set aside), ``multiline_records`` (CSV line spans read as one row); at the top the
``dataset`` block of ``sources.yaml`` and ``skipped_links`` (path, target, reason).

Modules: :mod:`~pipeline.ingest.sources` (params, sources.yaml), :mod:`~pipeline.ingest.discover`,
:mod:`~pipeline.ingest.readers` (csv/xlsx/sav/parquet, decoding; :mod:`~pipeline.ingest.formulas`),
:mod:`~pipeline.ingest.headers` (aliases, header location), :mod:`~pipeline.ingest.values` (cells),
:mod:`~pipeline.ingest.normalise` (one file), :mod:`~pipeline.ingest.quarantine`,
:mod:`~pipeline.ingest.reshape` (wide scores, 一贯制 split); this module assembles and runs.

Row numbers (``source_row``) are what the user sees: the Excel row number; for CSV the line number
with the header line of a file without title rows being line 1 (i.e. the physical line number,
also after a quoted value holding line breaks); for SPSS and parquet the case number.
"""

from __future__ import annotations

import logging
import os
import re
import secrets
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

import pipeline.schemas as schemas
from pipeline.config import RAW_TABLES, RunContext
from pipeline.generations import stamped
from pipeline.ingest.discover import Discovery, discover, find_raw_files
from pipeline.ingest.headers import (
    Lookups,
    Target,
    _is_units_line,
    _merge_header_rows,
    build_lookups,
    find_header_row,
    header_block,
    header_target,
    locate_header,
    norm_header,
)
from pipeline.ingest.normalise import FileResult, normalise_file
from pipeline.ingest.quarantine import _finalise_quarantine, empty_quarantine
from pipeline.ingest.readers import (
    FORMATS,
    READERS,
    RawFile,
    detect_delimiter,
    read_csv,
    read_parquet_raw,
    read_raw_file,
    read_sav,
    read_xlsx,
)
from pipeline.ingest.reshape import melt_wide, split_schools
from pipeline.ingest.sources import FileHint, IngestParams, Sources, load_sources, parse_sources
from pipeline.ingest.values import CODE_MAPS, _date_year, _to_number, as_text, pseudonymise
from pipeline.io import outputs

# Names other modules, tests and notebooks import from ``pipeline.ingest`` (the stage's API).
__all__ = [
    "CODE_MAPS",
    "Discovery",
    "FORMATS",
    "READERS",
    "FileHint",
    "FileResult",
    "IngestParams",
    "IngestResult",
    "Lookups",
    "RawFile",
    "Sources",
    "Target",
    "_date_year",
    "_is_units_line",
    "_merge_header_rows",
    "_to_number",
    "as_text",
    "assemble",
    "build_lookups",
    "detect_delimiter",
    "discover",
    "empty_quarantine",
    "find_header_row",
    "find_raw_files",
    "get_salt",
    "header_block",
    "header_target",
    "ingest_frames",
    "load_sources",
    "locate_header",
    "melt_wide",
    "norm_header",
    "normalise_file",
    "output_columns",
    "parse_sources",
    "pseudonymise",
    "read_csv",
    "read_parquet_raw",
    "read_raw_file",
    "read_sav",
    "read_xlsx",
    "run",
    "split_schools",
]

log = logging.getLogger(__name__)

TRACE_COLUMNS = ("source_file", "source_row")


INT64_COLUMNS = {
    "students": {"year", "grade"},
    "scores": {"year"},
    "schools": {"year"},
    "county_reports": {"year", "grade"},
    "previous_problems": {"year"},
    "teachers": {"year", "grade"},
    "principals": {"year"},
}


def output_columns(table: str, pv_count: int = 0) -> list[str]:
    tbl = schemas.INPUT_TABLES[table]
    cols = [c.name for c in tbl.columns if not c.dropped]
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
    skipped_links: Sequence[Mapping[str, str]] = (),
) -> IngestResult:
    """Pure core: raw files → canonical tables, quarantine and manifest (``skipped_links``: the
    links under data/raw that were not followed, :mod:`pipeline.ingest.discover`)."""
    results = []
    for raw in raws:
        results.append(normalise_file(raw, lookups, params, salt))
        if progress:
            progress(1)
    return assemble(results, dataset or {}, skipped_links)


def assemble(
    results: list[FileResult],
    dataset: Mapping[str, Any],
    skipped_links: Sequence[Mapping[str, str]] = (),
) -> IngestResult:
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
        "skipped_links": [dict(s) for s in skipped_links],
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


@stamped("ingest")
def run(ctx: RunContext) -> IngestResult:
    params = ctx.section(IngestParams, "ingest")
    paths = ctx.paths
    sources = load_sources(paths.sources_file, params.sources_max_bytes)
    lookups = build_lookups(ctx.monitoring, sources.aliases)
    found = find_raw_files(paths.raw, trusted=[paths.root / ".dvc" / "cache"])
    files = found.files
    listed = {p.relative_to(paths.raw).as_posix() for _, p in files}
    for rel in sorted(set(sources.files) - listed):
        log.warning("sources.yaml 中列出的文件 %s 不存在，已忽略", rel)
    salt = get_salt(params, paths.salt_file)
    with ctx.step("读取原始数据", len(files)) as advance:
        raws = []
        for table, path in files:
            raws.append(read_raw_file(table, path, paths.raw, sources, params, lookups))
            advance(1)
    result = ingest_frames(
        raws, lookups, params, salt, sources.dataset, skipped_links=found.skipped_links
    )
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
