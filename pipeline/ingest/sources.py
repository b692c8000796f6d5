"""Ingest parameters and ``data/raw/sources.yaml``: per-file hints, extra aliases, the dataset block."""

from __future__ import annotations

import codecs
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from types import MappingProxyType
from typing import Any

import yaml

import pipeline.schemas as schemas
from pipeline.errors import EqmError

# Field separators tried on text files, in order of preference on a tie; sources.yaml names them.
DELIMITERS = {ch: word for ch, word in schemas.TEXT_DELIMITERS.values()}  # char -> 逗号 …
DELIMITER_NAMES = {name: ch for name, (ch, _) in schemas.TEXT_DELIMITERS.items()}  # comma -> ,
DELIMITER_LABELS = {ch: name for name, ch in DELIMITER_NAMES.items()}  # as the manifest records


# What a student id may look like when params.yaml gives no ingest.student_id_pattern: letters,
# digits, - and _ (学籍号 G/J/L + 身份证号, 考号, local ids). A dot or a + is refused: Excel turned
# the id into a number (1.23E+17 has lost digits; 2020000101.5 is not an id).
DEFAULT_STUDENT_ID_PATTERN = r"[0-9A-Za-z][0-9A-Za-z_-]{0,63}"
SOURCES_MAX_BYTES = 1_048_576  # default ingest.sources_max_bytes (1 MiB)


@dataclass(frozen=True)
class IngestParams:
    salt_env: str  # environment variable holding the pseudonymisation salt
    header_scan_rows: int  # rows searched for the header when sources.yaml gives no header_row
    encodings: tuple[str, ...]  # CSV encodings tried in order when sources.yaml gives none
    split_weights: Mapping[str, Mapping[str, float]]  # 一贯制 form -> section -> per-student weight
    student_id_pattern: str = DEFAULT_STUDENT_ID_PATTERN  # a raw id must match it in full
    sources_max_bytes: int = SOURCES_MAX_BYTES  # a larger sources.yaml is refused

    def __post_init__(self) -> None:
        try:
            re.compile(self.student_id_pattern)
        except re.error as exc:
            raise EqmError(
                f"参数 ingest.student_id_pattern 不是有效的正则表达式：{exc}",
                file="params.yaml",
                hint="例如 [0-9A-Za-z][0-9A-Za-z_-]{0,63}（字母、数字、短横线和下划线）。",
            ) from None


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


class _AnchorError(yaml.MarkedYAMLError):
    """An anchor or alias in sources.yaml."""


class _PlainLoader(yaml.SafeLoader):
    """PyYAML's safe loader without anchors and aliases (``&a`` / ``*a``): sources.yaml never needs
    them, and nested aliases expand exponentially (a "billion laughs" file) once the dataset block
    is copied into the manifest."""

    def compose_node(self, parent, index):
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None) is not None:
            raise _AnchorError(problem_mark=event.start_mark)
        return super().compose_node(parent, index)


def load_sources(path: Path, max_bytes: int = SOURCES_MAX_BYTES) -> Sources:
    """Read ``sources.yaml`` (absent: no hints) with a plain safe loader, at most ``max_bytes``."""
    if not path.is_file():
        return parse_sources({})
    with path.open("rb") as fh:
        data = fh.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise EqmError(
            f"sources.yaml 超过 {max_bytes // 1024} KB，不像是手写的说明文件，已拒绝读取。",
            file=SOURCES_NAME,
            hint="sources.yaml 只需写少量说明（编码、工作表、表头行、年份、区县、列名别名）；请确认放入的"
            "是正确的文件。如确需更大的文件，可调大 params.yaml 中的 ingest.sources_max_bytes。",
        )
    try:
        obj = yaml.load(data.decode("utf-8"), Loader=_PlainLoader)  # a SafeLoader: plain data only
    except _AnchorError as exc:
        raise EqmError(
            "sources.yaml 使用了 YAML 锚点或别名（& 或 *）；为安全起见不允许使用（嵌套的别名会把很小的"
            "文件展开成极大的内容）。",
            file=SOURCES_NAME,
            row=exc.problem_mark.line + 1,
            hint="请把被引用的内容直接写在需要的位置，删除 & 和 * 后重新运行。",
        ) from None
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        mark = getattr(exc, "problem_mark", None)
        raise EqmError(
            f"sources.yaml 不是有效的 UTF-8 YAML：{getattr(exc, 'problem', exc)}",
            file=SOURCES_NAME,
            row=(mark.line + 1) if mark else None,
            hint="请检查缩进和冒号，并以 UTF-8 编码保存。",
        ) from None
    return parse_sources(obj)
