"""Stage ``report``: Chinese HTML and PDF reports for leadership, one per county plus a city summary.

The stage only renders. It reads the processed tables (``indicators``, ``resource_balance``,
``school_compliance``, ``problems``, ``comparisons``, ``factors`` for the 「相关因素」 chapter
(:mod:`pipeline.report.factors`), the province / nation benchmarks of the
validated county reports, the validation outputs, the key columns of the validated tables (to
count each round's rows) and the ingest manifest), turns them into view models
(:mod:`pipeline.report.views`, with :mod:`~pipeline.report.verdicts`,
:mod:`~pipeline.report.problems`, :mod:`~pipeline.report.provenance` for each round's data quality,
files and official-vs-computed note, and :mod:`~pipeline.report.city` for the summary's
conclusions, 整改任务分解 and pilot-county facts; no statistics computed), draws a few charts
(:mod:`pipeline.report.charts`), renders Jinja2 templates with autoescaping on, and typesets the
PDF from the same view model and charts with Typst (:mod:`pipeline.report.pdf`), embedding Noto
Sans CJK SC (:mod:`pipeline.report.fonts`). Each report (view, charts, HTML, PDF) is one job; the
jobs are spread over forked worker processes (``report.pdf_workers``, one per CPU by default;
:func:`write_reports`).

Everything is written under ``reports/`` as one all-or-nothing replacement of the folder:
``reports/<year>/<county_code>.html|.pdf``, ``summary.html|.pdf``, and the published copies
``validation.html`` (from ``data/processed/validation/pages/validation_<year>.html``) and
the 整改台账 folder ``ledger/`` (from ``data/processed/evidence/<year>/``) when they exist.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import functools
import gc
import logging
import multiprocessing
import os
import shutil
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import jinja2
import pandas as pd

from pipeline.config import RAW_TABLES, MonitoringParams, RunContext
from pipeline.errors import EqmError
from pipeline.generations import require_upstream, stamped
from pipeline.io import outputs, read_json, read_parquet
from pipeline.report import charts, factors, fonts, pdf, provenance, views

log = logging.getLogger(__name__)

TEMPLATES = Path(__file__).parent / "templates"
PAGE_SIZES = ("A4", "A3", "A5", "B5", "letter")


# ------------------------------------------------------------------------------------------------
# Parameters (params.yaml `report:`)
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Decimals:
    score: int  # 量尺分数、分数差、分钟、小时
    percent: int  # 百分比
    rate: int  # 校际差异率、η²、差异系数、达成率
    index: int = 2  # 问卷指数（相关因素：学习兴趣指数等）


@dataclass(frozen=True)
class Palette:
    county: str  # 本县 (darkest)
    province: str  # 全省
    nation: str  # 全国 (lightest)
    levels: tuple[str, str, str, str]  # Ⅰ…Ⅳ, increasing darkness
    level_hatches: tuple[
        str, str, str, str
    ]  # matplotlib hatch patterns, so grey print still separates them


@dataclass(frozen=True)
class ReportParams:
    decimals: Decimals
    resource_decimals: Mapping[str, int]  # L1…L7 county value decimals
    colors: Palette
    suppression_note: str
    min_students: int
    min_schools: int
    quality_sdr_max: float
    quality_min_level: Literal["I", "II", "III", "IV"]
    build_pdf: bool
    page_size: str
    chart_dpi: int
    chart_width_in: float
    font_file: str
    pdf_workers: int  # processes rendering the reports (charts, HTML, PDF); 0 = one per CPU
    # indicator -> grade -> the standard in words, shown beside the burden / health items
    burden_standards: Mapping[str, Mapping[int, str]]
    # city summary: a problem type found in at least this share of the counties is "common"
    common_problem_share: float = 0.5
    organisation: str = "南宁市人民政府教育督导委员会办公室"
    # evidence.alpha (declared there once): the 相关因素 chapter's two-sided significance level
    alpha: float = 0.05

    def rules(self) -> views.ViewRules:
        return views.ViewRules(
            score_decimals=self.decimals.score,
            percent_decimals=self.decimals.percent,
            rate_decimals=self.decimals.rate,
            resource_decimals=self.resource_decimals,
            min_students=self.min_students,
            min_schools=self.min_schools,
            quality_sdr_max=self.quality_sdr_max,
            quality_min_level=self.quality_min_level,
            burden_standards=self.burden_standards,
            common_share=self.common_problem_share,
            index_decimals=self.decimals.index,
            alpha=self.alpha,
        )


def check_params(p: ReportParams) -> None:
    if p.page_size not in PAGE_SIZES:
        raise EqmError(
            f"参数 report.page_size 应为 {' / '.join(PAGE_SIZES)} 之一，实际为 {p.page_size!r}。",
            file="params.yaml",
        )
    for name, d in (
        ("score", p.decimals.score),
        ("percent", p.decimals.percent),
        ("rate", p.decimals.rate),
        ("index", p.decimals.index),
    ):
        if not 0 <= d <= 6:
            raise EqmError(
                f"参数 report.decimals.{name} 应为 0–6 的整数，实际为 {d}。", file="params.yaml"
            )
    if not 0 < p.common_problem_share <= 1:
        raise EqmError(
            "参数 report.common_problem_share 应大于 0、不超过 1（如 0.5 表示半数及以上区县），"
            f"实际为 {p.common_problem_share}。",
            file="params.yaml",
        )
    if not 0 < p.alpha < 1:
        raise EqmError(
            f"参数 evidence.alpha 应大于 0、小于 1（如 0.05），实际为 {p.alpha}。",
            file="params.yaml",
        )
    if not 50 <= p.chart_dpi <= 400:
        raise EqmError(
            f"参数 report.chart_dpi 应在 50–400 之间，实际为 {p.chart_dpi}。", file="params.yaml"
        )


# ------------------------------------------------------------------------------------------------
# Pure core: tables -> {relative path: html}
# ------------------------------------------------------------------------------------------------


@functools.cache
def _env() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES)),
        autoescape=True,  # every string from data is escaped (school names, titles, labels)
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def _style(params: ReportParams) -> charts.ChartStyle:
    family = fonts.use_in_matplotlib(params.font_file)
    return charts.ChartStyle(family=family, dpi=params.chart_dpi, width_in=params.chart_width_in)


def _series(params: ReportParams) -> dict[str, charts.Series]:
    c = params.colors
    return {
        "county": charts.Series("county", "本县", c.county, "o", True),
        "province": charts.Series("province", "全省", c.province, "^", True),
        "nation": charts.Series("nation", "全国", c.nation, "D", False),
    }


def _county_charts(
    v: dict, params: ReportParams, style: charts.ChartStyle
) -> dict[str, str | None]:
    s = _series(params)
    levels = [
        charts.Series(lv, views.schemas.LEVEL_LABELS[lv], col, hatch=h)
        for lv, col, h in zip(
            views.schemas.LEVELS, params.colors.levels, params.colors.level_hatches, strict=True
        )
    ]
    est = charts.Series("county", "本县估计值", params.colors.county)
    local = charts.Series("county", "本地估计值", params.colors.county)
    official = charts.Series("official", "官方值", params.colors.province, "s", False)
    nation = charts.Series("nation", "全国差距", params.colors.nation, "D", False)
    # 相关因素: 本县 filled black, 全国 open black (no colour coding, grey print keeps them apart)
    factor_series = [
        charts.Series("county", "本县", style.ink, "o", True),
        charts.Series("nation", "全国", style.ink, "D", False),
    ]
    factor_charts = {
        g["chart"]: charts.dot_chart(
            g["chart_rows"], factor_series, style, xlabel=factors.CHART_XLABEL, xlim=(0, 100)
        )
        for g in v["factors"]["grades"]
    }
    return {
        **factor_charts,
        "means": charts.dot_chart(
            v["achievement"]["chart_rows"],
            [s["county"], s["province"], s["nation"]],
            style,
            xlabel="平均成绩（量尺分数）",
        ),
        "levels": charts.stacked_levels(
            v["achievement"]["level_chart_rows"], levels, style, xlabel="学生比例（%）"
        ),
        "sdr": charts.dot_chart(
            v["balance"]["sdr_chart_rows"],
            [local, official],
            style,
            xlabel="校际差异率",
            ref=params.quality_sdr_max,
            ref_label=f"标准 {params.quality_sdr_max:g}",
        ),  # fmt: skip
        "gaps": charts.dot_chart(
            v["balance"]["gap_chart_rows"],
            [est, nation],
            style,
            xlabel="平均成绩差（量尺分数）",
            ref=0.0,
            ref_label="无差异",
        ),
        "resources": charts.bar_panels(
            v["resources"]["panels"],
            [charts.Series("cv", "差异系数", params.colors.county)],
            style,
            ylabel="差异系数",
            ref_label="标准",
        ),  # fmt: skip
        "burden": charts.bar_panels(
            v["burden"]["panels"],
            [
                charts.Series("county", "本县", params.colors.county),
                charts.Series("province", "全省", params.colors.province, hatch="//"),
                charts.Series("nation", "全国", params.colors.nation, hatch=".."),
            ],
            style,
            ylabel="比例（%）",
        ),  # fmt: skip
    }


def _summary_charts(
    v: dict, params: ReportParams, style: charts.ChartStyle
) -> dict[str, str | None]:
    s = _series(params)
    county = charts.Series("county", "区县估计值", params.colors.county)
    return {
        "means": charts.dot_chart(
            v["mean_chart_rows"], [county, s["nation"]], style, xlabel="平均成绩（量尺分数）"
        ),
        "sdr": charts.dot_chart(
            v["sdr_chart_rows"],
            [county],
            style,
            xlabel="校际差异率",
            ref=params.quality_sdr_max,
            ref_label=f"标准 {params.quality_sdr_max:g}",
        ),  # fmt: skip
    }


def counties_of_year(inp: views.Inputs, year: int, city_code: str) -> list[str]:
    """Every county present in the round's processed tables (none is hard-coded)."""
    found: set[str] = set()
    for df in (inp.indicators, inp.resource_balance, inp.school_compliance, inp.problems):
        if df is not None and not df.empty:
            found |= set(df.loc[df["year"] == year, "county_code"].astype(str))
    return sorted(found - {city_code})


