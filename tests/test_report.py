"""Report stage: rendered HTML and PDF read back (pypdf) for the things leadership must be able to trust.

The inputs are the independent fixture tables of ``tests/report_fixtures.py``; the stage is run once
per module (2 counties + the city summary, HTML and PDF).
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pypdf
import pytest
import report_fixtures as rf

from pipeline import report
from pipeline.config import Paths, make_context
from pipeline.errors import EqmError
from pipeline.report import formats, problems, verdicts, views

REPO = Path(__file__).resolve().parents[1]
YEAR = 2022
COUNTIES = ("450107", "450125")
NAMES = {"450107": "西乡塘区", "450125": "上林县"}


def _squash(text: str) -> str:
    """PDF text with every whitespace removed (CJK lines wrap anywhere)."""
    return re.sub(r"\s+", "", text)


@pytest.fixture(scope="module")
def rendered(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("report")
    shutil.copy(REPO / "params.yaml", root / "params.yaml")
    tables = rf.write_project(root, counties=COUNTIES, years=(YEAR,))
    report.run(make_context(root, quiet=True))
    out = Paths(root).report_year(YEAR)
    pdf_text, pdf_pages = {}, {}
    for name in (*COUNTIES, "summary"):
        reader = pypdf.PdfReader(out / f"{name}.pdf")
        pages = [p.extract_text() or "" for p in reader.pages]
        pdf_pages[name] = pages
        pdf_text[name] = _squash("".join(pages))
    html = {
        name: (out / f"{name}.html").read_text(encoding="utf-8") for name in (*COUNTIES, "summary")
    }
    return {
        "root": root,
        "out": out,
        "tables": tables,
        "pdf": pdf_text,
        "pages": pdf_pages,
        "html": html,
    }


# ------------------------------------------------------------------------------------------------
# Files
# ------------------------------------------------------------------------------------------------


def test_every_report_and_published_file_is_written(rendered):
    out, root = rendered["out"], rendered["root"]
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted(
        [f"{c}.{ext}" for c in (*COUNTIES, "summary") for ext in ("html", "pdf")]
        + ["validation.html", "ledger"]
    )
    p = Paths(root)
    assert (out / "validation.html").read_bytes() == (
        p.validation_pages / f"validation_{YEAR}.html"
    ).read_bytes()
    assert (out / "ledger" / "450107.xlsx").read_bytes() == (
        p.evidence_dir / str(YEAR) / "ledger" / "450107.xlsx"
    ).read_bytes()
    # nothing but the year folders: the whole reports/ folder is replaced, no temp files left behind
    assert sorted(x.name for x in p.reports.iterdir()) == [str(YEAR)]


def test_rerun_replaces_the_folder_and_drops_stale_files(tmp_path):
    shutil.copy(REPO / "params.yaml", tmp_path / "params.yaml")
    rf.write_project(tmp_path, counties=("450110",), years=(YEAR,), publish=False)
    stale = Paths(tmp_path).reports / "2019" / "old.html"
    stale.parent.mkdir(parents=True)
    stale.write_text("old", encoding="utf-8")
    ctx = make_context(tmp_path, quiet=True)
    ctx.params["report"] = {**ctx.params["report"], "build_pdf": False}
    report.run(ctx)
    assert not stale.exists()
    files = sorted(p.name for p in Paths(tmp_path).report_year(YEAR).iterdir())
    assert files == ["450110.html", "summary.html"]  # no PDF asked, nothing to publish


# ------------------------------------------------------------------------------------------------
# PDF content
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("county", COUNTIES)
def test_county_pdf_has_name_sdr_and_its_problem_titles(rendered, county):
    text = rendered["pdf"][county]
    assert NAMES[county] in text
    assert "校际差异率" in text
    probs = rendered["tables"]["problems"]
    mine = probs[(probs["county_code"] == county) & (probs["year"] == YEAR)]
    assert len(mine) >= 4
    for title in mine["title"]:
        assert _squash(title) in text, title
    other = probs[(probs["county_code"] != county) & (probs["year"] == YEAR)]
    for pid in other["problem_id"]:
        assert pid not in text  # another county's problem never shows up


@pytest.mark.parametrize("name", [*COUNTIES, "summary"])
def test_no_suppressed_number_on_any_page(rendered, name):
    # the planted suppressed estimates (flagged, or under 10 students without a flag)
    for shown in rf.SUPPRESSED_VALUES.values():
        pattern = r"(?<![\d.])" + re.escape(shown) + r"(?!\d)"
        assert not re.search(pattern, rendered["pdf"][name]), shown
        assert not re.search(pattern, rendered["html"][name]), shown
    # and the footnote explains the dash where one was used
    if name == COUNTIES[-1]:
        assert "—" in rendered["pdf"][name]
        assert _squash("学生少于 10 人或学校少于 3 所") in rendered["pdf"][name]


def test_official_sdr_is_shown_beside_the_local_estimate_and_decides(rendered):
    html = _visible(rendered["html"]["450107"])
    row = re.search(r"八年级语文\s+0\.161\s+0\.140\s+\S+\s+.*?否（官方值 ≥ 0\.15", html)
    assert row, "official 0.161 and local 0.140 side by side, verdict from the official value"
    assert "有官方值时以官方值判定" in rendered["pdf"]["450107"]


def test_pdf_has_page_numbers_and_a_true_table_of_contents(rendered):
    pages = rendered["pages"]["450107"]
    n = len(pages)
    assert n >= 6
    assert _squash(f"第 2 页 / 共 {n} 页") in _squash(pages[1])
    assert _squash(f"第 {n} 页 / 共 {n} 页") in _squash(pages[-1])
    toc = pages[0]
    for heading, entry in (
        ("七、方法与数据说明", "方法与数据说明"),
        ("六、问题清单与整改建议", "问题清单与整改建议"),
    ):
        # the first page after the cover (whose table of contents names every heading too)
        actual = next(i + 1 for i, p in enumerate(pages) if i and heading in _squash(p))
        m = re.search(re.escape(entry) + r"[\s.\u2060]*\.[\s.\u2060]*(\d+)\s*\n", toc)
        assert m, entry
        assert int(m.group(1)) == actual


def test_pdf_embeds_only_the_bundled_cjk_font(rendered):
    """Every glyph comes from the embedded Noto subset: renders where no CJK font is installed."""
    reader = pypdf.PdfReader(rendered["out"] / "450107.pdf")
    seen = set()
    for page in reader.pages:
        for font in (page["/Resources"].get("/Font") or {}).values():
            font = font.get_object()
            seen.add(str(font["/BaseFont"]))
            desc = font["/DescendantFonts"][0].get_object()["/FontDescriptor"].get_object()
            assert any(k in desc for k in ("/FontFile", "/FontFile2", "/FontFile3")), font[
                "/BaseFont"
            ]
    assert seen
    # the PostScript name inside the bundled file: no other font, no system font
    assert all("NotoSansCJKsc-Regular" in f for f in seen), seen


def test_synthetic_data_is_labelled_on_every_page(rendered):
    label = rf.manifest()["dataset"]["label"]
    for pages in rendered["pages"].values():
        for page in pages:
            assert "【演示数据】" in page
    assert _squash(label) in rendered["pdf"]["450107"]


# ------------------------------------------------------------------------------------------------
# HTML
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", [*COUNTIES, "summary"])
def test_html_is_self_contained(rendered, name):
    html = rendered["html"][name]
    for bad in ("http://", "https://", "//cdn", "@import", "file:"):
        assert bad not in html, bad
    for attr in re.findall(r'(?:src|href)="([^"]*)"', html):
        assert attr.startswith(("data:image/png;base64,", "#")) or re.fullmatch(
            r"[\w.-]+\.html", attr
        ), attr[:60]
    assert html.count("data:image/png;base64,") >= 2  # charts are inline


def test_school_name_with_markup_is_escaped(rendered):
    html = rendered["html"]["450107"]
    assert "<script" not in html.lower()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert rf.SCRIPT_SCHOOL in rendered["pdf"]["450107"]  # shown as text in the PDF


def test_failing_schools_are_listed_by_id_not_ranked(rendered):
    html = rendered["html"]["450107"]
    sc = rendered["tables"]["school_compliance"]
    failing = sc[(sc["county_code"] == "450107") & ~sc["passes"]]
    ids = [i for i in re.findall(r">(450107[PJ]\d\d)<", html)]
    listed = list(dict.fromkeys(ids))
    assert listed == sorted(failing["school_id"])


def test_data_quality_counts_come_from_the_quarantine(rendered):
    html = rendered["html"]["450125"]
    # 上林县 is the 2nd fixture county: 2 weight rows + 1 score row set aside (report_fixtures.quarantine)
    row = re.search(r"weight_positive</td>\s*<td[^>]*>(\d+)</td>", html)
    assert row and row.group(1) == "2"


# ------------------------------------------------------------------------------------------------
# Pure core: views, formats, parameters
# ------------------------------------------------------------------------------------------------


def _params(**over) -> report.ReportParams:
    ctx = make_context(REPO, quiet=True)
    p = report.stage_params(ctx)
    return dataclasses.replace(p, **over)


def _inputs(tables: dict, manifest=None) -> views.Inputs:
    return views.Inputs(
        indicators=views.prepare_indicators(tables["indicators"], _params().rules()),
        benchmarks=tables["county_reports"],
        resource_balance=tables["resource_balance"],
        school_compliance=tables["school_compliance"],
        problems=tables["problems"],
        quarantine=tables["quarantine"],
        validation_summary=tables["summary"],
        manifest=tables["manifest"] if manifest is None else manifest,
        comparisons=tables.get("comparisons"),
    )


def test_number_formats_follow_params():
    f = views.Fmt(_params().rules())
    assert f.num(512.345, "score") == "512.3"
    assert f.num(12.345, "percent") == "12.3%"
    assert f.num(0.15, "rate") == "0.150"
    assert f.num(-3.21, "score") == "−3.2"  # a real minus sign
    assert f.num(-0.04, "score") == "0.0"  # no "−0.0"
    assert f.num(float("nan"), "score") == views.MISSING
    assert f.est({"estimate": 512.3, "suppressed": True}, "score") == views.SUPPRESSED
    assert f.p(0.0004) == "<0.001"
    assert formats.level_label(3.0) == "Ⅲ 良好"
    assert formats.level_label(7) == views.MISSING
    assert views.group_label("gender", "female-male") == "女 − 男"
    assert views.group_label("urban_rural", "rural-urban") == "乡村 − 城区"
    assert views.group_label("unknown", "a-b") == "a − b"
    g = views.Fmt(dataclasses.replace(_params().rules(), rate_decimals=2))
    assert g.num(0.156, "rate") == "0.16"


def test_suppression_safety_net_and_official_preference():
    t = rf.tables(COUNTIES, (YEAR,))
    ind = views.prepare_indicators(t["indicators"], _params().rules())
    small = ind[ind["estimate"] == 876.5]
    assert len(small) == 1 and bool(small["suppressed"].iloc[0])  # 8 students, unflagged upstream
    lk = views.Lookup(ind, t["county_reports"])
    key = (YEAR, "450107", 8, "chinese", "school_difference_rate")
    assert lk.get(*key)["estimate"] == rf.OFFICIAL_SDR  # the official value is the one shown
    assert lk.official(*key)["estimate"] == rf.OFFICIAL_SDR
    assert lk.local(*key)["estimate"] == rf.LOCAL_SDR  # and the local estimate is kept beside it
    # the input frame is not mutated
    assert not t["indicators"].loc[t["indicators"]["estimate"] == 876.5, "suppressed"].iloc[0]


def test_charts_never_receive_suppressed_points():
    t = rf.tables(COUNTIES, (YEAR,))
    inp = _inputs(t)
    lk = views.Lookup(inp.indicators, inp.benchmarks)
    ctx = make_context(REPO, quiet=True)
    v = views.county_view(inp, lk, YEAR, "450125", ctx.monitoring, _params().rules())
    points = [p for _, pts in v["balance"]["gap_chart_rows"] for p in pts.values() if p]
    assert points and all(p[0] not in (987.6, 876.5) for p in points)
    sdr_points = [p for _, pts in v["balance"]["sdr_chart_rows"] for p in pts.values() if p]
    assert all(p[0] != 0.987 for p in sdr_points)
    assert views.SUPPRESSED in [c for row in v["balance"]["sdr"]["rows"] for c in row]


def test_any_county_in_the_data_gets_a_report_and_real_data_has_no_banner():
    t = rf.tables(("450126",), (YEAR,))  # 宾阳县: not one of the four sample counties
    ctx = make_context(REPO, quiet=True)
    real = {"dataset": {"synthetic": False, "label": ""}, "files": {}}
    htmls = report.build_reports(_inputs(t, manifest=real), ctx.monitoring, _params())
    assert sorted(htmls) == [f"{YEAR}/450126.html", f"{YEAR}/summary.html"]
    assert "宾阳县" in htmls[f"{YEAR}/450126.html"]
    assert "【演示数据】" not in htmls[f"{YEAR}/450126.html"]
    # deterministic: the same inputs give the same bytes
    again = report.build_reports(_inputs(t, manifest=real), ctx.monitoring, _params())
    assert again == htmls


# Typst runs on threads that a forked child does not inherit, and the stage forks its workers from
# this process: what typesets PDFs here (outside the stage) runs in a fresh interpreter instead.
_TYPESET = """
import json, sys
from pathlib import Path
from pipeline import report
from pipeline.config import make_context

