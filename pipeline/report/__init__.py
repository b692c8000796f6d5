"""Stage ``report``: Chinese HTML and PDF reports for leadership, one per county plus a city summary.

The stage only renders. It reads the processed tables (``indicators``, ``resource_balance``,
``school_compliance``, ``problems``, ``comparisons``, the province / nation benchmarks of the
validated county reports, the validation outputs, the key columns of the validated tables (to
count each round's rows) and the ingest manifest), turns them into view models
(:mod:`pipeline.report.views`, with :mod:`~pipeline.report.verdicts`,
:mod:`~pipeline.report.problems`, :mod:`~pipeline.report.provenance` for each round's data quality,
files and official-vs-computed note, and :mod:`~pipeline.report.city` for the summary's
conclusions, 整改任务分解 and pilot-county facts; no statistics computed), draws a few charts
(:mod:`pipeline.report.charts`), renders Jinja2 templates with autoescaping on, and converts the same
HTML to A4 PDF with WeasyPrint, embedding Noto Sans CJK SC (:mod:`pipeline.report.fonts`).

Everything is written under ``reports/`` as one all-or-nothing replacement of the folder:
``reports/<year>/<county_code>.html|.pdf``, ``summary.html|.pdf``, and the published copies
``validation.html`` (from ``data/processed/validation/pages/validation_<year>.html``) and
the 整改台账 folder ``ledger/`` (from ``data/processed/evidence/<year>/``) when they exist.
"""

from __future__ import annotations

import concurrent.futures
import functools
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
from pipeline.io import outputs, read_json, read_parquet
from pipeline.report import charts, fonts, provenance, views

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
    pdf_workers: int  # processes converting HTML to PDF; 0 = one per CPU
    # indicator -> grade -> the standard in words, shown beside the burden / health items
    burden_standards: Mapping[str, Mapping[int, str]]
    # city summary: a problem type found in at least this share of the counties is "common"
    common_problem_share: float = 0.5
    organisation: str = "南宁市人民政府教育督导委员会办公室"

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
    return {
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


def build_reports(
    inp: views.Inputs,
    monitoring: MonitoringParams,
    params: ReportParams,
    *,
    has_validation: Mapping[int, bool] | None = None,
    has_evidence: Mapping[int, bool] | None = None,
    advance=lambda _n=1: None,
) -> dict[str, str]:
    """Render every report: ``{"<year>/<county_code>.html": html, "<year>/summary.html": html, ...}``.

    ``inp.indicators`` must already have passed :func:`views.prepare_indicators`.
    """
    rules = params.rules()
    style = _style(params)
    lk = views.Lookup(inp.indicators, inp.benchmarks)
    dataset = provenance.dataset_info(inp.manifest)
    css = (TEMPLATES / "report.css").read_text(encoding="utf-8")
    common = {
        "css": css,
        "dataset": dataset,
        "org": params.organisation,
        "suppression_note": params.suppression_note,
        "sdr_max": f"{params.quality_sdr_max:g}",
        # how the indicators stage built the 校际差异率 intervals (its method text says so)
        "icc_fisher": bool(
            inp.indicators.loc[inp.indicators["indicator"] == "school_difference_rate", "method"]
            .astype(str)
            .str.contains("Fisher's z", regex=False)
            .any()
        ),
        # the indicators stage's intervals on t(design df) (its method text says so)
        "ci_t": bool(
            inp.indicators["method"].astype(str).str.contains("from t(df", regex=False).any()
        ),
        "min_students": params.min_students,
        "min_schools": params.min_schools,
    }
    out: dict[str, str] = {}
    for year in years_of(inp):
        flags = {
            "has_validation": bool((has_validation or {}).get(year)),
            "has_evidence": bool((has_evidence or {}).get(year)),
        }
        counties = counties_of_year(inp, year, monitoring.city_code)
        for county in counties:
            v = views.county_view(inp, lk, year, county, monitoring, rules)
            html = (
                _env()
                .get_template("county.html.j2")
                .render(v=v, charts=_county_charts(v, params, style), **common, **flags)
            )
            out[f"{year}/{county}.html"] = html
            advance(1)
        v = views.summary_view(inp, lk, year, counties, monitoring, rules)
        out[f"{year}/summary.html"] = (
            _env()
            .get_template("summary.html.j2")
            .render(v=v, charts=_summary_charts(v, params, style), **common, **flags)
        )
        advance(1)
    return out


# ------------------------------------------------------------------------------------------------
# PDF
# ------------------------------------------------------------------------------------------------


class PdfWriter:
    """WeasyPrint with one font configuration and one font stylesheet reused for every document.

    The print rules (``print.css``) go into the document itself, after the screen styles, so they
    take precedence over them: WeasyPrint's ``stylesheets`` are *user* style sheets, which every
    author rule of the page overrides. Only the ``@font-face`` stays a user sheet (parsed once).
    """

    def __init__(self, page_size: str, font_path: Path):
        import weasyprint
        from weasyprint.text.fonts import FontConfiguration

        self._wp = weasyprint
        self.font_config = FontConfiguration()
        css = (TEMPLATES / "print.css").read_text(encoding="utf-8")
        self.print_css = css.replace("__PAGE__", page_size).replace("__FONT__", fonts.PDF_FAMILY)
        self.css = weasyprint.CSS(
            string=fonts.pdf_font_css(font_path), font_config=self.font_config
        )

    def write(self, html: str, target: Path) -> None:
        html = html.replace("</head>", f"<style>\n{self.print_css}</style>\n</head>", 1)
        doc = self._wp.HTML(string=html, base_url=str(TEMPLATES))
        doc.write_pdf(target, stylesheets=[self.css], font_config=self.font_config)


_WORKER: dict[tuple[str, str], PdfWriter] = {}


def _pdf_job(page_size: str, font_path: str, html: str, target: str) -> str:
    """One PDF in a worker process (the writer, its fonts and CSS are reused within the process)."""
    key = (page_size, font_path)
    if key not in _WORKER:
        _WORKER[key] = PdfWriter(page_size, Path(font_path))
    _WORKER[key].write(html, Path(target))
    return target


def write_pdfs(
    jobs: list[tuple[str, Path]], params: ReportParams, advance=lambda _n=1: None
) -> None:
    """Convert ``(html, target.pdf)`` pairs, in parallel over ``params.pdf_workers`` processes.

    Layout is WeasyPrint's cost (≈1–3 s per county report); documents are independent, so they are
    spread over the CPUs. Output bytes do not depend on the order or the number of workers.
    """
    with tempfile.TemporaryDirectory(prefix="eqm-font-") as tmp:
        font = fonts.font_file(params.font_file)
        if not fonts.fast_subsetting_available():
            log.info("未安装 libharfbuzz-subset0：先将字体裁剪为报告用到的字符，以加快 PDF 生成。")
            font = fonts.subset_for(font, [html for html, _ in jobs], Path(tmp) / "report-font.otf")
        _write_pdfs(jobs, params, font, advance)


def _write_pdfs(jobs, params: ReportParams, font: Path, advance) -> None:
    n = params.pdf_workers or (os.cpu_count() or 1)
    n = max(1, min(n, len(jobs)))
    if n == 1:
        writer = PdfWriter(params.page_size, font)
        for html, target in jobs:
            writer.write(html, target)
            advance(1)
        return
    methods = multiprocessing.get_all_start_methods()
    mp = multiprocessing.get_context("fork" if "fork" in methods else None)
    with concurrent.futures.ProcessPoolExecutor(max_workers=n, mp_context=mp) as pool:
        futures = [
            pool.submit(_pdf_job, params.page_size, str(font), html, str(t)) for html, t in jobs
        ]
        for fut in concurrent.futures.as_completed(futures):
            fut.result()
            advance(1)


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
    )