def years_of(inp: views.Inputs) -> list[int]:
    found: set[int] = set()
    for df in (inp.indicators, inp.resource_balance, inp.school_compliance, inp.problems):
        if df is not None and not df.empty:
            found |= {int(y) for y in df["year"].dropna()}
    return sorted(found)


@dataclass(frozen=True)
class Doc:
    """One report of a run: a county's (``county`` set) or the round's city summary (``county=None``)."""

    year: int
    county: str | None
    counties: tuple[str, ...]  # the round's counties (the summary compares them)
    has_validation: bool = False
    has_evidence: bool = False

    @property
    def rel(self) -> str:
        """Its HTML path under ``reports/``: ``<year>/<county_code>.html`` or ``<year>/summary.html``."""
        return f"{self.year}/{self.county or 'summary'}.html"


def documents(
    inp: views.Inputs,
    monitoring: MonitoringParams,
    *,
    has_validation: Mapping[int, bool] | None = None,
    has_evidence: Mapping[int, bool] | None = None,
) -> list[Doc]:
    """Every report to render, year by year: each county present in the data, then the summary."""
    docs: list[Doc] = []
    for year in years_of(inp):
        counties = tuple(counties_of_year(inp, year, monitoring.city_code))
        flags = {
            "has_validation": bool((has_validation or {}).get(year)),
            "has_evidence": bool((has_evidence or {}).get(year)),
        }
        docs += [Doc(year, c, counties, **flags) for c in counties]
        docs.append(Doc(year, None, counties, **flags))
    return docs