root, county, out = Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3])
ctx = make_context(root, quiet=True)
params = report.stage_params(ctx)
renderer = report.Renderer(report.load_inputs(ctx, params), ctx.monitoring, params)
docs = report.documents(renderer.inp, ctx.monitoring)
font = report.fonts.font_file(params.font_file)
if county == "stage":  # the stage's PDFs twice: forked workers, then after Typst ran here
    first = report.write_reports(docs, renderer, out / "first")
    report.pdf.TypstWriter(report.pdf.font_folder(font, out), params.page_size)
    second = report.write_reports(docs, renderer, out / "second")
    print(json.dumps([first, second]))
    sys.exit()
doc = next(d for d in docs if d.county == county)
r = renderer.render(doc)
for name in ("a", "b"):
    folder = out / f"fonts-{name}"
    folder.mkdir()
    writer = report.pdf.TypstWriter(report.pdf.font_folder(font, folder), params.page_size)
    writer.write(r.kind, r.view, r.charts, renderer.common, r.flags, out / f"{name}.pdf")
"""


def _typeset(root: Path, what: str, out: Path, **env) -> str:
    done = subprocess.run(
        [sys.executable, "-c", _TYPESET, str(root), what, str(out)],
        capture_output=True, text=True, timeout=300, env={**os.environ, **env},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_every_page_size_of_the_parameters_has_a_typst_paper():
    assert set(report.pdf.PAPER) == set(report.PAGE_SIZES)


def test_pdf_bytes_are_stable(rendered, tmp_path):
    _typeset(rendered["root"], COUNTIES[0], tmp_path)
    assert (tmp_path / "a.pdf").read_bytes() == (tmp_path / "b.pdf").read_bytes()


def test_a_process_that_ran_typst_renders_pdfs_without_forking(rendered, tmp_path):
    """Forked after Typst ran in the parent, a worker would wait forever for Typst's threads: the
    stage then renders in its own process (1), and still writes every PDF."""
    out = _typeset(rendered["root"], "stage", tmp_path, EQM_REPORT_WORKERS="2")
    assert json.loads(out.strip().splitlines()[-1]) == [2, 1]
    first, second = (
        sorted(p.relative_to(tmp_path / d) for p in (tmp_path / d).rglob("*.pdf"))
        for d in ("first", "second")
    )
    assert first == second and len(first) == len(COUNTIES) + 1


def test_missing_indicators_is_a_clear_error(project_root):
    with pytest.raises(EqmError) as exc:
        report.run(make_context(project_root, quiet=True))
    assert "indicators.parquet" in str(exc.value)
    assert "eqm indicators" in str(exc.value)


@pytest.mark.parametrize(
    ("key", "value", "words"),
    [
        ("page_size", "A9", "page_size"),
        ("chart_dpi", 5, "chart_dpi"),
        ("quality_min_level", "V", "quality_min_level"),
    ],
)
def test_bad_params_are_rejected(project_root, key, value, words):
    rf.write_project(project_root, counties=("450107",), years=(YEAR,), publish=False)
    ctx = make_context(project_root, quiet=True)
    ctx.params["report"] = {**ctx.params["report"], key: value}
    with pytest.raises(EqmError) as exc:
        report.run(ctx)
    assert words in str(exc.value)
    assert not Paths(project_root).reports.exists()  # nothing written


def test_unknown_params_key_is_rejected():
    ctx = make_context(REPO, quiet=True)
    ctx.params["report"] = {**ctx.params["report"], "colour": "red"}
    with pytest.raises(EqmError, match="colour"):
        ctx.section(report.ReportParams, "report")


def test_evidence_json_is_read_defensively():
    assert problems.parse_evidence("not json")["rows"] == []
    assert problems.parse_evidence(None)["rows"] == []
    assert problems.parse_evidence('[{"indicator": "mean_score"}]')["rows"] == [
        {"indicator": "mean_score"}
    ]
    ev = problems.parse_evidence('{"rows": [{"a": 1}], "benchmark_rows": "x", "previous": 3}')
    assert ev["rows"] == [{"a": 1}] and ev["benchmark_rows"] == [] and ev["previous"] is None
    # the new keys: measures, trend, unmatched; absent or malformed ones fall back
    assert ev["measures"] == [] and ev["trend"] is None and ev["unmatched"] is False
    ev = problems.parse_evidence(
        '{"measures": [{"rule_id": "MEAN", "bench_label": "全国"}, 5], "unmatched": true,'
        ' "trend": [{"year": 2019, "value": 0.2}, {"year": 2022, "value": 0.1}]}'
    )
    assert ev["measures"] == [{"rule_id": "MEAN", "bench_label": "全国"}]
    assert ev["bench_label"] == "全国" and ev["unmatched"] is True
    f = views.Fmt(_params().rules())
    assert problems.trend_text(f, ev["trend"], "rate") == "2019 年 0.200 → 2022 年 0.100"
    assert problems.trend_text(f, {"x": 1}, "rate") == ""


def test_validation_summary_without_quarantine_is_shown_as_counts():
    # an unknown shape: numeric leaves shown as they are
    dq = views.data_quality(None, {"checks": {"students": {"rows_set_aside": 4}}}, YEAR, "450107")
    assert ("checks / students / rows_set_aside", "4") in dq["raw"]
    # the validate stage's shape: per table rows in / passed / set aside
    summary = {
        "tables": {
            "students": {"rows_in": 10, "passed": 8, "quarantined": 2, "ingest_quarantined": 1}
        }
    }
    dq = views.data_quality(None, summary, YEAR, None)
    assert dq["tables"]["rows"] == [["学生数据", "10", "8", "2", "1"]] and dq["raw"] == []
    assert views.data_quality(None, None, YEAR, None)["raw"] == []
    assert views.data_quality(pd.DataFrame(), None, YEAR, None)["table"]["rows"] == []


# ------------------------------------------------------------------------------------------------
# Readability for leadership (burden conclusions, numerals, SE units, city 摘要)
# ------------------------------------------------------------------------------------------------


def _row(est, suppressed=False):
    return {"estimate": est, "suppressed": suppressed}


def _cmp(verdict, scope="nation", **kw):
    return {"verdict": verdict, "bench_scope": scope, "benchmark": 20.0, **kw}


def test_burden_conclusion_is_the_comparisons_verdict_never_a_guess():
    f = views.Fmt(_params().rules())
    hw, sleep = "pct_homework_over_limit", "pct_sleep_sufficient"
    high = {"severity": "高"}
    # a comparison row: its label (schemas.VERDICT_LABELS + the benchmark's name)
    lt = views.burden_conclusion(f, hw, _row(38.7), _cmp("worse"), high)
    assert (lt["state"], lt["text"]) == ("fail", "显著差于全国（已列入问题清单，高）")
    lt = views.burden_conclusion(f, sleep, _row(22.4), _cmp("worse"), {"severity": "中"})
    assert (lt["state"], lt["text"]) == ("warn", "显著差于全国（已列入问题清单，中）")
    assert views.burden_conclusion(f, hw, _row(30.0), _cmp("worse", "configured"), None)[
        "text"
    ] == ("显著差于本地设定值")
    assert views.burden_conclusion(f, sleep, _row(60.8), _cmp("better"))["text"] == "显著优于全国"
    assert views.burden_conclusion(f, sleep, _row(60.8), _cmp("better", "province"))["text"] == (
        "显著优于全省（区）"
    )
    # a value on the better side whose test found no difference is not called better
    assert views.burden_conclusion(f, hw, _row(12.8), _cmp("no_difference"))["text"] == (
        "与全国无显著差异"
    )
    assert views.burden_conclusion(f, hw, _row(12.8), _cmp("untested"))["text"] == "未检验"
    # no comparison row (an older run): never a direction; a listed problem is still said
    assert views.burden_conclusion(f, hw, _row(12.8), None, None)["text"] == "未检验"
    assert views.burden_conclusion(f, hw, _row(38.7), None, high)["text"] == "已列入问题清单（高）"
    # negative: a suppressed or absent value gets no conclusion at all
    assert views.burden_conclusion(f, hw, _row(12.8, True), _cmp("worse"), high)["state"] == "na"
    assert views.burden_conclusion(f, hw, None, _cmp("better"), None)["state"] == "na"


def test_verdict_labels_come_from_the_schemas_vocabulary():
    from pipeline import schemas
    from pipeline.report import verdicts

    assert verdicts.verdict_label(None) == schemas.VERDICT_LABELS["untested"]
    assert verdicts.verdict_label({"verdict": "worse", "bench_scope": "nation"}) == "显著差于全国"
    assert verdicts.verdict_label({"verdict": "no_difference", "bench_scope": "standard"}) == (
        "与标准无显著差异"
    )
    assert verdicts.verdict_label({"verdict": "nonsense", "bench_scope": "nation"}) == "未检验"


def test_untested_previous_problem_does_not_mark_a_burden_item():
    probs = pd.DataFrame([
        {"grade": 4, "indicator": "pct_fitness_pass", "severity": "高", "value": float("nan"),
         "previous_status": "not re-measured"},
        {"grade": 8, "indicator": "pct_homework_over_limit", "severity": "中", "value": 30.0,
         "previous_status": "worse"},
    ])  # fmt: skip
    flagged = views.open_by_indicator(probs)
    assert (4, "pct_fitness_pass") not in flagged
    assert flagged[(8, "pct_homework_over_limit")] == {"severity": "中"}


def test_burden_rows_show_value_standard_reference_and_conclusion(rendered):
    ind = rendered["tables"]["indicators"]
    for county in COUNTIES:
        r = ind[(ind["year"] == YEAR) & (ind["county_code"] == county) & (ind["grade"] == 8)
                & (ind["indicator"] == "pct_homework_over_limit") & (ind["group_var"] == "")].iloc[0]  # fmt: skip
        text = rendered["pdf"][county]
        # the fixture's grade-8 homework value, the 双减 standard (params), the benchmark the
        # comparison used (national 18.0) and its verdict, with the HOMEWORK problem's severity
        assert f"{r['estimate']:.1f}%" in text
        assert "标准：书面作业每天≤90分钟参照：全国18.0%" in text
        assert "显著差于全国（已列入问题清单，中）" in text
        assert "睡眠每天≥10小时" in text and "体质测试≥60分为及格" in text
        # 视力不良 is compared with the national 视力不良 figure; no 近视率 target is printed
        assert "与全国视力不良比例比较" in text
        assert "近视率2030年目标" not in text and "2030" not in text
        assert "视力不良比例（视力低于正常标准的学生比例，不等于近视率）" in text


def test_better_label_only_where_a_comparison_row_says_better(rendered):
    """The first county's grade-4 homework (12.8% vs national 18.0%) is on the better side, but
    its comparison says no difference; its grade-4 sleep (70.0% vs 60.0%) is tested better."""
    html = _visible(rendered["html"]["450107"])
    hw = re.search(
        r"四年级 书面作业超时比例\s+12\.8%.{0,120}?(显著优于全国|与全国无显著差异)", html
    )
    assert hw and hw.group(1) == "与全国无显著差异"
    sleep = re.search(r"四年级 睡眠达标比例\s+70\.0%.{0,120}?(显著优于全国|与全国无显著差异)", html)
    assert sleep and sleep.group(1) == "显著优于全国"
    # grade-8 fitness has no comparison row: 未检验, whatever its value
    assert re.search(r"八年级 体质健康达标比例\s+[\d.]+%.{0,120}?未检验", html)


def test_no_better_label_anywhere_without_comparisons(tmp_path, caplog):
    """An older run (no comparisons.parquet, old problems.parquet) still renders: every label is
    未检验, none is invented, a warning says why."""
    shutil.copy(REPO / "params.yaml", tmp_path / "params.yaml")
    t = rf.tables(COUNTIES, (YEAR,), old_format=True)
    rf.write_project(tmp_path, counties=COUNTIES, years=(YEAR,), tables=t, publish=False)
    ctx = make_context(tmp_path, quiet=True)
    ctx.params["report"] = {**ctx.params["report"], "build_pdf": False}
    with caplog.at_level("WARNING"):
        report.run(ctx)
    assert "comparisons.parquet" in caplog.text
    out = Paths(tmp_path).report_year(YEAR)
    for name in (*COUNTIES, "summary"):
        text = _visible((out / f"{name}.html").read_text(encoding="utf-8"))
        text = text.split("七、方法与数据说明")[0]  # the methods explain the words
        assert "优于" not in text and "显著差于" not in text, name
        assert "部分达标" not in text
    county = _visible((out / "450107.html").read_text(encoding="utf-8"))
    assert "未检验" in county
    assert "已列入问题清单（中）" in county  # the listed HOMEWORK problem is still said
    # the old run's close-out is not a problem; its 待复核 row still is
    probs = t["problems"]
    mine = probs[probs["county_code"] == "450107"]
    n_open = int((mine["status"] != "建议销号").sum())
    assert f"本轮问题清单共 {n_open} 个问题" in county


def _visible(html: str) -> str:
    html = re.sub(r'src="data:[^"]*"', "", html)
    html = re.sub(r"<style>.*?</style>", "", html, flags=re.S)
    return re.sub(r"<[^>]+>", " ", html)


@pytest.mark.parametrize("name", [*COUNTIES, "summary"])
def test_levels_use_the_contracts_roman_numerals(rendered, name):
    text = _visible(rendered["html"][name])
    assert "Ⅲ" in text
    # no ASCII numerals for levels (ICC(1) and ids like "G8" are not levels)
    assert not re.search(r"(?<![A-Za-z0-9(])(?:I{1,3}|IV)(?![A-Za-z0-9)])", text), re.search(
        r".{20}(?<![A-Za-z0-9(])(?:I{1,3}|IV)(?![A-Za-z0-9)]).{20}", text
    )


def test_se_and_gaps_of_percentages_are_percentage_points():
    f = views.Fmt(_params().rules())
    assert f.spread(4.163, "percent") == "4.2 个百分点"  # 1 decimal (params), never "%"
    assert f.spread(-25.61, "percent") == "−25.6 个百分点"
    assert f.spread(0.0751, "rate") == "0.075"
    assert f.spread(-1.0, "level") == "−1 级"
    assert f.spread(float("nan"), "percent") == views.MISSING


@pytest.mark.parametrize("county", COUNTIES)
def test_no_percent_sign_on_an_se_or_gap(rendered, county):
    html = rendered["html"][county]
    facts = re.findall(r"<b>(标准误|差距)：</b>([^<]*)", html)
    assert facts, "problem facts missing"
    assert not [v for _, v in facts if v.strip().endswith("%")], facts
    assert "个百分点" in html  # the fixture's HOMEWORK problem (value 30.0 vs 18.0)


def test_previous_status_in_chinese_with_the_schemas_vocabulary(rendered):
    from pipeline import schemas

    text = rendered["pdf"]["450107"]
    # fixture: ICC improved, HOMEWORK worse, FITNESS not re-measured, RES new
    for code in ("improved", "worse", "not re-measured", "new"):
        assert schemas.PREVIOUS_STATUS_LABELS[code] in text, code
    for word in ("improved", "worse", "加重", "无明显变化", "已改善", "新发现", "本轮未监测"):
        assert word not in text, word
    summary = rendered["pdf"]["summary"]
    for code in ("new", "improved", "unchanged", "worse", "not re-measured"):
        assert schemas.PREVIOUS_STATUS_LABELS[code] in summary, code
    assert not hasattr(views, "PREVIOUS_STATUS_LABELS") and not hasattr(views, "STATUS_LABELS")


def _overview(html: str) -> str:
    """The summary's 「各区县主要结果」 section (counties side by side)."""
    return html.split("四、各区县主要结果")[1].split("五、学业表现")[0]


