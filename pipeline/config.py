"""Project root, paths and parameters: defined once, used by every stage.

The project root (``--root``, default the current directory) holds ``params.yaml``, ``data/`` and
``reports/``; an analyst keeps one root per monitoring round. Every path a stage reads or writes is
a property of :class:`Paths`, and ``tests/test_dvc.py`` checks that ``dvc.yaml`` declares the same.

``params.yaml`` has one top-level key per stage plus ``monitoring`` (the NAEQ design facts shared by
several stages). Each stage declares a frozen dataclass for its own section and builds it with
:func:`build_params`, which rejects unknown and missing keys so a typo in ``params.yaml`` is an error,
not a silently ignored threshold.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import types
import typing
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml

from pipeline.errors import EqmError

log = logging.getLogger(__name__)

PARAMS_FILE = "params.yaml"
SECTIONS = ("monitoring", "demo", "ingest", "validate", "indicators", "evidence", "report")
RAW_TABLES = (
    "students", "scores", "schools", "county_reports", "previous_problems", "teachers", "principals",
)  # fmt: skip
# data/raw/ marker of `eqm init`: its scaffold files (sha256), which `eqm demo-data` may replace
INIT_MARKER = ".eqm-init.json"


@dataclass(frozen=True)
class Paths:
    """Every file and folder the pipeline touches, resolved against the project root."""

    root: Path

    # --- inputs -------------------------------------------------------------------------------
    @property
    def params_file(self) -> Path:
        return self.root / PARAMS_FILE

    @property
    def raw(self) -> Path:
        return self.root / "data" / "raw"

    def raw_table(self, table: str) -> Path:
        return self.raw / table

    @property
    def sources_file(self) -> Path:
        return self.raw / "sources.yaml"

    @property
    def demo_truth(self) -> Path:
        """Sidecar with the generator's true parameters (demo data only)."""
        return self.raw / "demo_truth.json"

    @property
    def salt_file(self) -> Path:
        """Git-ignored pseudonymisation salt, created on first ingest (env ``EQM_SALT`` wins)."""
        return self.root / ".eqm_salt"

    # --- ingest ---------------------------------------------------------------------------------
    @property
    def processed(self) -> Path:
        return self.root / "data" / "processed"

    def ingested(self, table: str) -> Path:
        return self.processed / f"{table}.parquet"

    @property
    def ingest_quarantine(self) -> Path:
        return self.processed / "quarantine.parquet"

    @property
    def ingest_manifest(self) -> Path:
        return self.processed / "ingest_manifest.json"

    # --- validate -------------------------------------------------------------------------------
    @property
    def validated_dir(self) -> Path:
        return self.processed / "validated"

    def validated(self, table: str) -> Path:
        return self.validated_dir / f"{table}.parquet"

    @property
    def validation_dir(self) -> Path:
        return self.processed / "validation"

    @property
    def validation_quarantine(self) -> Path:
        """All rows set aside so far: ingest's plus validate's (the one analysts read)."""
        return self.validation_dir / "quarantine.parquet"

    @property
    def validation_findings(self) -> Path:
        """Table-level findings with severity (error / warn)."""
        return self.validation_dir / "findings.parquet"

    @property
    def validation_summary(self) -> Path:
        """Counts per table, rule and county (a DVC metric)."""
        return self.validation_dir / "summary.json"

    @property
    def validation_pages(self) -> Path:
        """``validation_<year>.html``; the report stage publishes them as ``reports/<year>/validation.html``."""
        return self.validation_dir / "pages"

    # --- indicators -----------------------------------------------------------------------------
    @property
    def indicators(self) -> Path:
        return self.processed / "indicators.parquet"

    @property
    def resource_balance(self) -> Path:
        return self.processed / "resource_balance.parquet"

    @property
    def school_compliance(self) -> Path:
        return self.processed / "school_compliance.parquet"

    @property
    def factors(self) -> Path:
        """相关因素 estimates (schemas.FACTORS): read by the evidence (cause hints) and report stages."""
        return self.processed / "factors.parquet"

    @property
    def indicators_summary(self) -> Path:
        """Headline counts of the indicators stage (a DVC metric)."""
        return self.processed / "indicators_summary.json"

    # --- evidence -------------------------------------------------------------------------------
    @property
    def problems(self) -> Path:
        return self.processed / "problems.parquet"

    @property
    def raw_ledger(self) -> Path:
        """Filled 整改台账 workbooks sent back by the counties (read by the evidence stage)."""
        return self.raw / "ledger"

    @property
    def comparisons(self) -> Path:
        """Every county value tested against its benchmark (labels 优于/差于/无显著差异)."""
        return self.processed / "comparisons.parquet"

    @property
    def evidence_dir(self) -> Path:
        """``<year>/ledger/<county_code>.xlsx`` and ``city.xlsx`` (整改台账); published by the report
        stage under ``reports/<year>/ledger/``."""
        return self.processed / "evidence"

    # --- report ---------------------------------------------------------------------------------
    @property
    def reports(self) -> Path:
        return self.root / "reports"

    def report_year(self, year: int) -> Path:
        return self.reports / str(year)

    @property
    def log_file(self) -> Path:
        """Internal errors (with traceback) are logged here, never shown on the terminal."""
        return self.root / "data" / "eqm.log"

    # --- generations (pipeline/generations.py) -------------------------------------------------
    def stage_outputs(self, stage: str) -> tuple[Path, ...]:
        """What ``stage`` writes (files and whole folders), as ``dvc.yaml`` declares its outs."""
        outs = {
            "ingest": (
                *(self.ingested(t) for t in RAW_TABLES),
                self.ingest_quarantine,
                self.ingest_manifest,
            ),
            "validate": (
                self.validated_dir,
                self.validation_quarantine,
                self.validation_findings,
                self.validation_summary,
                self.validation_pages,
            ),
            "indicators": (
                self.indicators,
                self.resource_balance,
                self.school_compliance,
                self.factors,
                self.indicators_summary,
            ),
            "evidence": (self.problems, self.comparisons, self.evidence_dir),
            "report": (self.reports,),
        }
        return outs[stage]

    def stamp(self, stage: str) -> Path:
        """The stage's generation stamp: written last when it commits, removed before it renames."""
        return self.processed / ".stamps" / f"{stage}.json"

    @property
    def lock_file(self) -> Path:
        """One writing eqm command per project root at a time (holds the PID of the holder)."""
        return self.root / "data" / ".eqm.lock"