@dataclass(frozen=True)
class Rendered:
    """One report rendered: its kind (``county`` / ``summary``), view model, charts and HTML."""

    kind: str
    view: dict
    charts: dict[str, str | None]
    flags: dict[str, bool]
    html: str


class Renderer:
    """What every report of a run shares (inputs, lookup, chart style, page parts); ``html(doc)``
    renders one report: its view model, its charts, its template.

    ``inp.indicators`` must already have passed :func:`views.prepare_indicators`.
    """

    def __init__(self, inp: views.Inputs, monitoring: MonitoringParams, params: ReportParams):
        self.inp, self.monitoring, self.params = inp, monitoring, params
        self.rules = params.rules()
        self.style = _style(params)
        self.lk = views.Lookup(inp.indicators, inp.benchmarks)
        ind = inp.indicators
        self.common = {
            "css": (TEMPLATES / "report.css").read_text(encoding="utf-8"),
            "dataset": provenance.dataset_info(inp.manifest),
            "org": params.organisation,
            "suppression_note": params.suppression_note,
            "sdr_max": f"{params.quality_sdr_max:g}",
            # how the indicators stage built the 校际差异率 intervals (its method text says so)
            "icc_fisher": bool(
                ind.loc[ind["indicator"] == "school_difference_rate", "method"]
                .astype(str)
                .str.contains("Fisher's z", regex=False)
                .any()
            ),
            # the indicators stage's intervals on t(design df) (its method text says so)
            "ci_t": bool(ind["method"].astype(str).str.contains("from t(df", regex=False).any()),
            "min_students": params.min_students,
            "min_schools": params.min_schools,
        }

    def render(self, doc: Doc) -> Rendered:
        """The report's view model, charts and HTML (what its PDF is typeset from, too)."""
        flags = {"has_validation": doc.has_validation, "has_evidence": doc.has_evidence}
        if doc.county is not None:
            v = views.county_view(
                self.inp, self.lk, doc.year, doc.county, self.monitoring, self.rules
            )
            drawn = _county_charts(v, self.params, self.style)
            kind = "county"
        else:
            v = views.summary_view(
                self.inp, self.lk, doc.year, list(doc.counties), self.monitoring, self.rules
            )
            drawn = _summary_charts(v, self.params, self.style)
            kind = "summary"
        html = (
            _env().get_template(f"{kind}.html.j2").render(v=v, charts=drawn, **self.common, **flags)
        )
        return Rendered(kind, v, drawn, flags, html)

    def html(self, doc: Doc) -> str:
        return self.render(doc).html