def test_summary_opens_with_counties_side_by_side_in_code_order(rendered):
    html = rendered["html"]["summary"]
    overview = _overview(html)
    header = re.search(r"<thead>(.*?)</thead>", overview, re.S).group(1)
    names = [NAMES[c] for c in sorted(COUNTIES)]
    pos = [header.index(n) for n in names]
    assert pos == sorted(pos)  # code order, never by result
    for item in ("学业水平", "校际差异率（<0.15）".replace("<", "&lt; "), "资源配置差异系数达标项",
                 "达标学校", "书面作业超时比例", "问题数（高 / 中 / 低；不含建议销号）", "上一轮问题",
                 "优质均衡质量指标", "政府保障程度", "社会认可度"):  # fmt: skip
        assert item in overview, item
    for c in COUNTIES:
        assert (
            f'href="{c}.html"' in html.split("二、整改任务分解")[0]
        )  # linked beside the conclusions
    # the first page of the PDF holds the conclusions in sentences, and no ranking wording anywhere
    first = _squash(rendered["pages"]["summary"][0])
    assert "一、主要结论" in first and all(n in first for n in names)
    assert "二、整改任务分解" not in first  # the task map starts on page 2
    assert "排名" not in rendered["pdf"]["summary"] and "排名" not in html
    for c in COUNTIES:
        assert "排名" not in rendered["pdf"][c]


