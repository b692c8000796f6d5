"""Report stage: rendered HTML and PDF read back (pypdf) for the things leadership must be able to trust.

The inputs are the independent fixture tables of ``tests/report_fixtures.py``; the stage is run once
per module (2 counties + the city summary, HTML and PDF).
"""

from __future__ import annotations

import dataclasses
import re
import shutil
from pathlib import Path

import pandas as pd
import pypdf
import pytest
import report_fixtures as rf

from pipeline import report
from pipeline.config import Paths, make_context
from pipeline.errors import EqmError
from pipeline.report import views

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
        + ["validation.html", "rectification_evidence.xlsx"]
    )
    p = Paths(root)
    assert (out / "validation.html").read_bytes() == (
        p.validation_pages / f"validation_{YEAR}.html"
    ).read_bytes()
    assert (out / "rectification_evidence.xlsx").read_bytes() == (
        p.evidence_dir / str(YEAR) / "rectification_evidence.xlsx"
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


def test_official_sdr_wins_over_computed(rendered):
    text = rendered["pdf"]["450107"]
    assert f"{rf.OFFICIAL_SDR:.3f}*" in text  # official value, marked with its footnote star
    assert "取自官方区县监测报告" in text


def test_pdf_has_page_numbers_and_a_true_table_of_contents(rendered):
    pages = rendered["pages"]["450107"]
    n = len(pages)
    assert n >= 6
    assert _squash(f"第 2 页 / 共 {n} 页") in _squash(pages[1])
    assert _squash(f"第 {n} 页 / 共 {n} 页") in _squash(pages[-1])
    toc = pages[0]
    for heading, entry in (
        ("六、方法与数据说明", "方法与数据说明"),
        ("五、问题清单与整改建议", "问题清单与整改建议"),
    ):
        actual = next(i + 1 for i, p in enumerate(pages) if heading in _squash(p))
        m = re.search(re.escape(entry) + r"\s*\.+\s*(\d+)\s*\n", toc)
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
    assert all("EqmNotoSansCJK" in f for f in seen), seen


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
    p = ctx.section(report.ReportParams, "report")
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
    assert views.level_label(3.0) == "Ⅲ 良好"
    assert views.level_label(7) == views.MISSING
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
    assert (
        lk.get(YEAR, "450107", 8, "chinese", "school_difference_rate")["estimate"]
        == rf.OFFICIAL_SDR
    )
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


def test_pdf_bytes_are_stable(tmp_path):
    html = "<html><body><h1>西乡塘区 校际差异率 0.150</h1></body></html>"
    p = _params()
    writer = report.PdfWriter(p.page_size, report.fonts.font_file(p.font_file))
    writer.write(html, tmp_path / "a.pdf")
    writer.write(html, tmp_path / "b.pdf")
    assert (tmp_path / "a.pdf").read_bytes() == (tmp_path / "b.pdf").read_bytes()


def test_font_subset_fallback_keeps_the_characters(tmp_path):
    """Without HarfBuzz subsetting the font is cut to the reports' characters once per run."""
    from fontTools.ttLib import TTFont

    p = _params()
    out = report.fonts.subset_for(
        report.fonts.font_file(p.font_file), ["校际差异率 0.150"], tmp_path / "s.otf"
    )
    cmap = TTFont(out).getBestCmap()
    assert all(ord(c) in cmap for c in "校际差异率第页共0123456789")
    assert ord("鑫") not in cmap
    assert out.stat().st_size < 2_000_000


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
    assert views.parse_evidence("not json")["rows"] == []
    assert views.parse_evidence(None)["rows"] == []
    assert views.parse_evidence('[{"indicator": "mean_score"}]')["rows"] == [
        {"indicator": "mean_score"}
    ]
    ev = views.parse_evidence('{"rows": [{"a": 1}], "benchmark_rows": "x", "previous": 3}')
    assert ev["rows"] == [{"a": 1}] and ev["benchmark_rows"] == [] and ev["previous"] is None


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