def stage_params(ctx: RunContext) -> ReportParams:
    """``report:`` of params.yaml plus the 校际差异率 standard ``monitoring.icc_threshold``."""
    return ctx.section(ReportParams, "report", quality_sdr_max=ctx.monitoring.icc_threshold)


def run(ctx: RunContext) -> None:
    params = stage_params(ctx)
    check_params(params)
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
    n_docs = sum(len(counties_of_year(inp, y, ctx.monitoring.city_code)) + 1 for y in years)
    with ctx.step("生成 HTML 报告", n_docs) as advance:
        htmls = build_reports(
            inp, ctx.monitoring, params,
            has_validation={y: f.is_file() for y, f in validation_pages.items()},
            has_evidence={y: d.is_dir() for y, d in ledger_dirs.items()},
            advance=advance,
        )  # fmt: skip
    t_html = time.perf_counter()
    with outputs() as out:
        root = out.directory(p.reports)
        for rel, html in htmls.items():
            target = root / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(html, encoding="utf-8")
        if params.build_pdf:
            with ctx.step("生成 PDF 报告", len(htmls)) as advance:
                write_pdfs(
                    [(html, (root / rel).with_suffix(".pdf")) for rel, html in htmls.items()],
                    params,
                    advance,
                )
        for y in years:
            (root / str(y)).mkdir(parents=True, exist_ok=True)
            if validation_pages[y].is_file():
                shutil.copyfile(validation_pages[y], root / str(y) / "validation.html")
            if ledger_dirs[y].is_dir():
                shutil.copytree(ledger_dirs[y], root / str(y) / "ledger")
    t_end = time.perf_counter()
    log.info(
        "报告：%d 个年份、%d 份 HTML%s，用时 %.1f 秒（HTML 与图表 %.1f 秒）→ %s",
        len(years), len(htmls), "及同名 PDF" if params.build_pdf else "",
        t_end - t0, t_html - t0, p.reports,
    )  # fmt: skip