# ------------------------------------------------------------------------------------------------
# First round, alignment, header widths (issue 6 review of the 2020 demo round)
# ------------------------------------------------------------------------------------------------


def _views(t: dict, previous_problems=None) -> tuple[dict, dict]:
    ctx = make_context(REPO, quiet=True)
    inp = dataclasses.replace(_inputs(t), previous_problems=previous_problems)
    lk = views.Lookup(inp.indicators, inp.benchmarks)
    rules = _params().rules()
    county = views.county_view(inp, lk, YEAR, "450125", ctx.monitoring, rules)
    summary = views.summary_view(inp, lk, YEAR, list(COUNTIES), ctx.monitoring, rules)
    return county, summary


def test_first_round_says_so_instead_of_zero_previous_counts():
    t = rf.tables(COUNTIES, (YEAR,))
    t["problems"] = t["problems"].assign(previous_status="new")  # nothing was re-checked
    county, summary = _views(t)
    overview = summary["overview"]["table"]
    assert not any(r[0].startswith("上一轮问题") for r in overview["rows"])  # no 0 / 0 / 0 / 0 row
    assert views.FIRST_ROUND_TEXT in overview["note"]
    assert summary["first_round"] and "改善" not in summary["problems"]["columns"]
    assert county["problems"]["first_round"] and county["problems"]["previous_counts"] == []
    assert {r[4] for r in county["problems"]["overview"]["rows"]} == {"首轮"}


def test_a_previous_list_of_an_earlier_year_is_not_a_first_round():
    t = rf.tables(COUNTIES, (YEAR,))
    t["problems"] = t["problems"].assign(previous_status="new")
    prev = pd.DataFrame({"problem_id": ["P-1"], "year": [YEAR - 2], "county_code": ["450125"]})
    county, summary = _views(t, previous_problems=prev)
    rows = summary["overview"]["table"]["rows"]
    prev_row = next(r for r in rows if r[0].startswith("上一轮问题"))
    assert prev_row[1:] == ["0/0/0/0"] * len(COUNTIES)  # all new: nothing improved / worse
    assert not county["problems"]["first_round"] and not summary["first_round"]
    assert "新问题" in summary["problems"]["columns"]
    # a previous list of the SAME year is not a previous round
    same = prev.assign(year=YEAR)
    assert views.is_first_round(dataclasses.replace(_inputs(t), previous_problems=same), YEAR)


def test_first_round_in_the_rendered_county_report(tmp_path):
    root = tmp_path
    shutil.copy(REPO / "params.yaml", root / "params.yaml")
    tables = rf.tables(COUNTIES, (YEAR,))
    tables["problems"] = tables["problems"].assign(previous_status="new")
    rf.write_project(root, counties=COUNTIES, years=(YEAR,), tables=tables)
    report.run(make_context(root, quiet=True))
    out = Paths(root).report_year(YEAR)
    text = _squash("".join(p.extract_text() for p in pypdf.PdfReader(out / "450125.pdf").pages))
    assert views.FIRST_ROUND_TEXT in text and "与上一轮相比" not in text
    summary = _squash("".join(p.extract_text() for p in pypdf.PdfReader(out / "summary.pdf").pages))
    assert views.FIRST_ROUND_TEXT in summary and "0/0/0/0" not in summary


def test_columns_are_aligned_as_a_whole():
    t = views._table(
        ["区县", "均值", "水平", "人数"],
        [
            ["甲", "433.7", "III 良好", "12"],
            ["乙", "—", "II 中等", "…"],
            ["丙", "12.5%", "0.1", ""],
        ],
    )
    cls = [[c.split()[0] for c in r] for r in t["classes"]]
    assert [r[1] for r in cls] == ["n"] * 3  # numbers right, placeholders follow their column
    assert [r[2] for r in cls] == ["t"] * 3  # a text column keeps a number cell on the left too
    assert [r[3] for r in cls] == ["n"] * 3
    forced = views._table(["项目", "甲"], [["a", "III 良好"], ["b", "12.5%"]], align=["t", "c"])
    assert [r[1].split()[0] for r in forced["classes"]] == ["c", "c"]


def test_summary_overview_cells_are_centred_and_headers_do_not_wrap(rendered):
    html = rendered["html"]["summary"]
    overview = _overview(html)
    body = re.search(r"<tbody>(.*?)</tbody>", overview, re.S).group(1)
    classes = re.findall(r'<td class="([^"]*)"', body)
    per_row = len(COUNTIES) + 1
    assert all(c.split()[0] == "c" for i, c in enumerate(classes) if i % per_row)
    # the county achievement header 全国中等及以上 is on one line of the PDF (it used to be split
    # over four), read back with pypdf line by line
    for county in COUNTIES:
        lines = "\n".join(rendered["pages"][county]).splitlines()
        assert any("全国中等及以上" in ln.replace(" ", "") for ln in lines), county


def test_quarantine_rules_are_shown_in_chinese_not_as_ids():
    from pipeline.report.views import data_quality

    q = pd.DataFrame(
        {
            "table": ["scores", "students"],
            "rule": ["duplicate_score;student_quarantined", "ingest.not_a_number"],
            "message": ["m1", "m2"],
            "year": [2022, 2022],
            "county_code": ["450107", "450107"],
        }
    )
    text = str(data_quality(q, {}, 2022, "450107")["table"])
    # the catalogue in pipeline/schemas/rules.py, one label per id, joined with '；'
    assert (
        "同一学生同一学科的成绩重复且内容不同（各副本均已隔离）；这名学生的学生数据行已被隔离，其成绩一并隔离"
        in text
    )
    assert "应为数字的单元格不是数字" in text
    assert "duplicate_score" not in text and "ingest.not_a_number" not in text


@pytest.mark.parametrize(
    ("row", "state", "text"),
    [
        # verdicts by hand from the definitions: ci_high < 0.15 below, ci_low >= 0.15 above
        ({"estimate": 0.10, "ci_low": 0.05, "ci_high": 0.14}, "pass",
         "是（< 0.15；置信区间整体低于 0.15）"),
        ({"estimate": 0.10, "ci_low": 0.05, "ci_high": 0.30}, "pass",
         "是（< 0.15；置信区间含 0.15，尚难定论）"),
        ({"estimate": 0.30, "ci_low": 0.15, "ci_high": 0.50}, "fail",
         "否（≥ 0.15；置信区间整体高于 0.15）"),
        ({"estimate": 0.30, "ci_low": 0.02, "ci_high": 0.60}, "fail",
         "否（≥ 0.15；置信区间含 0.15，尚难定论）"),
        # an official value printed without SE has no interval: the value alone
        ({"estimate": 0.30, "ci_low": float("nan"), "ci_high": float("nan")}, "fail",
         "否（≥ 0.15）"),
        ({"estimate": 0.30, "ci_low": 0.2, "ci_high": 0.4, "suppressed": True}, "na", "无法判定"),
    ],
)  # fmt: skip
def test_sdr_verdict_text_says_what_the_interval_says(row, state, text):
    got = verdicts.sdr_row_light(row, 0.15)
    assert (got["state"], got["text"]) == (state, text)


def test_numbers_near_the_standard_keep_their_side():
    f = views.Fmt(_params().rules())
    assert f.num_against(0.1497, "rate", 0.15) == "0.1497"  # not "0.150" beside "below 0.15"
    assert f.num_against(0.15004, "rate", 0.15) == "0.15004"
    assert f.num_against(0.1499996, "rate", 0.15) == "0.14999"  # rounded away from 0.15
    assert (
        f.num_against(0.15, "rate", 0.15) == "0.150" and f.num_against(0.2, "rate", 0.15) == "0.200"
    )
    row = {"estimate": 0.1, "ci_low": 0.05, "ci_high": 0.1497}
    assert f.ci_against(row, "rate", 0.15) == "0.050～0.1497"
    assert f.p(0.0504) == "0.050" and f.p(0.0496) == "0.0496"


def test_sdr_findings_say_what_the_intervals_bear_out():
    f, rules = views.Fmt(_params().rules()), _params().rules()

    class _Lk:  # local estimates only (no official value): Lookup's interface
        def __init__(self, rows):
            self.rows = rows

        def local(self, year, county, g, s, indicator):
            return self.rows.get((g, s))

        def official(self, year, county, g, s, indicator):
            return None

        get = local

    def sdr(est, lo, hi, **kw):
        return {
            "estimate": est,
            "ci_low": lo,
            "ci_high": hi,
            "indicator": "school_difference_rate",
            **kw,
        }

    cells = [(4, "chinese"), (8, "chinese"), (8, "arts")]
    lk = _Lk({(4, "chinese"): sdr(0.30, 0.18, 0.52), (8, "chinese"): sdr(0.155, 0.001, 0.56),
              (8, "arts"): sdr(0.05, 0.01, 0.20)})  # fmt: skip
    text = "".join(views._sdr_findings(f, lk, 2022, "450107", cells, rules))
    assert "未低于 0.15 的学科：四年级语文 0.300、八年级语文 0.155" in text
    assert "；其中 1 项的 95% 置信区间整体高于 0.15，1 项的区间包含 0.15，尚难定论。" in text
    # a value without an interval (official, no SE) is not described as "containing 0.15"
    nan = float("nan")
    lk = _Lk({(4, "chinese"): sdr(0.20, nan, nan), (8, "chinese"): sdr(0.30, 0.18, 0.52),
              (8, "arts"): sdr(0.1497, 0.05, 0.1497)})  # fmt: skip
    text = "".join(views._sdr_findings(f, lk, 2022, "450107", cells, rules))
    assert (
        "未低于 0.15 的学科：四年级语文 0.200、八年级语文 0.300；其中 1 项的 95% 置信区间整体高于 0.15。"
        in text
    )
    assert "尚难定论" not in text
    lk = _Lk({(4, "chinese"): sdr(0.05, 0.01, 0.12), (8, "chinese"): sdr(0.10, 0.02, 0.30),
              (8, "arts"): sdr(0.1, 0.0, 0.2, suppressed=True)})  # fmt: skip
    text = "".join(views._sdr_findings(f, lk, 2022, "450107", cells, rules))
    assert (
        "已显示的各学科校际差异率均低于 0.15，但其中 1 项的 95% 置信区间包含 0.15，尚难定论。"
        in text
    )
    assert "另有 1 个学科的校际差异率因样本不足未予显示。" in text