def build_reports(
    inp: views.Inputs,
    monitoring: MonitoringParams,
    params: ReportParams,
    *,
    has_validation: Mapping[int, bool] | None = None,
    has_evidence: Mapping[int, bool] | None = None,
    advance=lambda _n=1: None,
) -> dict[str, str]:
    """Render every report in this process: ``{"<year>/<county_code>.html": html, ...}``.

    ``inp.indicators`` must already have passed :func:`views.prepare_indicators`. The stage itself
    uses :func:`write_reports` (the same :class:`Renderer`, spread over processes).
    """
    renderer = Renderer(inp, monitoring, params)
    out: dict[str, str] = {}
    for doc in documents(inp, monitoring, has_validation=has_validation, has_evidence=has_evidence):
        out[doc.rel] = renderer.html(doc)
        advance(1)
    return out


# ------------------------------------------------------------------------------------------------
# PDF
# ------------------------------------------------------------------------------------------------


@contextlib.contextmanager
def _gc_paused():
    """No cyclic garbage collection while one report is built (collected after it instead).

    matplotlib and the view models allocate hundreds of thousands of small objects per report; the
    collector's passes over them cost time and collect nothing that lives past the report (with
    WeasyPrint it was ~17 % of the PDF time). Outputs do not depend on it (same bytes).
    """
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


# The state of a worker process (or of this process with one worker): the renderer of the run and
# its Typst writer (the font set loaded once per process).
_STATE: dict[str, Any] = {}


def _init_worker(renderer: Renderer | None) -> None:
    _STATE.clear()
    _STATE.update(renderer=renderer, writers={})


def _writer(font: str) -> pdf.TypstWriter:
    writers = _STATE["writers"]
    if font not in writers:
        writers[font] = pdf.TypstWriter(Path(font), _STATE["renderer"].params.page_size)
    return writers[font]


def _render_job(doc: Doc, root: str, font: str | None) -> str:
    """One report: its HTML written under ``root``, and its PDF too when ``font`` (the folder
    holding the report's font file, :func:`pdf.font_folder`) is given."""
    target = Path(root) / doc.rel
    renderer = _STATE["renderer"]
    with _gc_paused():
        r = renderer.render(doc)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(r.html, encoding="utf-8")
    if font is not None:
        _writer(font).write(
            r.kind, r.view, r.charts, renderer.common, r.flags, target.with_suffix(".pdf")
        )
    return doc.rel


def n_workers(params: ReportParams, n_docs: int) -> int:
    """Processes rendering the reports: ``report.pdf_workers`` (0 = one per CPU), never more than
    there are reports; the environment variable ``EQM_REPORT_WORKERS`` overrides the parameter
    (``EQM_REPORT_WORKERS=1`` renders everything in this process). Without ``fork`` (Windows) the
    reports are rendered in this process."""
    env = os.environ.get("EQM_REPORT_WORKERS", "").strip()
    try:
        wanted = int(env) if env else params.pdf_workers
    except ValueError:
        raise EqmError(
            f"环境变量 EQM_REPORT_WORKERS 应为非负整数（0 表示每个 CPU 一个进程），实际为 {env!r}。",
            hint="请改正或删除该环境变量。",
        ) from None
    if wanted < 0:
        raise EqmError(
            f"报告进程数应为非负整数（0 表示每个 CPU 一个进程），实际为 {wanted}。",
            file="params.yaml" if not env else None,
            hint="请改正 params.yaml 中的 report.pdf_workers 或环境变量 EQM_REPORT_WORKERS。",
        )
    if "fork" not in multiprocessing.get_all_start_methods():  # pragma: no cover - Windows
        return 1
    return max(1, min(wanted or os.cpu_count() or 1, n_docs))