def load_params(root: Path) -> dict[str, dict[str, Any]]:
    """Read ``params.yaml`` and check its top-level sections.

    Returns the raw mapping; each stage turns its section into its typed params with
    :func:`build_params`.
    """
    path = Path(root) / PARAMS_FILE
    if not path.is_file():
        raise EqmError(
            f"找不到参数文件 {path}",
            hint=f"请在项目根目录下运行，或用 --root 指定含 params.yaml 的目录；新的一轮请先运行 "
            f"eqm init {Path(root)} 建立项目目录（含带说明的 params.yaml）。",
        )
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise EqmError(
            f"参数文件不是有效的 YAML：{getattr(exc, 'problem', exc)}",
            file=str(path),
            row=(mark.line + 1) if mark else None,
            hint="请检查缩进和冒号；可与仓库中的 params.yaml 对照。",
        ) from None
    if not isinstance(raw, dict):
        raise EqmError("参数文件的顶层应为键值对。", file=str(path))
    unknown = sorted(set(raw) - set(SECTIONS))
    if unknown:
        raise EqmError(
            f"参数文件含未知的顶层键：{', '.join(map(str, unknown))}；允许的键为 {', '.join(SECTIONS)}。",
            file=str(path),
            hint="请检查拼写。",
        )
    missing = [s for s in SECTIONS if s not in raw]
    if missing:
        raise EqmError(f"参数文件缺少以下部分：{', '.join(missing)}。", file=str(path))
    return {k: (v or {}) for k, v in raw.items()}


T = TypeVar("T")


def build_params(cls: type[T], data: Any, where: str) -> T:
    """Build the frozen dataclass ``cls`` from a mapping, strictly.

    Unknown keys and missing keys without a default are errors naming the dotted path
    (``where``, e.g. ``"validate.weight_ratio_max"``). Nested dataclasses, ``tuple[...]``,
    ``dict[K, V]``, ``X | None`` and plain scalars are converted; ints are accepted for floats.
    """
    return _convert(cls, data, where)


def _convert(tp: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, Mapping):
            raise _param_error(where, "应为一组键值对")
        hints = typing.get_type_hints(tp)
        fields = {f.name: f for f in dataclasses.fields(tp) if f.init}
        unknown = sorted(set(map(str, value)) - set(fields))
        if unknown:
            raise _param_error(
                where, f"含未知的键 {', '.join(unknown)}（允许：{', '.join(fields)}）"
            )
        kwargs = {}
        for name, f in fields.items():
            if name in value:
                kwargs[name] = _convert(hints[name], value[name], f"{where}.{name}")
            elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise _param_error(f"{where}.{name}", "缺失")
        return tp(**kwargs)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _convert(arg, value, where)
            except EqmError as exc:
                errors.append(str(exc))
        raise EqmError(errors[0] if errors else f"参数 {where} 的值无效")
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise _param_error(where, "应为列表")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_convert(args[0], v, f"{where}[{i}]") for i, v in enumerate(value))
        if len(args) != len(value):
            raise _param_error(where, f"应有 {len(args)} 个元素")
        return tuple(
            _convert(a, v, f"{where}[{i}]")
            for i, (a, v) in enumerate(zip(args, value, strict=True))
        )
    if origin in (dict, Mapping, typing.Mapping) or tp is dict:
        if not isinstance(value, Mapping):
            raise _param_error(where, "应为一组键值对")
        kt, vt = args if args else (Any, Any)
        return types.MappingProxyType(
            {_convert(kt, k, f"{where}"): _convert(vt, v, f"{where}.{k}") for k, v in value.items()}
        )
    if tp is Any:
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise _param_error(where, f"应为数值，实际为 {value!r}")
        return float(value)
    if tp is int:
        if isinstance(value, bool):
            raise _param_error(where, f"应为整数，实际为 {value!r}")
        if isinstance(value, str) and value.strip().lstrip("-").isdigit():
            return int(value)
        if not isinstance(value, int):
            raise _param_error(where, f"应为整数，实际为 {value!r}")
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise _param_error(where, f"应为 true 或 false，实际为 {value!r}")
        return value
    if tp is str:
        if isinstance(value, bool) or value is None:
            raise _param_error(where, f"应为文本，实际为 {value!r}")
        return str(value)
    if typing.get_origin(tp) is typing.Literal:
        if value not in args:
            raise _param_error(where, f"应为 {' / '.join(map(str, args))} 之一，实际为 {value!r}")
        return value
    return value