def test_summary_marks_sdr_verdicts_the_interval_leaves_open(rendered):
    """A 校际差异率 cell whose 95% CI contains 0.15 carries † and the table explains it; a cell
    whose CI lies wholly on one side does not (counted from the fixture's own rows)."""
    ind = rendered["tables"]["indicators"]
    sdr = ind[(ind["indicator"] == "school_difference_rate") & (ind["year"] == YEAR)
              & ind["county_code"].isin(COUNTIES)]  # fmt: skip
    # the value shown: an official one wins over the computed one (domain notes)
    shown = sdr.sort_values("source", key=lambda s: s.eq("official")).drop_duplicates(
        ["county_code", "grade", "subject"], keep="last"
    )
    shown = shown[~shown["suppressed"].astype(bool)]
    open_ = shown[(shown["ci_low"] < 0.15) & (shown["ci_high"] >= 0.15)]
    assert 0 < len(open_) < len(shown)  # the fixture has both kinds
    overview = _overview(rendered["html"]["summary"])
    assert overview.count("†）") == len(open_)
    assert "† 95% 置信区间包含 0.15，达标与否尚难定论。" in overview


def test_source_file_table_shows_separator_and_header_rows():
    manifest = {"files": {
        "students/s.txt": {"format": "csv", "encoding": "utf-16", "delimiter": "tab",
                           "header_row": 2, "header_rows": 1, "rows_read": 3, "rows_kept": 3,
                           "rows_quarantined": 0},
        "schools/s.xlsx": {"format": "xlsx", "encoding": None, "delimiter": None, "header_row": 3,
                           "header_rows": 2, "rows_read": 2, "rows_kept": 2, "rows_quarantined": 0},
        "scores/s.csv": {"format": "csv", "encoding": "gbk", "delimiter": "comma", "header_row": 1,
                         "rows_read": 5, "rows_kept": 5, "rows_quarantined": 0},
    }}  # fmt: skip
    t = views.source_files(manifest)
    assert t["columns"][3] == "表头所在行"
    rows = {r[0]: r for r in t["rows"]}
    assert rows["students/s.txt"][1:4] == ["csv（制表符分隔）", "utf-16", "2"]
    assert rows["schools/s.xlsx"][1:4] == ["xlsx", "", "3–4"]
    assert rows["scores/s.csv"][1:4] == ["csv", "gbk", "1"]  # comma is not spelled out


# ------------------------------------------------------------------------------------------------
# Verdicts that contradicted the rule (优质均衡 quality item, 校际差异率, close-outs)
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", [*COUNTIES, "summary"])
def test_no_page_says_partly_met_or_pools_the_city(rendered, name):
    for text in (rendered["pdf"][name], _visible(rendered["html"][name])):
        assert "部分达标" not in text
        assert "全市（合并）" not in text


def test_level_two_with_a_small_sdr_is_not_met():
    """The issue's case: level Ⅱ with 校际差异率 0.015 was 「达标」 in the summary. The item needs
    level ≥ Ⅲ AND 校际差异率 < 0.15, so it is 未达标 (level fails), and so is the county's item."""
    t = rf.tables(COUNTIES, (YEAR,))
    county, summary = _views(t)
    g, s = rf.LEVEL_II_CELL
    item = next(q for q in county["quality"] if q["label"] == views.cell_label(g, s))
    assert item["light"]["state"] == "fail"
    assert item["light"]["text"] == "未达标：学业水平Ⅱ，未达到Ⅲ"
    assert item["sdr"] == "0.015"
    assert county["quality_overall"]["state"] == "fail"
    row = summary["overview"]["table"]["rows"][0]
    assert row[0].startswith("优质均衡质量指标")
    assert row[1 + sorted(COUNTIES).index("450125")].startswith("未达标")
    # the summary never calls the county's quality item met
    assert not row[1 + sorted(COUNTIES).index("450125")].startswith("达标")


def _lk_rows(rows: dict):
    """A Lookup double: (indicator) -> row for one cell; official rows under ('official', ind)."""

    class _Lk:
        def get(self, *key):
            return rows.get(("official", key[4])) or rows.get(key[4])

        def official(self, *key):
            return rows.get(("official", key[4]))

        def local(self, *key):
            return rows.get(key[4])

    return _Lk()


@pytest.mark.parametrize(
    ("rows", "state", "text"),
    [
        # both parts met (strictly below 0.15)
        ({"achievement_level": {"estimate": 3.0}, "school_difference_rate": {"estimate": 0.149}},
         "pass", "达标"),
        # 0.15 is not below 0.15
        ({"achievement_level": {"estimate": 4.0}, "school_difference_rate": {"estimate": 0.15}},
         "fail", "未达标：校际差异率 0.150 ≥ 0.15"),
        # the official value decides over the local estimate
        ({"achievement_level": {"estimate": 3.0}, "school_difference_rate": {"estimate": 0.10},
          ("official", "school_difference_rate"): {"estimate": 0.161}},
         "fail", "未达标：校际差异率官方值 0.161 ≥ 0.15"),
        # one part cannot be judged, the other is met: 无法判定 with the reason
        ({"achievement_level": {"estimate": 3.0},
          "school_difference_rate": {"estimate": 0.1, "suppressed": True}},
         "na", "无法判定：校际差异率样本不足，不予显示"),
        ({"school_difference_rate": {"estimate": 0.1}}, "na", "无法判定：无学业水平数据"),
        # a part that fails decides even when the other cannot be judged
        ({"achievement_level": {"estimate": 2.0}}, "fail", "未达标：学业水平Ⅱ，未达到Ⅲ"),
        # a local estimate ≤ 0 is below 0.15
        ({"achievement_level": {"estimate": 3.0}, "school_difference_rate": {"estimate": -0.01}},
         "pass", "达标"),
    ],
)  # fmt: skip
def test_quality_item_needs_level_three_and_sdr_below_the_standard(rows, state, text):
    f = views.Fmt(_params().rules())
    rows = {k: {"indicator": k if isinstance(k, str) else k[1], **v} for k, v in rows.items()}
    item = verdicts.quality_item(f, _lk_rows(rows), YEAR, "450107", 4, "chinese", _params().rules())
    assert (item["light"]["state"], item["light"]["text"]) == (state, text)


def test_county_quality_item_is_met_only_when_every_item_is():
    def it(state):
        return {"light": {"state": state}}

    assert verdicts.quality_overall([it("pass"), it("pass")])["state"] == "pass"
    assert verdicts.quality_overall([it("pass"), it("fail"), it("na")])["text"] == (
        "未达标（3 个年级学科中 1 个未达标，1 个无法判定）"
    )
    assert verdicts.quality_overall([it("pass"), it("na")])["state"] == "na"
    assert verdicts.quality_overall([])["state"] == "na"


def test_four_domains_are_named_where_standing_is_summarised(rendered):
    for name in (*COUNTIES, "summary"):
        text = rendered["pdf"][name]
        assert "政府保障程度" in text and "社会认可度" in text, name
        assert "结论不等于优质均衡督导评估的结论" in text, name


def test_nonpositive_sdr_is_printed_as_zero_with_its_footnote(rendered):
    """The fixture's local ANOVA estimate −0.010 (上林县 八年级艺术): never printed as a negative
    rate; 0 with ‡ and the note, and still 达标 (no between-school difference found)."""
    html = _visible(rendered["html"]["450125"])
    g, s = rf.NONPOS_CELL
    row = re.search(views.cell_label(g, s) + r"\s+0 ‡\s+(\S+)", html)
    assert row, "0 ‡ in the 校际差异率 table"
    assert "−0.010" not in html and "-0.010" not in html
    note = "方差分析估计值小于等于 0，记为 0：未检出校间差异"
    assert note in html and _squash(note) in rendered["pdf"]["450125"]
    assert note in _visible(rendered["html"]["summary"])
    f = views.Fmt(_params().rules())
    assert verdicts.sdr_value_text(f, {"estimate": 0.0}, 0.15) == "0 ‡"
    assert verdicts.sdr_value_text(f, {"estimate": 0.001}, 0.15) == "0.001"


def test_pooled_counties_row_is_named_and_has_no_verdict():
    t = rf.tables(COUNTIES, (YEAR,))
    _, summary = _views(t)
    sdr = summary["sdr"]
    pooled = [r for r in sdr["rows"] if r[1] == views.POOLED_NAME]
    assert len(pooled) == len(rf.ROTATION[YEAR][4]) + len(rf.ROTATION[YEAR][8])
    assert all(r[-1] == views.SUPPRESSED for r in pooled)  # the number, verdict —
    assert all(re.fullmatch(r"0\.\d{3}", r[-4]) for r in pooled)
    assert "混入了县与县之间的差异" in sdr["note"] and "不作判定" in sdr["note"]
    counties = [r for r in sdr["rows"] if r[1] != views.POOLED_NAME]
    assert all(r[-1].startswith(("是", "否", "无法判定")) for r in counties)
    for table in summary["achievement"]:
        assert views.POOLED_NAME in [r[0] for r in table["table"]["rows"]]
    # a "—" that is not a suppression does not bring in the suppression footnote
    only_pooled = views._table(["a", "b"], [["x", "—"]], not_suppressed=[(0, 1)])
    assert not only_pooled["has_suppressed"]