class _Workers:
    """Run report jobs in ``n`` forked processes (or in this one when ``n == 1``).

    The processes are forked on entry, before any progress display starts a thread; each holds the
    run's :class:`Renderer` (inherited through ``fork``, never pickled). The first failing job
    cancels the others and its exception is raised here unchanged (an ``EqmError`` stays the same
    ``EqmError``); nothing is written outside the caller's temporary output folder. A process that
    has run Typst itself forks no workers for PDF jobs (Typst's threads do not follow a fork; the
    children would hang): the reports are then rendered in this process.
    """

    def __init__(self, n: int, renderer: Renderer, *, typeset: bool = False):
        self.n, self.renderer, self.pool = n, renderer, None
        self.typeset = typeset  # the jobs make PDFs (Typst) too

    def __enter__(self) -> _Workers:
        if self.n > 1 and self.typeset and not pdf.forked_children_can_typeset():
            log.info("本进程已生成过 PDF（Typst 的线程无法带入子进程），改为在本进程中逐份生成。")
            self.n = 1
        if self.n == 1:
            _init_worker(self.renderer)
            return self
        try:
            self.pool = concurrent.futures.ProcessPoolExecutor(
                max_workers=self.n,
                mp_context=multiprocessing.get_context("fork"),
                initializer=_init_worker,
                initargs=(self.renderer,),
            )
            self.pool.submit(int).result()  # fork every worker now (all at once under fork)
        except (OSError, ImportError, NotImplementedError) as exc:  # no sem_open, no /dev/shm …
            log.info("无法启动报告工作进程（%s），改为在本进程中逐份生成。", exc)
            if self.pool is not None:
                self.pool.shutdown(wait=False, cancel_futures=True)
            self.pool = None
            _init_worker(self.renderer)
        return self

    @property
    def size(self) -> int:
        return self.n if self.pool is not None else 1

    def run(self, fn, calls: list[tuple], advance) -> None:
        if self.pool is None:
            for args in calls:
                fn(*args)
                advance(1)
            return
        futures = [self.pool.submit(fn, *args) for args in calls]
        try:
            for fut in concurrent.futures.as_completed(futures):
                fut.result()
                advance(1)
        except BaseException:
            for fut in futures:
                fut.cancel()
            raise

    def __exit__(self, *exc) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)
        _STATE.clear()


def write_reports(
    docs: list[Doc],
    renderer: Renderer,
    root: Path,
    *,
    step=None,
) -> int:
    """Render every report into ``root``: ``<rel>.html`` and, with ``build_pdf``, ``<rel>.pdf``;
    return the number of processes that rendered them.

    Each report (view model, charts, template, PDF) is one job, spread over :func:`n_workers`
    processes; a report's bytes depend only on its inputs, never on the process or the order.
    ``step(description, total)`` is the progress context (``RunContext.step``).
    """
    params = renderer.params
    step = step or (lambda _d, _n: contextlib.nullcontext(lambda _n=1: None))
    font = fonts.font_file(params.font_file) if params.build_pdf else None
    label = "生成报告（HTML 与 PDF）" if params.build_pdf else "生成 HTML 报告"
    jobs = sorted(docs, key=lambda d: d.county is None)  # counties (the larger PDFs) first
    with (
        tempfile.TemporaryDirectory(prefix="eqm-font-") as tmp,
        _Workers(n_workers(params, len(docs)), renderer, typeset=font is not None) as workers,
        step(label, len(jobs)) as advance,
    ):
        folder = str(pdf.font_folder(font, Path(tmp))) if font is not None else None
        workers.run(_render_job, [(d, str(root), folder) for d in jobs], advance)
        return workers.size


# ------------------------------------------------------------------------------------------------
# Shell
# ------------------------------------------------------------------------------------------------


def _optional_parquet(path: Path) -> pd.DataFrame | None:
    return pd.read_parquet(path) if path.is_file() else None


def _optional_json(path: Path) -> Any:
    try:
        return read_json(path) if path.is_file() else None
    except ValueError:
        log.warning("无法解析 %s，报告中不显示其内容。", path)
        return None


COUNT_KEYS = ("year", "county_code", "source_file", "student_id")


