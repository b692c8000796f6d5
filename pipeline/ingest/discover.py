"""Which files under ``data/raw/`` are read, and which links are refused.

Every data file under ``data/raw/<table>/`` (any depth) is read, in sorted order; hidden files and
folders, ``README*`` and Excel's ``~$`` lock files are not data. A file of an unknown format is an
error (it may be data the user expects to be counted).

Symbolic links (the policy of issue 15): a link is followed only when its target lies inside
``data/raw/`` or inside a trusted folder (the project's DVC cache ``.dvc/cache``, where a DVC
``symlink`` cache type keeps the real files). A link pointing anywhere else, a broken link and
any link to a folder are **skipped**, each with a WARNING naming the link and its target and a
record in ``ingest_manifest.json`` ``skipped_links`` (``path``, ``target``, ``reason``), so nothing
leaves the count unseen: the validation page lists them. Reading them would take data from outside
the round's folder (another round, another county, any file of the machine) into its outputs, and
a folder link can loop.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.config import RAW_TABLES
from pipeline.errors import EqmError
from pipeline.ingest.readers import FORMATS

log = logging.getLogger(__name__)

ACCEPTED_FORMATS = "、".join(FORMATS)
# data/raw/ folders read by a later stage: ledger/ (filled 整改台账, the evidence stage)
OTHER_STAGE_FOLDERS = frozenset({"ledger"})
TOP_LEVEL_IGNORED = {"sources.yaml", "sources.yml", "demo_truth.json"}
_NO_DATA_HINT = (
    "请把数据文件放到 data/raw/<表名>/ 下（students、scores、schools、county_reports、"
    "previous_problems、teachers、principals），或先运行 eqm demo-data 生成演示数据。"
)
LINK_OUTSIDE = "链接指向 data/raw 以外"
LINK_BROKEN = "链接的目标不存在"
LINK_FOLDER = "指向文件夹的链接不会被读取"


@dataclass(frozen=True)
class Discovery:
    files: list[tuple[str, Path]]  # (table, file) in reading order
    skipped_links: list[dict[str, str]] = field(default_factory=list)  # path, target, reason


def _inside(target: Path, roots: Iterable[Path]) -> bool:
    return any(target == r or target.is_relative_to(r) for r in roots)


def _link_problem(p: Path, roots: list[Path]) -> tuple[str, str] | None:
    """(target, reason) when the link ``p`` is not followed, else None (not a link, or allowed)."""
    if not p.is_symlink():
        return None
    target = Path(os.path.realpath(p))
    if not target.exists():
        return os.readlink(p), LINK_BROKEN
    if not _inside(target, roots):
        return str(target), LINK_OUTSIDE
    if target.is_dir():
        return str(target), LINK_FOLDER
    return None


def _is_data_name(name: str) -> bool:
    return not name.startswith((".", "README", "~$"))


def find_raw_files(raw: Path, trusted: Iterable[Path] = ()) -> Discovery:
    """The data files under ``raw/<table>/`` and the links refused (module docstring)."""
    if not raw.is_dir():
        raise EqmError(f"找不到原始数据目录 {raw}。", hint=_NO_DATA_HINT)
    roots = [raw.resolve(), *(Path(os.path.realpath(t)) for t in trusted)]
    found: list[tuple[str, Path]] = []
    skipped: list[dict[str, str]] = []

    def skip(p: Path, target: str, reason: str) -> None:
        rel = p.relative_to(raw).as_posix()
        skipped.append({"path": rel, "target": target, "reason": reason})
        log.warning(
            "data/raw/%s：%s（→ %s），已跳过；如需读取，请把文件本身复制到 data/raw/ 的表文件夹中。",
            rel,
            reason,
            target,
        )

    for entry in sorted(raw.iterdir()):
        if not _is_data_name(entry.name):
            continue
        if entry.is_symlink() and not entry.exists():
            skip(entry, os.readlink(entry), LINK_BROKEN)
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
        if entry.is_symlink() and not _inside(Path(os.path.realpath(entry)), roots):
            skip(entry, os.path.realpath(entry), LINK_OUTSIDE)
            continue
        for f in _table_files(entry, roots, skip):
            rel = f.relative_to(raw)
            if f.suffix.lower() not in FORMATS:
                raise EqmError(
                    f"不支持的文件格式「{f.suffix or '（无扩展名）'}」。可接受的格式：{ACCEPTED_FORMATS}。",
                    file=rel.as_posix(),
                    hint="请另存为 .xlsx 或 CSV（UTF-8）后放入；不是数据的文件请移出 data/raw/。",
                )
            found.append((entry.name, f))
    if not found:
        raise EqmError(f"原始数据目录 {raw} 中没有任何数据文件。", hint=_NO_DATA_HINT)
    if not {t for t, _ in found} & {"students", "schools", "county_reports"}:
        raise EqmError(
            "data/raw/ 中既没有学生数据（students/）、学校数据（schools/），也没有区县报告汇总数据"
            "（county_reports/），无法计算任何指标。",
            hint="请把学生监测数据放到 data/raw/students/，学校办学条件数据放到 data/raw/schools/。",
        )
    return Discovery(found, skipped)


def _table_files(folder: Path, roots: list[Path], skip) -> list[Path]:
    """Data files under one table folder, sorted; links not followed are passed to ``skip``."""
    out: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(folder):  # never descends into a folder link
        here = Path(dirpath)
        kept = []
        for name in sorted(dirnames):
            if name.startswith("."):
                continue
            problem = _link_problem(here / name, roots)
            if problem is not None:
                skip(here / name, *problem)
                continue
            kept.append(name)
        dirnames[:] = kept
        for name in filenames:
            if not _is_data_name(name):
                continue
            problem = _link_problem(here / name, roots)
            if problem is not None:
                skip(here / name, *problem)
                continue
            out.append(here / name)
    return sorted(out)


def discover(raw: Path) -> list[tuple[str, Path]]:
    """(table, file) for every data file under ``raw/<table>/``, sorted; unknown formats are errors."""
    return find_raw_files(raw).files