def test_closeouts_are_listed_apart_and_never_counted_as_problems(rendered):
    from pipeline import schemas

    probs = rendered["tables"]["problems"]
    for county in COUNTIES:
        mine = probs[(probs["county_code"] == county) & (probs["year"] == YEAR)]
        closed = mine[mine["status"] == schemas.STATUS_CLOSABLE]
        n_open = len(mine) - len(closed)
        assert len(closed) and n_open
        text = rendered["pdf"][county]
        assert f"本轮问题清单共{n_open}个问题" in text
        assert f"本轮问题清单共{n_open}项" in text  # findings
        # the 与上一轮相比 parts of the findings sentence add up to the total
        sentence = text.split(f"本轮问题清单共{n_open}项")[1].split("另有")[0]
        if "与上一轮相比" in sentence:
            parts = re.findall(r"(\d+)项", sentence.split("与上一轮相比")[1])
            assert sum(map(int, parts)) == n_open, sentence
        assert "上一轮问题已达标（建议销号）" in text
        html = rendered["html"][county]
        section = html.split("上一轮问题已达标（建议销号）</h3>")[1].split("<h3>")[0]
        for r in closed.to_dict("records"):
            assert r["problem_id"] in section
            # listed with previous → current value (kind of the indicator)
        assert "0.550 → 0.400" in section and "44.5% → 61.2%" in section
        assert "变化检验 q = 0.004" in section
        # a close-out is never in the problem overview
        overview = html.split("县域层面问题</h3>")[1].split("</table>")[0]
        for pid in closed["problem_id"]:
            assert pid not in overview
    # summary: 问题数 without close-outs, close-outs in their own column and table
    t = rendered["tables"]["problems"]
    _, summary = _views(rendered["tables"])
    for row in summary["problems"]["rows"]:
        code = next(c for c, n in NAMES.items() if n == row[0])
        mine = t[t["county_code"] == code]
        n_closed = int((mine["status"] == schemas.STATUS_CLOSABLE).sum())
        assert row[1] == str(len(mine) - n_closed)
        assert row[-1] == str(n_closed)
    assert summary["problems"]["columns"][-1] == "建议销号"
    overview = summary["overview"]["table"]["rows"]
    sev = next(r for r in overview if r[0].startswith("问题数"))
    for cell, code in zip(sev[1:], sorted(COUNTIES), strict=True):
        mine = t[t["county_code"] == code]
        assert cell.startswith(f"{int((mine['status'] != schemas.STATUS_CLOSABLE).sum())}（")
    closed = next(r for r in overview if r[0] == "上一轮问题已达标（建议销号）")
    assert closed[1:] == ["2 项"] * len(COUNTIES)  # two close-outs per fixture county
    assert "上一轮问题已达标（建议销号）" in rendered["pdf"]["summary"]


def test_merged_achievement_problem_shows_its_measures_target_and_suggestion(rendered):
    html = _visible(rendered["html"]["450125"])
    block = html.split("ACH-450125-G4-chinese\u3000")[-1][:2000]  # its detail block (h4)
    for words in ("检验项目", "学业水平等级", "平均成绩", "中等及以上比例", "Ⅲ 良好", "列为问题"):
        assert words in block, words
    assert "水平Ⅲ Ⅲ" not in block  # a level benchmark names itself once
    assert "整改目标" in block and "达到规定的标准" in block
    assert "整改建议：" in block and "下一轮监测时复查" in block


def test_gap_table_shows_the_national_gap_and_the_tested_verdict(rendered):
    html = _visible(rendered["html"]["450107"])
    # fixture: national gender gap 10.0 (no difference), SES gap 60.0 (worse); 城乡 has no
    # national gap and is tested against the standard (better); 留守 untested
    assert re.search(r"性别：女 − 男\s+\S+\s+\S+\s+10\.0\s+与全国无显著差异", html)
    assert re.search(r"家庭社会经济文化地位：\S+ − \S+\s+\S+\s+\S+\s+60\.0\s+显著差于全国", html)
    assert re.search(r"城乡：乡村 − 城区\s+\S+\s+\S+\s+…\s+显著优于标准", html)
    assert re.search(r"留守：留守 − 非留守\s+\S+\s+\S+\s+…\s+未检验", html)
    # the report computes no p-value of its own: the interval and the tested verdict say it
    assert "p 值" not in html.split("群体差异为两组")[1].split("资源配置均衡")[0]


# ------------------------------------------------------------------------------------------------
# City summary for leadership: conclusions, 整改任务分解, common problems, pilot facts
# ------------------------------------------------------------------------------------------------


def _school_ev(*measures: tuple[str, tuple[str, ...]]) -> str:
    import json

    return json.dumps({"rule_id": "SCHOOL", "rows": [],
                       "measures": [rf.school_measure(st, unmet) for st, unmet in measures]})  # fmt: skip


def _problem(pid, county, rule, severity, lead, status="待整改", previous="new", evidence="", **kw):
    return {"problem_id": pid, "county_code": county, "rule_id": rule, "severity": severity,
            "lead_unit": lead, "support_units": kw.pop("support", ""), "status": status,
            "previous_status": previous, "evidence": evidence, "grade": kw.pop("grade", None),
            "indicator": kw.pop("indicator", ""), "subject": kw.pop("subject", ""),
            "group_var": "", **kw}  # fmt: skip


# Counted by hand below: 西乡塘区 has three failing schools (one short of L2 and L5, one of L2, a
# 九年一贯制 school short of L2 in both sections), an L2 CV problem, two grade-4 ICC problems and a
# close-out school (never counted); 上林县 one school short of L2, one grade-8 ICC problem and two
# homework problems under different lead units; 横州市 one GAP problem.
TASK_PROBLEMS = [
    _problem("SCH-450107-01", "450107", "SCHOOL", "高", "计财科", evidence=_school_ev(("primary", ("L2", "L5"))), support="人事科、财政局"),
    _problem("SCH-450107-02", "450107", "SCHOOL", "中", "计财科", evidence=_school_ev(("primary", ("L2",))), support="财政局"),
    _problem("SCH-450107-03", "450107", "SCHOOL", "中", "计财科", "整改中", "worse",
             evidence=_school_ev(("primary", ("L2",)), ("junior", ("L2",)))),
    _problem("SCH-450107-09", "450107", "SCHOOL", "", "计财科", "建议销号", "resolved",
             evidence=_school_ev(("primary", ("L2",)))),
    _problem("RES-450107-primary-L2", "450107", "RES", "高", "人事科", "整改中", "unchanged", indicator="L2"),
    _problem("ICC-450107-G4-chinese", "450107", "ICC", "中", "基教科", grade=4, subject="chinese"),
    _problem("ICC-450107-G4-arts", "450107", "ICC", "高", "基教科", grade=4, subject="arts"),
    _problem("SCH-450125-01", "450125", "SCHOOL", "低", "计财科", evidence=_school_ev(("primary", ("L2",)))),
    _problem("ICC-450125-G8-chinese", "450125", "ICC", "中", "基教科", grade=8, subject="chinese"),
    _problem("HOMEWORK-450125-G4", "450125", "HOMEWORK", "高", "基教科", grade=4),
    _problem("HOMEWORK-450125-G8", "450125", "HOMEWORK", "中", "教研室", grade=8),
    _problem("GAP-450181-G8-arts-gender", "450181", "GAP", "中", "基教科", grade=8),
]  # fmt: skip
TASK_COUNTIES = ["450107", "450125", "450181"]
TASK_NAMES = {"450107": "西乡塘区", "450125": "上林县", "450181": "横州市"}


def test_task_map_counts_each_type_county_and_lead_unit():
    from pipeline.report import city

    probs = pd.DataFrame(TASK_PROBLEMS).assign(group_var="")
    open_, closed = problems.split(probs)
    assert len(closed) == 1
    items = city.task_items(open_, 0.15)
    tmap = city.task_map(items, TASK_COUNTIES, TASK_NAMES, share=0.5)
    rows = {(r["type"], r["lead"]): r for r in tmap["rows"]}

    def cell(r, county):
        c = r["cells"][TASK_COUNTIES.index(county)]
        return None if c is None else (c["n"], c["unit"], c["severity"])

    # schools short of L2 in primary: 西乡塘区 01 (高), 02 (中), 03 (中); 上林县 01 (低). The
    # close-out school 09 is not counted.
    l2 = rows[("小学 L2 骨干教师未达标学校", "计财科")]
    assert cell(l2, "450107") == (3, "所", ["高 1", "中 2"])
    assert cell(l2, "450125") == (1, "所", ["低 1"])
    assert cell(l2, "450181") is None
    assert (l2["total"]["n"], l2["common"]) == (4, True)  # 2 of 3 counties ≥ half: common
    assert l2["support"] == "人事科、财政局"  # each supporting unit once, first-seen order
    # a school with two unmet items counts under both; a 九年一贯制 school under each section
    assert cell(rows[("小学 L5 体育运动场馆未达标学校", "计财科")], "450107") == (1, "所", ["高 1"])
    assert cell(rows[("初中 L2 骨干教师未达标学校", "计财科")], "450107") == (1, "所", ["中 1"])
    assert not rows[("小学 L5 体育运动场馆未达标学校", "计财科")]["common"]
    # the county-level rules: per grade, the CV rule per section and item, its own lead unit
    assert cell(rows[("四年级校际差异率未低于 0.15", "基教科")], "450107") == (
        2,
        "个学科",
        ["高 1", "中 1"],
    )
    assert cell(rows[("八年级校际差异率未低于 0.15", "基教科")], "450125") == (
        1,
        "个学科",
        ["中 1"],
    )
    assert cell(rows[("小学 L2 骨干教师差异系数超标", "人事科")], "450107") == (1, "项", ["高 1"])
    # one type under two lead units is two rows (who does what)
    assert cell(rows[("书面作业超时", "基教科")], "450125") == (1, "个年级", ["高 1"])
    assert cell(rows[("书面作业超时", "教研室")], "450125") == (1, "个年级", ["中 1"])
    # rows follow the rule order (ICC before GAP, burden, then each section's item: CV, schools)
    order = [r["type"] for r in tmap["rows"]]
    assert order.index("四年级校际差异率未低于 0.15") < order.index("八年级群体差异")
    assert order.index("八年级群体差异") < order.index("书面作业超时")
    assert (
        order.index("小学 L2 骨干教师差异系数超标") == order.index("小学 L2 骨干教师未达标学校") - 1
    )
    assert order.index("小学 L5 体育运动场馆未达标学校") < order.index("初中 L2 骨干教师未达标学校")
    # every open problem is counted at least once; school items (5) exceed failing schools (4)
    assert set(items["problem_id"]) == set(open_["problem_id"])
    school_items = items[items["rule_id"] == "SCHOOL"]
    assert (len(school_items), school_items["problem_id"].nunique()) == (6, 4)
    notes = " ".join(city.task_notes(items, open_, TASK_NAMES))
    assert "未达标学校：西乡塘区 3 所、上林县 1 所" in notes and "各计一次" in notes
    # common problems: found in at least half of the counties (never fewer than 2)
    common = city.common_types(items, TASK_COUNTIES, 0.5)
    assert common["min_counties"] == 2 and list(common["types"]) == ["小学 L2 骨干教师未达标学校"]
    assert city.common_lines(common, TASK_NAMES) == [
        "小学学校资源配置未达标的共同项目：L2 骨干教师（西乡塘区、上林县）"
    ]
    assert city.common_types(items, TASK_COUNTIES, 1.0)["types"] == {}  # all 3 counties: none
    assert city.common_types(items, ["450107"], 0.5)["types"] == {}  # one county: no "common"