def _validated_keys(path: Path) -> pd.DataFrame | None:
    """The key columns of a validated table (for counting its rows per year, county and file)."""
    if not path.is_file():
        return None
    import pyarrow.parquet as pq

    names = set(pq.read_schema(path).names)
    if "year" not in names:
        return None
    return pd.read_parquet(path, columns=[c for c in COUNT_KEYS if c in names])


def load_inputs(ctx: RunContext, params: ReportParams) -> views.Inputs:
    p = ctx.paths
    ind = read_parquet(p.indicators, "指标表 indicators.parquet（请先运行 eqm indicators）")
    rb = read_parquet(
        p.resource_balance, "资源配置均衡表 resource_balance.parquet（请先运行 eqm indicators）"
    )
    sc = read_parquet(
        p.school_compliance, "学校达标表 school_compliance.parquet（请先运行 eqm indicators）"
    )
    probs = read_parquet(p.problems, "问题清单 problems.parquet（请先运行 eqm evidence）")
    comparisons = _optional_parquet(p.comparisons)
    if comparisons is None:
        log.warning(
            "找不到 %s（上一版问题清单环节的输出）：报告中与全国、全省或标准的比较一律写“未检验”。"
            "请重新运行 eqm evidence。",
            p.comparisons,
        )
    bench = _optional_parquet(p.validated("county_reports"))
    manifest = _optional_json(p.ingest_manifest)
    if manifest is None:
        log.warning("找不到 %s，报告无法判断数据是否为合成数据。", p.ingest_manifest)
    keys = {t: _validated_keys(p.validated(t)) for t in RAW_TABLES}
    counts = provenance.row_counts(keys) if any(k is not None for k in keys.values()) else None
    return views.Inputs(
        indicators=views.prepare_indicators(ind, params.rules()),
        benchmarks=bench if bench is not None else pd.DataFrame(),
        resource_balance=rb,
        school_compliance=sc,
        problems=probs,
        quarantine=_optional_parquet(p.validation_quarantine),
        validation_summary=_optional_json(p.validation_summary),
        manifest=manifest,
        previous_problems=_optional_parquet(p.validated("previous_problems")),
        comparisons=comparisons,
        row_counts=counts,
        factors=_optional_parquet(p.factors),  # 相关因素 (none: each county says so)
    )


def stage_params(ctx: RunContext) -> ReportParams:
    """``report:`` of params.yaml plus the 校际差异率 standard ``monitoring.icc_threshold`` and the
    significance level ``evidence.alpha`` (the 相关因素 chapter's tests)."""
    return ctx.section(
        ReportParams, "report", quality_sdr_max=ctx.monitoring.icc_threshold,
        alpha=ctx.params["evidence"]["alpha"],
    )  # fmt: skip


@stamped("report")
def run(ctx: RunContext) -> None:
    params = stage_params(ctx)
    check_params(params)
    require_upstream(ctx, "report")
    p = ctx.paths
    t0 = time.perf_counter()
    inp = load_inputs(ctx, params)
    years = years_of(inp)
    if not years:
        raise EqmError(
            "指标表中没有任何监测年份的数据，无法生成报告。", hint="请检查前面环节的输出。"
        )
    validation_pages = {y: p.validation_pages / f"validation_{y}.html" for y in years}
    ledger_dirs = {y: p.evidence_dir / str(y) / "ledger" for y in years}
    docs = documents(
        inp, ctx.monitoring,
        has_validation={y: f.is_file() for y, f in validation_pages.items()},
        has_evidence={y: d.is_dir() for y, d in ledger_dirs.items()},
    )  # fmt: skip
    renderer = Renderer(inp, ctx.monitoring, params)
    with outputs() as out:
        root = out.directory(p.reports)
        n_procs = write_reports(docs, renderer, root, step=ctx.step)
        for y in years:
            (root / str(y)).mkdir(parents=True, exist_ok=True)
            if validation_pages[y].is_file():
                shutil.copyfile(validation_pages[y], root / str(y) / "validation.html")
            if ledger_dirs[y].is_dir():
                shutil.copytree(ledger_dirs[y], root / str(y) / "ledger")
    log.info(
        "报告：%d 个年份、%d 份 HTML%s，%d 个进程，用时 %.1f 秒 → %s",
        len(years), len(docs), " 及同名 PDF" if params.build_pdf else "",
        n_procs, time.perf_counter() - t0, p.reports,
    )  # fmt: skip