def _param_error(where: str, what: str) -> EqmError:
    return EqmError(
        f"参数 {where} {what}。", file=PARAMS_FILE, hint="请对照 params.yaml 中的注释修改。"
    )


# ------------------------------------------------------------------------------------------------
# The shared `monitoring` section: NAEQ design facts several stages read.
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Scale:
    """Score scale of one year x subject x grade (national report values; demo values illustrative)."""

    cut_scores: tuple[float, float, float]  # lower bounds of levels II, III, IV
    plausible_range: tuple[float, float]  # scores outside are data errors (validate)


@dataclass(frozen=True)
class MonitoringParams:
    counties: Mapping[str, str]  # county_code -> current official name
    county_aliases: Mapping[str, str]  # other name -> county_code (e.g. 横县 -> 450181)
    city_code: str  # code that marks estimates pooled over every county present
    city_name: str
    rotation: Mapping[int, Mapping[int, tuple[str, ...]]]  # year -> grade -> subjects
    default_scale: Scale
    scales: Mapping[str, Scale] = field(default_factory=dict)  # "year/subject/grade" overrides
    # 校际差异率 standard (优质均衡: strictly below), declared once here and handed by run() to the
    # indicators (verdicts), evidence (ICC rule) and report (tables) stages' params.
    icc_threshold: float = 0.15

    def __post_init__(self) -> None:
        if not 0 < self.icc_threshold < 1:
            raise _param_error("monitoring.icc_threshold", "应在 0 到 1 之间（规定为 0.15）")

    def scale(self, year: int, subject: str, grade: int) -> Scale:
        return self.scales.get(f"{year}/{subject}/{grade}", self.default_scale)

    def county_name(self, code: str) -> str:
        return self.counties.get(str(code), str(code))


@dataclass
class RunContext:
    """What every stage's ``run()`` receives: where the round lives, its params, how to report progress."""

    root: Path
    params: dict[str, dict[str, Any]]
    quiet: bool = False
    progress: (
        Callable[[str, int], contextlib.AbstractContextManager[Callable[[int], None]]] | None
    ) = None

    @property
    def paths(self) -> Paths:
        return Paths(self.root)

    @property
    def monitoring(self) -> MonitoringParams:
        return build_params(MonitoringParams, self.params["monitoring"], "monitoring")

    def section(self, cls: type[T], name: str, **shared: Any) -> T:
        """The ``name:`` section of params.yaml as ``cls``, plus values declared in another section.

        ``shared`` maps a field of ``cls`` to a value that lives elsewhere in params.yaml (e.g. the
        校际差异率 standard ``monitoring.icc_threshold``); the section itself must not repeat it.
        """
        data = self.params[name]
        repeated = sorted(k for k in shared if isinstance(data, Mapping) and k in data)
        if repeated:
            raise EqmError(
                f"参数 {name}.{repeated[0]} 不应在此设置：该值只在一处声明，由其他参数提供。",
                file="params.yaml",
                hint=f"请删除 {name}.{repeated[0]}，在 monitoring 部分修改对应的值"
                "（校际差异率标准为 monitoring.icc_threshold）。",
            )
        merged = {**data, **shared} if isinstance(data, Mapping) else data
        return build_params(cls, merged, name)

    @contextlib.contextmanager
    def step(self, description: str, total: int) -> Iterator[Callable[[int], None]]:
        """Progress for a long step: ``with ctx.step("读取文件", n) as advance: ... advance(1)``."""
        if self.progress is None or self.quiet:
            yield lambda _n=1: None
            return
        with self.progress(description, total) as advance:
            yield advance


def make_context(root: Path | str = ".", quiet: bool = False, progress=None) -> RunContext:
    root = Path(root).resolve()
    return RunContext(root=root, params=load_params(root), quiet=quiet, progress=progress)