def test_a_school_without_item_details_is_still_counted_once():
    from pipeline.report import city

    probs = pd.DataFrame(
        [_problem("SCH-450107-01", "450107", "SCHOOL", "中", "计财科", evidence="{}")]
    )
    items = city.task_items(probs, 0.15)
    assert list(items["type"]) == ["学校资源配置未达标（未达标项目不详）"]
    assert city.task_map(city.task_items(probs.iloc[:0], 0.15), ["450107"], {}, 0.5)["rows"] == []


def test_summary_pdf_opens_with_conclusions_then_the_task_map(rendered):
    pages = [_squash(p) for p in rendered["pages"]["summary"]]
    first = pages[0]
    assert "一、主要结论" in first and "内部资料" in first and "报告日期：2022年" in first
    # conclusions are sentences built from the rows: which county fails which part, what is new
    for words in ("优质均衡质量指标", "资源配置差异系数", "未达到优质均衡学校要求", "负担与健康",
                  "本轮问题清单共", "新列入的问题"):  # fmt: skip
        assert words in first, words
    probs = rendered["tables"]["problems"]
    for code, name in NAMES.items():
        mine = probs[(probs["county_code"] == code) & (probs["status"] != "建议销号")]
        assert f"{name}{len(mine)}项" in first  # 问题数 per county in the totals sentence
    text = rendered["pdf"]["summary"]
    tasks = text.split("二、整改任务分解")[1].split("三、监测结果运用实验区申报参考")[0]
    # the fixture's failing school (西乡塘区, primary, short of L2 and L5) under both items
    for item in rf.SCHOOL_UNMET:
        short = schemas_short(item)
        assert f"小学{item}{short}未达标学校" in tasks, item
    assert "全市共性问题" in tasks and "各计一次" in tasks
    # the pilot-county paragraph: facts per county in code order, no ranking words
    pilot = text.split("三、监测结果运用实验区申报参考")[1].split("四、各区县主要结果")[0]
    pos = [pilot.index(f"{NAMES[c]}：本轮问题") for c in sorted(COUNTIES)]
    assert pos == sorted(pos)
    for word in ("最强", "最好", "排名", "首选", "第一"):
        assert word not in pilot, word


def schemas_short(item: str) -> str:
    from pipeline import schemas

    return schemas.RESOURCE_INDICATOR_SHORT[item]


def test_conclusions_name_what_improved_and_what_got_worse():
    t = rf.tables(COUNTIES, (YEAR,))
    _, summary = _views(t)
    text = "".join(summary["conclusions"])
    # fixture rows: ICC improved (previous_value 0.2, value 0.2: the row's own numbers, printed as
    # they are), HOMEWORK worse (22.0 → 30.0), RES junior L2 (0.55 → 0.40) and SLEEP grade 8
    # resolved (建议销号); one school problem, new
    assert "显著改善的有西乡塘区八年级" in text and "校际差异率（0.200 → 0.200）" in text
    assert "恶化的有西乡塘区八年级书面作业超时比例（22.0% → 30.0%）" in text
    assert "已达标、建议核实后销号的有西乡塘区初中 L2 骨干教师差异系数（0.550 → 0.400）" in text
    assert "资源配置未达标的学校与上一轮相比：新问题 1 所" in text


# ------------------------------------------------------------------------------------------------
# Suggestions, scope and provenance
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("county", COUNTIES)
def test_every_problem_suggestion_is_in_its_chapter_without_placeholders(rendered, county):
    text = rendered["pdf"][county]
    chapter = text.split("六、问题清单与整改建议")[-1].split("七、方法与数据说明")[0]
    probs = rendered["tables"]["problems"]
    mine = probs[(probs["county_code"] == county) & (probs["year"] == YEAR)
                 & (probs["status"] != "建议销号")]  # fmt: skip
    assert len(mine) >= 4
    for r in mine.to_dict("records"):
        assert _squash(r["suggestion"]) in chapter, r["problem_id"]  # school problems too
    # the evidence stage's reminder in the deadline column is not printed as a deadline
    assert mine["deadline"].str.startswith("待定").all()
    for placeholder in ("待定", "请在整改方案中填写", "TODO", "（无数据）"):
        assert placeholder not in chapter, placeholder
    assert "整改时限由本县在整改方案中确定" in chapter


def test_a_real_deadline_is_printed_with_its_problem():
    f = views.Fmt(_params().rules())
    t = rf.tables(COUNTIES, (YEAR,))
    probs = problems.problems_for(t["problems"], YEAR, "450107").assign(deadline="2023年6月30日")
    sec = problems.problem_section(f, probs)
    assert sec["deadline"] == "2023年6月30日" and not sec["deadline_unset"]
    assert all(d["deadline"] == "2023年6月30日" for d in sec["details"])
    assert problems.deadline_text({"deadline": "待定（请在整改方案中填写完成时限）"}) == ""


@pytest.mark.parametrize("name", [*COUNTIES, "summary"])
def test_each_report_states_its_scope_mark_and_date(rendered, name):
    pages = rendered["pages"][name]
    assert all("内部资料" in p for p in pages)  # every PDF page carries the mark
    first = _squash(pages[0])
    assert "报告日期：2022年" in first
    text = rendered["pdf"][name]
    for words in ("评估范围", "涉及资源配置", "不涉及政府保障程度、社会认可度", "负担与健康"):
        assert words in text, words
    assert "内部资料" in rendered["html"][name]


def test_official_values_that_differ_from_the_computed_ones_are_reconciled(rendered):
    ind = rendered["tables"]["indicators"]
    subject = rf.ROTATION[YEAR][4][0]
    mean = ind[(ind["year"] == YEAR) & (ind["county_code"] == "450107") & (ind["grade"] == 4)
               & (ind["subject"] == subject) & (ind["indicator"] == "mean_score")
               & (ind["group_var"] == "")]["estimate"].iloc[0]  # fmt: skip
    official = round(mean + rf.OFFICIAL_MEAN_SHIFT, 2)
    html = _visible(rendered["html"]["450107"])
    section = html.split("官方值与计算值的核对")[1].split("数据文件")[0]
    label = views.cell_label(4, subject)
    assert re.search(
        rf"{label} 平均成绩\s+{official:.1f}（第6页）\s+{mean:.1f}\s+计算值", section
    ), section[:400]
    assert "中等及以上比例" not in section.split("区县监测报告中的本县数值")[0]  # same when printed
    assert "共 2 项与本地由学生数据计算的数值对照" in section and "不一致的 1 项" in section
    other = _visible(rendered["html"]["450125"]).split("官方值与计算值的核对")[1]
    assert "没有可与本地计算值逐项对照的本县数值" in other.split("数据文件")[0]


# ------------------------------------------------------------------------------------------------
# Data quality and source files per year
# ------------------------------------------------------------------------------------------------


def test_row_counts_per_table_year_county_and_file():
    from pipeline.report import provenance

    students = pd.DataFrame({"year": [2020, 2022, 2022], "student_id": ["a", "a", "b"],
                             "county_code": ["450107", "450107", "450125"],
                             "source_file": ["s20.csv", "s22.xlsx", "s22.xlsx"]})  # fmt: skip
    scores = pd.DataFrame({"year": [2022, 2022, 2022], "student_id": ["a", "a", "b"],
                           "source_file": ["sc.csv"] * 3})  # fmt: skip
    c = provenance.row_counts({"students": students, "scores": scores, "schools": None})
    got = {tuple(r[:4]): r[4] for r in c.itertuples(index=False)}
    # by hand: scores take their student's county of the same year (a → 450107 in 2022)
    assert got == {
        ("students", 2020, "450107", "s20.csv"): 1, ("students", 2022, "450107", "s22.xlsx"): 1,
        ("students", 2022, "450125", "s22.xlsx"): 1, ("scores", 2022, "450107", "sc.csv"): 2,
        ("scores", 2022, "450125", "sc.csv"): 1,
    }  # fmt: skip


def test_data_quality_counts_are_those_of_the_reports_year():
    from pipeline.report import provenance

    t = rf.tables(COUNTIES, (2020, YEAR))
    counts = provenance.row_counts(t["validated"])
    q = t["quarantine"]
    # 上林县 (2nd fixture county) loses 2 student rows and 1 score row per year; it keeps
    # N_STUDENTS students with 2 scores each per year (report_fixtures.validated)
    n = rf.N_STUDENTS
    dq = views.data_quality(q, t["summary"], YEAR, "450125", counts)
    rows = {r[0]: r[1:] for r in dq["tables"]["rows"]}
    assert rows["学生数据"] == [str(n + 2), str(n), "2", "0"]
    assert rows["学业成绩"] == [str(2 * n + 1), str(2 * n), "1", "0"]
    assert rows["学校办学条件"] == ["20", "20", "0", "0"]
    assert "2022 年" in dq["tables_label"] and "本县" in dq["tables_label"]
    # the city: both counties, this year only (not 2 × 2 years pooled)
    dq = views.data_quality(q, t["summary"], YEAR, None, counts)
    rows = {r[0]: r[1:] for r in dq["tables"]["rows"]}
    assert rows["学生数据"] == [str(2 * n + 3), str(2 * n), "3", "0"]
    # rules set aside: this year's rows only (3 student rows = 1 + 2, not 6)
    assert sorted(r[2] for r in dq["table"]["rows"]) == ["2", "3"]
    # a set-aside row whose year could not be read is shown with every year, and said so
    unknown = q.iloc[[0]].assign(year=pd.NA, county_code="450125").astype({"year": "Int64"})
    dq = views.data_quality(pd.concat([q, unknown]), t["summary"], YEAR, "450125", counts)
    rows = {r[0]: r[1:] for r in dq["tables"]["rows"]}
    assert rows["学生数据"] == [str(n + 3), str(n), "3", "0"] and "无法确定年份" in dq["note"]
    # negative: without validated tables the counts come from the pooled summary, and say so
    dq = views.data_quality(q, {"tables": {"students": {"rows_in": 9}}}, YEAR, None)
    assert "全部年份" in dq["tables_label"]


def test_source_table_lists_only_the_years_files():
    from pipeline.report import provenance

    t = rf.tables(COUNTIES, (2020, YEAR))
    counts = provenance.row_counts({**t["validated"], "county_reports": t["county_reports"]})
    table = views.source_files(t["manifest"], counts, t["quarantine"], YEAR, "450125")
    files = [r[0] for r in table["rows"]]
    assert files == sorted([rf.REPORTS_FILE, f"schools/schools_{YEAR}.xlsx",
                            f"scores/scores_{YEAR}.csv", f"students/students_{YEAR}.csv"])  # fmt: skip
    rows = {r[0]: r for r in table["rows"]}
    # rows used / set aside: this year and county only (file totals stay the manifest's)
    assert rows[f"students/students_{YEAR}.csv"][-2:] == [str(rf.N_STUDENTS), "2"]
    assert rows[f"scores/scores_{YEAR}.csv"][1] == "csv（制表符分隔）"
    assert "只列出含本年度、本县数据的文件" in table["note"]
    # without counts (an older run): the manifest's files as they are
    assert len(views.source_files(t["manifest"])["rows"]) == len(t["manifest"]["files"])


def test_two_rounds_each_report_counts_its_own_year(tmp_path):
    shutil.copy(REPO / "params.yaml", tmp_path / "params.yaml")
    rf.write_project(tmp_path, counties=COUNTIES, years=(2020, YEAR), publish=False)
    ctx = make_context(tmp_path, quiet=True)
    ctx.params["report"] = {**ctx.params["report"], "build_pdf": False}
    report.run(ctx)
    n = rf.N_STUDENTS
    for year in (2020, YEAR):
        out = Paths(tmp_path).report_year(year)
        county = _visible((out / "450125.html").read_text(encoding="utf-8"))
        quality = county.split("数据质量")[-1]
        assert re.search(rf"学生数据\s+{n + 2}\s+{n}\s+2\s+0", quality), year
        assert f"students_{year}.csv" in quality
        other = 2020 if year == YEAR else YEAR
        assert f"students_{other}.csv" not in quality  # the other round's files are not listed
        summary = _visible((out / "summary.html").read_text(encoding="utf-8"))
        assert re.search(
            rf"学生数据\s+{2 * n + 3}\s+{2 * n}\s+3\s+0", summary.split("数据质量")[-1]
        )


def test_pdf_print_sizes_title_tables_and_mark(rendered):
    """The PDF's own type sizes (templates/*.typ), not the screen styles: the county title 22 pt,
    table text 8 pt (a larger size ran tables to the page edge), the 内部资料 footer mark 8 pt."""
    reader = pypdf.PdfReader(rendered["out"] / f"{COUNTIES[0]}.pdf")

    def sizes_of(page) -> dict[str, set[float]]:
        sizes: dict[str, set[float]] = {}

        def visit(text, cm, tm, font, size):
            if text.strip():  # points on the page: font size × text matrix × current matrix
                sizes.setdefault(text.strip(), set()).add(round(size * tm[0] * cm[0], 1))

        page.extract_text(visitor_text=visit)
        return sizes

    first, second = sizes_of(reader.pages[0]), sizes_of(reader.pages[1])
    title = next(t for t in first if NAMES[COUNTIES[0]] in t and "报告" in t)
    assert first[title] == {22.0}
    assert second["内部资料"] == {8.0}
    assert second["项目"] == {8.0}  # header cell of the 达标情况一览 table


def test_task_map_sends_each_unmet_item_to_its_own_lead_unit():
    """A school led by 装备中心 (its deepest item is L6) with L2 unmet too: the L2 task goes to
    人事科, as the evidence names it per item, so a problem type never has two lead units."""
    import json

    from pipeline.report import city

    det = [
        {"indicator": "L2", "met": False, "lead_unit": "人事科", "support_units": "教研室"},
        {"indicator": "L6", "met": False, "lead_unit": "装备中心", "support_units": "财政局"},
    ]
    ev = {"rule_id": "SCHOOL", "measures": [{"stage": "primary", "details": det}], "rows": []}
    row = {"county_code": "450107", "problem_id": "SCH-450107-S1", "rule_id": "SCHOOL",
           "lead_unit": "装备中心", "support_units": "人事科", "severity": "高",
           "previous_status": "new", "evidence": json.dumps(ev, ensure_ascii=False),
           "grade": None, "indicator": "school_compliance", "group_var": "school",
           "group_value": "S1"}  # fmt: skip
    items = city.task_items(pd.DataFrame([row]), 0.15)
    leads = dict(zip(items["type"].str.contains("骨干"), items["lead_unit"], strict=True))
    assert leads == {True: "人事科", False: "装备中心"}


# ------------------------------------------------------------------------------------------------
# Reports rendered in parallel processes (issue 13)
# ------------------------------------------------------------------------------------------------


def _report_files(root: Path) -> dict[str, bytes]:
    reports = Paths(root).reports
    return {str(p.relative_to(reports)): p.read_bytes() for p in reports.rglob("*") if p.is_file()}


def test_reports_are_the_same_bytes_whatever_the_number_of_processes(
    rendered, tmp_path, monkeypatch
):
    """The module's run against one made in the other mode (one process vs several): every HTML,
    PDF and published file is byte-identical, so the split over processes leaves no trace."""
    parallel_before = report.n_workers(_params(), 3) > 1
    root = tmp_path / "again"
    shutil.copytree(rendered["root"], root, ignore=shutil.ignore_patterns("reports"))
    monkeypatch.setenv("EQM_REPORT_WORKERS", "1" if parallel_before else "2")
    assert (report.n_workers(_params(), 3) > 1) is not parallel_before
    report.run(make_context(root, quiet=True))
    assert _report_files(root) == _report_files(rendered["root"])


def test_a_report_failing_in_a_worker_fails_the_stage_with_its_error(
    rendered, tmp_path, monkeypatch
):
    """An EqmError raised while a worker process renders one report reaches the user unchanged
    (message, file and hint), and reports/ keeps the previous run's files: nothing half-written."""
    root = tmp_path / "failing"
    shutil.copytree(rendered["root"], root)
    before = _report_files(root)
    error = EqmError("测试：该区县的报告无法生成。", file="测试文件.csv", hint="请改正后重新运行。")
    render = report.Renderer.render

    def failing(self, doc):
        if doc.county == COUNTIES[1]:
            raise error
        return render(self, doc)

    monkeypatch.setattr(report.Renderer, "render", failing)
    monkeypatch.setenv("EQM_REPORT_WORKERS", "2")  # the error crosses a process boundary
    ctx = make_context(root, quiet=True)
    ctx.params["report"] = {**ctx.params["report"], "build_pdf": False}
    with pytest.raises(EqmError) as exc:
        report.run(ctx)
    assert str(exc.value) == str(error)
    assert (exc.value.file, exc.value.hint) == (error.file, error.hint)
    assert _report_files(root) == before


def test_number_of_report_processes_follows_params_and_environment(monkeypatch):
    monkeypatch.delenv("EQM_REPORT_WORKERS", raising=False)
    assert report.n_workers(_params(pdf_workers=1), 10) == 1
    assert report.n_workers(_params(pdf_workers=3), 2) == 2  # never more than there are reports
    assert report.n_workers(_params(pdf_workers=0), 10) == min(os.cpu_count() or 1, 10)
    monkeypatch.setenv("EQM_REPORT_WORKERS", "1")  # the environment overrides params.yaml
    assert report.n_workers(_params(pdf_workers=3), 10) == 1
    monkeypatch.setenv("EQM_REPORT_WORKERS", "两个")
    with pytest.raises(EqmError, match="EQM_REPORT_WORKERS"):
        report.n_workers(_params(), 10)
    monkeypatch.delenv("EQM_REPORT_WORKERS")
    with pytest.raises(EqmError, match="pdf_workers"):
        report.n_workers(_params(pdf_workers=-1), 10)


def test_reports_are_rendered_in_this_process_when_workers_cannot_start(
    tmp_path, monkeypatch, caplog
):
    """No working process pool (no /dev/shm, no sem_open): the stage renders every report itself."""
    shutil.copy(REPO / "params.yaml", tmp_path / "params.yaml")
    rf.write_project(tmp_path, counties=("450110",), years=(YEAR,), publish=False)

    def no_pool(*args, **kwargs):
        raise OSError("sem_open 不可用")

    monkeypatch.setattr(report.concurrent.futures, "ProcessPoolExecutor", no_pool)
    monkeypatch.setenv("EQM_REPORT_WORKERS", "2")
    ctx = make_context(tmp_path, quiet=True)
    ctx.params["report"] = {**ctx.params["report"], "build_pdf": False}
    with caplog.at_level("INFO", logger="pipeline.report"):
        report.run(ctx)
    assert "改为在本进程中逐份生成" in caplog.text and "1 个进程" in caplog.text
    files = sorted(p.name for p in Paths(tmp_path).report_year(YEAR).iterdir())
    assert files == ["450110.html", "summary.html"]
