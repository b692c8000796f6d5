"""The 「相关因素」 chapter of the county reports (issue 14), HTML and PDF read back (pypdf).

The factors table is written by hand here in ``schemas.FACTORS`` columns (independent of the
indicators stage) with planted rows: p-values just below and just above alpha (0.0499 / 0.0501),
factors better and worse than national in both directions, suppressed rows whose estimates must
never print, unadjusted coefficients and gaps that the chapter does not show, and two-level rows.
Every expected cell is formatted here, independently of ``pipeline/report/formats.py``, from the
rules of the issue: percentages 1 decimal with %, indices 2 decimals, other means 1 decimal,
coefficients 1 decimal 分 with * (p<0.05) / ** (p<0.01), a real minus sign.
"""

from __future__ import annotations

import base64
import html as htmllib
import io
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pypdf
import pytest
import report_fixtures as rf
import yaml

from pipeline import catalogue, report, schemas
from pipeline.config import Paths, make_context
from pipeline.report import factors as rfactors
from pipeline.report.formats import ViewRules

REPO = Path(__file__).resolve().parents[1]
YEAR = 2022
COUNTY, EMPTY = "450107", "450125"  # EMPTY has no factors rows
ALPHA = 0.05  # params.yaml evidence.alpha (test_alpha_is_the_evidence_alpha)
# rf.ROTATION[2022], in the order of schemas.SUBJECT_LABELS (the table's subject columns)
SUBJECTS = {4: ["chinese", "arts"], 8: ["chinese", "english", "arts"]}
NAN = float("nan")
# estimates that must never print: suppressed rows, unadjusted coefficients, gaps, tau2 / sigma2
NEVER = {"suppressed_value": 61.23, "suppressed_coef": 25.55, "small_coef": 26.66,
         "unadjusted": 444.4, "gap": 333.3, "tau2": 222.2, "icc_hidden": 0.456}  # fmt: skip


def _row(grade, factor, kind, statistic="", subject="", est=NAN, se=1.0, p=NAN, national=NAN,
         suppressed=False, n_st=300, n_sc=10, method="weighted mean; JKn") -> dict:  # fmt: skip
    return dict(
        year=YEAR, county_code=COUNTY, grade=grade, subject=subject, factor=factor,
        level=catalogue.FACTORS[factor].level if factor else "", kind=kind, statistic=statistic,
        estimate=est, se=se, df=float(n_sc - 1), p_value=p, national=national, national_se=NAN,
        n_students=n_st, n_schools=n_sc, group_high="", group_low="", r_squared=NAN,
        r_squared_se=NAN, method=method, suppressed=suppressed,
    )  # fmt: skip


# (grade, factor) -> value row fields; (grade, subject, factor) -> adjusted coefficient fields
PLANTED_VALUES = {
    (4, "interest"): dict(est=2.714, national=3.0, p=0.0499),  # just below alpha: significant
    (4, "confidence"): dict(est=2.80, national=2.95, p=0.0501),  # just above: not significant
    (4, "tutoring"): dict(est=40.04, national=30.0, p=0.001),  # higher is worse: 显著高于（较差）
    (4, "bullying"): dict(est=1.62, national=1.90, p=0.01),  # higher is worse: 显著低于（较好）
    (4, "exercise"): dict(est=70.0, national=60.0, p=0.02),  # 显著高于（较好）
    (4, "reading"): dict(est=48.0, national=50.0, p=NAN),  # no p: 未检验
    (4, "t_lessons"): dict(est=14.26, national=NAN, p=NAN),  # no national figure
    (8, "t_training"): dict(est=NEVER["suppressed_value"], national=70.0, p=0.01, suppressed=True),
    (8, "wellbeing"): dict(est=-0.234, national=0.0, p=0.03, method="x; index standardised to the national mean and SD"),
}  # fmt: skip
PLANTED_COEFS = {
    (4, "chinese", "interest"): dict(est=18.24, p=0.0499),  # "18.2 分*"
    (4, "arts", "interest"): dict(est=9.9, p=0.0501),  # 无显著关联
    (4, "chinese", "confidence"): dict(est=-6.66, p=0.004),  # "−6.7 分**"
    (4, "arts", "tutoring"): dict(est=NEVER["suppressed_coef"], p=0.001, suppressed=True),
    (8, "english", "reading"): dict(est=NEVER["small_coef"], p=0.001, n_sc=2),  # under 3 schools
}


def factors_table() -> pd.DataFrame:
    rng = np.random.default_rng(14)
    rows = []
    for grade, subjects in SUBJECTS.items():
        for fid, fac in catalogue.FACTORS.items():
            if fac.measure == "share":
                est, nat = float(rng.uniform(5, 95)), float(rng.uniform(5, 95))
            elif fac.index:
                est, nat = float(rng.uniform(1.5, 3.5)), float(rng.uniform(1.5, 3.5))
            else:
                est, nat = float(rng.uniform(0.5, 20)), float(rng.uniform(0.5, 20))
            kw = dict(est=est, national=nat, p=float(rng.uniform(0, 1)))
            rows.append(_row(grade, fid, "value", **{**kw, **PLANTED_VALUES.get((grade, fid), {})}))
            for s in subjects:
                kw = dict(est=float(rng.uniform(-20, 20)), p=float(rng.uniform(0, 0.2)))
                kw = {**kw, **PLANTED_COEFS.get((grade, s, fid), {})}
                rows.append(_row(grade, fid, "coef", "adjusted", s, **kw))
                rows.append(
                    _row(grade, fid, "coef", "unadjusted", s, est=NEVER["unadjusted"], p=0.001)
                )
                rows.append(_row(grade, fid, "gap", "", s, est=NEVER["gap"], p=0.001))
        for s in subjects:
            hidden = grade == 4 and s == "arts"
            icc = NEVER["icc_hidden"] if hidden else float(rng.uniform(0.05, 0.4))
            if (grade, s) == (4, "chinese"):
                icc = 0.234
            rows.append(
                _row(grade, "", "two_level", "icc", s, est=icc, se=0.031, suppressed=hidden)
            )
            rows.append(_row(grade, "", "two_level", "tau2", s, est=NEVER["tau2"]))
            for fid in catalogue.SCHOOL_FACTORS:
                p, share = 0.5, float(rng.uniform(0.05, 0.9))
                if (grade, s) == (4, "chinese"):
                    p, share = {"p_facility": (0.01, 0.35), "p_pe_art": (0.03, -0.02),
                                "t_method": (0.2, 0.5)}.get(fid, (0.5, share))  # fmt: skip
                rows.append(_row(grade, fid, "two_level", "coef", s, est=5.0, p=p))
                rows.append(_row(grade, fid, "two_level", "between_explained", s, est=share))
    return pd.DataFrame(rows)[schemas.FACTORS.names].astype({"year": "int64", "grade": "int64"})


# ------------------------------------------------------------------------------------------------
# The expected cells, formatted independently
# ------------------------------------------------------------------------------------------------


def _minus(text: str) -> str:
    return "−" + text[1:] if text.startswith("-") else text


def expect_value(fid: str, x: float) -> str:
    fac = catalogue.FACTORS[fid]
    if x != x:
        return "…"
    if fac.measure == "share":
        return _minus(f"{x:.1f}%")
    return _minus(f"{x:.2f}")  # indices and other means (hours, lessons): 2 decimals


def expect_difference(fid: str, r: dict) -> str:
    if r["suppressed"]:
        return "—"
    if r["national"] != r["national"]:
        return "无全国数据"
    if r["p_value"] != r["p_value"]:
        return "未检验"
    if not r["p_value"] < ALPHA:
        return "与全国无显著差异"
    higher = r["estimate"] > r["national"]
    worse = higher == catalogue.FACTORS[fid].higher_is_worse
    return ("显著高于全国" if higher else "显著低于全国") + ("（较差）" if worse else "（较好）")


def expect_coef(r: dict) -> str:
    if r["suppressed"] or r["n_schools"] < 3:
        return "—"
    if r["p_value"] != r["p_value"]:
        return "无法检验"  # an estimate without an SE
    if r["p_value"] < 0.01:
        return _minus(f"{r['estimate']:.1f}") + " 分**"
    if r["p_value"] < ALPHA:
        return _minus(f"{r['estimate']:.1f}") + " 分*"
    return "无显著关联"


def expected_rows(fx: pd.DataFrame, grade: int) -> list[list[str]]:
    g = fx[fx["grade"] == grade]
    value = {r["factor"]: r for r in g[g["kind"] == "value"].to_dict("records")}
    coef = {
        (r["subject"], r["factor"]): r
        for r in g[(g["kind"] == "coef") & (g["statistic"] == "adjusted")].to_dict("records")
    }
    level_words = {"student": "学生", "teacher": "教师", "principal": "学校"}
    out, last = [], None
    for fid, fac in catalogue.FACTORS.items():  # catalogue order, grouped by level
        r = value[fid]
        label = fac.label + (f"（{fac.unit}）" if fac.measure == "mean" and not fac.index else "")
        level = level_words[fac.level]
        out.append([
            level if level != last else "", label,
            "—" if r["suppressed"] else expect_value(fid, r["estimate"]),
            expect_value(fid, r["national"]), expect_difference(fid, r), fac.term_unit,
            *[expect_coef(coef[(s, fid)]) for s in SUBJECTS[grade]],
        ])  # fmt: skip
        last = level
    return out


# ------------------------------------------------------------------------------------------------
# Rendering (once per module: 2 counties + the summary, HTML and PDF)
# ------------------------------------------------------------------------------------------------


def _squash(text: str) -> str:
    return re.sub(r"\s+", "", text)


def _visible(page: str) -> str:
    page = re.sub(r"<style.*?</style>", " ", page, flags=re.S)
    return htmllib.unescape(re.sub(r"<[^>]+>", " ", page))


def _chapter_html(page: str) -> str:
    return page.split('<h2 id="s-factors">')[1].split('<h2 id="s-balance">')[0]


def _chapter_pdf(text: str) -> str:
    return text.split("三、相关因素")[-1].split("四、均衡状况")[0]


def _tables(fragment: str) -> list[list[list[str]]]:
    tables = []
    for t in re.findall(r"<table.*?</table>", fragment, flags=re.S):
        body = t.split("<tbody>")[1]
        rows = re.findall(r"<tr>(.*?)</tr>", body, flags=re.S)
        tables.append([
            [htmllib.unescape(c).strip() for c in re.findall(r"<td[^>]*>(.*?)</td>", r, flags=re.S)]
            for r in rows
        ])  # fmt: skip
    return tables


@pytest.fixture(scope="module")
def rendered(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("report_factors")
    shutil.copy(REPO / "params.yaml", root / "params.yaml")
    t = rf.tables((COUNTY, EMPTY), (YEAR,))
    t["factors"] = factors_table()
    rf.write_project(root, counties=(COUNTY, EMPTY), years=(YEAR,), tables=t)
    report.run(make_context(root, quiet=True))
    out = Paths(root).report_year(YEAR)
    pdf, raw = {}, {}
    for name in (COUNTY, EMPTY, "summary"):
        pages = [p.extract_text() or "" for p in pypdf.PdfReader(out / f"{name}.pdf").pages]
        raw[name] = "\n".join(pages)
        pdf[name] = _squash(raw[name])
    html = {n: (out / f"{n}.html").read_text(encoding="utf-8") for n in (COUNTY, EMPTY, "summary")}
    return {"tables": t, "pdf": pdf, "raw": raw, "html": html, "out": out}


def test_alpha_is_the_evidence_alpha():
    params = yaml.safe_load((REPO / "params.yaml").read_text(encoding="utf-8"))
    assert params["evidence"]["alpha"] == ALPHA
    assert params["report"]["decimals"]["index"] == 2


def test_chapter_sits_between_achievement_and_balance_in_html_pdf_and_toc(rendered):
    for name in (COUNTY, EMPTY):
        page = rendered["html"][name]
        toc = page.split('<nav class="toc">')[1].split("</nav>")[0]
        assert re.findall(r'href="#(s-[a-z]+)"', toc) == [
            "s-summary", "s-achievement", "s-factors", "s-balance", "s-burden", "s-problems",
            "s-methods",
        ]  # fmt: skip
        body = _visible(page.split("</nav>")[1])
        heads = ["二、学业表现", "三、相关因素", "四、均衡状况", "五、负担与健康",
                 "六、问题清单与整改建议", "七、方法与数据说明"]  # fmt: skip
        where = [body.index(h) for h in heads]
        assert where == sorted(where)
        text = rendered["pdf"][name]
        first_page_end = text.index(
            "二、学业表现", text.index("七、方法与数据说明")
        )  # after the TOC
        where = [text.index(h, first_page_end - len("二、学业表现")) for h in heads]
        assert where == sorted(where), name


def test_every_table_cell_is_the_factors_value_formatted_once(rendered):
    fx = rendered["tables"]["factors"]
    tables = _tables(_chapter_html(rendered["html"][COUNTY]))
    # per grade: the factor table, then the two-level table
    assert len(tables) == 4
    heads = re.findall(r"<thead>(.*?)</thead>", _chapter_html(rendered["html"][COUNTY]), re.S)
    assert re.findall(r"<th[^>]*>(.*?)</th>", heads[2]) == [
        "类别", "因素", "本县", "全国", "差异（显著性）", "关联单位", "语文", "英语", "艺术",
    ]  # fmt: skip
    for grade, table in zip((4, 8), (tables[0], tables[2]), strict=True):
        assert table == expected_rows(fx, grade), grade
    # the PDF prints the same cells (its text has no table structure: each cell is found in order)
    pdf = _chapter_pdf(rendered["pdf"][COUNTY])
    for grade in (4, 8):
        pos = pdf.index(_squash(schemas.GRADE_LABELS[grade] + "校间差异与学校因素"))
        part = pdf[:pos] if grade == 4 else pdf[pdf.index("八年级") : pos]
        for row in expected_rows(fx, grade):
            for cell in row[2:]:
                assert _squash(cell) in part, (grade, row[1], cell)


def test_planted_cells_read_as_the_issue_says(rendered):
    rows = {r[1]: r for r in _tables(_chapter_html(rendered["html"][COUNTY]))[0]}
    assert rows["学习兴趣指数"][2:5] == ["2.71", "3.00", "显著低于全国（较差）"]  # p 0.0499 < 0.05
    assert rows["学习自信心指数"][4] == "与全国无显著差异"  # p 0.0501
    assert rows["参加学科类校外培训的学生比例"][2:5] == ["40.0%", "30.0%", "显著高于全国（较差）"]
    assert rows["遭受校园欺凌指数"][4] == "显著低于全国（较好）"
    assert rows["每天体育锻炼达到1小时的学生比例"][4] == "显著高于全国（较好）"
    assert rows["每天课外阅读30分钟及以上的学生比例"][4] == "未检验"
    assert rows["教师平均周课时（节）"][2:5] == ["14.26", "…", "无全国数据"]  # 2 decimals
    # coefficients: chinese, arts
    assert rows["学习兴趣指数"][6:] == ["18.2 分*", "无显著关联"]  # p 0.0499 / 0.0501
    assert rows["学习自信心指数"][6] == "−6.7 分**"
    assert rows["参加学科类校外培训的学生比例"][7] == "—"  # suppressed
    g8 = {r[1]: r for r in _tables(_chapter_html(rendered["html"][COUNTY]))[2]}
    assert g8["年培训达到72学时的教师比例"][2:5] == ["—", "70.0%", "—"]
    assert g8["每天课外阅读30分钟及以上的学生比例"][7] == "—"  # english: 2 schools, unflagged
    assert g8["心理健康指数"][2] == "−0.23"
    html = _visible(_chapter_html(rendered["html"][COUNTY]))
    assert "全国为 0" in html  # the standardised index is explained (grade 8 only)
    assert html.count("全国为 0") == 1


def test_two_level_summary_names_only_significant_school_factors(rendered):
    tables = _tables(_chapter_html(rendered["html"][COUNTY]))
    g4 = tables[1]
    assert g4[0][:3] == ["语文", "23.4%", "3.1 个百分点"]
    assert g4[0][3] == (  # catalogue order; the two-level coefficient (5.0, p 0.03 and 0.01)
        "所在学校音体美专任教师配齐的学生比例（音体美专任教师配齐的学校与未配齐的学校相比，学校平均成绩"
        "高5.0分*；未能解释校间差异）；学校设施使用指数（学校设施使用指数每高1，学校平均成绩高5.0分*；"
        "可解释校间差异的 35.0%）"
    )
    assert "教师教学方式指数" not in g4[0][3]  # p 0.2
    assert g4[1] == ["艺术", "—", "—", "—"]  # suppressed null model


def test_no_number_other_than_the_formatted_values_and_no_hidden_estimate(rendered):
    fx = rendered["tables"]["factors"]
    allowed = {"0.05", "0.01"}
    for grade in (4, 8):
        for row in expected_rows(fx, grade):
            allowed |= set(re.findall(r"\d+\.\d+", " ".join(row)))
    allowed |= {"23.4", "3.1", "35.0", "5.0"}  # 5.0: the fixture's two-level coefficients
    g = fx[fx["kind"] == "two_level"]
    for r in g[(g["statistic"] == "icc") & ~g["suppressed"]].to_dict("records"):
        allowed |= {f"{100 * r['estimate']:.1f}", f"{100 * r['se']:.1f}"}
    for r in g[g["statistic"] == "between_explained"].to_dict("records"):
        allowed.add(f"{100 * r['estimate']:.1f}")
    html = _visible(_chapter_html(rendered["html"][COUNTY]))
    pdf = rendered["raw"][COUNTY].split("三、相关因素")[-1].split("四、均衡状况")[0]
    for text in (html, pdf):
        shown = set(re.findall(r"\d+\.\d+", text))
        assert shown <= allowed, sorted(shown - allowed)
    for v in NEVER.values():
        for shown in {f"{v:.1f}", f"{v:.2f}", f"{100 * v:.1f}"}:
            assert shown not in html and shown not in pdf, shown


def test_caveat_once_estimand_sentence_and_no_school_names(rendered):
    caveat = catalogue.CAUSALITY_CAVEAT
    for name in (COUNTY, EMPTY):
        html, pdf = _visible(rendered["html"][name]), rendered["pdf"][name]
        n = 1 if name == COUNTY else 0
        assert html.count(caveat) == n and pdf.count(_squash(caveat)) == n, name
    chapter = _visible(_chapter_html(rendered["html"][COUNTY]))
    assert "按学生加权" in chapter and "按教师加权" in chapter
    schools = rendered["tables"]["school_compliance"]["school_name"]
    pdf = _chapter_pdf(rendered["pdf"][COUNTY])
    for school in schools:
        assert school not in chapter and _squash(school) not in pdf, school
    assert rf.SCRIPT_SCHOOL not in _chapter_html(rendered["html"][COUNTY])


def test_a_county_without_factors_says_so_instead_of_an_empty_table(rendered):
    chapter = _chapter_html(rendered["html"][EMPTY])
    assert "本轮未收集相关因素问卷数据" in _visible(chapter)
    assert "<table" not in chapter and "<img" not in chapter
    assert "本轮未收集相关因素问卷数据" in _chapter_pdf(rendered["pdf"][EMPTY])
    assert "本轮未收集相关因素问卷数据" not in rendered["html"][COUNTY]


def test_figures_are_numbered_in_order_and_the_factor_charts_are_grey(rendered):
    for name, n_factor in ((COUNTY, 2), (EMPTY, 0)):
        page = rendered["html"][name]
        numbers = [int(x) for x in re.findall(r"<figcaption>图 (\d+)", page)]
        assert numbers == list(range(1, len(numbers) + 1)), name
        chapter = _chapter_html(page)
        assert len(re.findall(r"<figcaption>图 \d+", chapter)) == n_factor
    from matplotlib import image

    uris = re.findall(
        r'src="data:image/png;base64,([^"]+)"', _chapter_html(rendered["html"][COUNTY])
    )
    assert len(uris) == 2
    for uri in uris:
        px = image.imread(io.BytesIO(base64.b64decode(uri)), format="png")[..., :3]
        # no colour coding: every pixel is a grey (red = green = blue)
        assert np.abs(px - px.mean(axis=-1, keepdims=True)).max() < 1e-6


def test_summary_points_to_the_county_chapters(rendered):
    assert "各区县报告第三部分" in _visible(rendered["html"]["summary"])
    assert _squash("各区县报告第三部分“相关因素”") in rendered["pdf"]["summary"]


# ------------------------------------------------------------------------------------------------
# Pure view model
# ------------------------------------------------------------------------------------------------


def _rules(**kw) -> ViewRules:
    base = dict(score_decimals=1, percent_decimals=1, rate_decimals=3, resource_decimals={},
                min_students=10, min_schools=3, quality_sdr_max=0.15, quality_min_level="III")  # fmt: skip
    return ViewRules(**{**base, **kw})


def test_significance_follows_alpha_on_either_side():
    fac = catalogue.FACTORS["interest"]
    row = {"estimate": 2.7, "national": 3.0, "suppressed": False}
    assert (
        rfactors.difference_words({**row, "p_value": 0.0999}, fac, 0.10) == "显著低于全国（较差）"
    )
    assert rfactors.difference_words({**row, "p_value": 0.0999}, fac, 0.05) == "与全国无显著差异"
    assert rfactors.difference_words({**row, "p_value": 0.05}, fac, 0.05) == "与全国无显著差异"
    assert rfactors.sig_mark(0.0999, 0.10) == "*" and rfactors.sig_mark(0.1, 0.10) == ""
    assert rfactors.sig_mark(0.0099, 0.05) == "**" and rfactors.sig_mark(NAN, 0.05) is None


def test_no_factors_table_or_other_rounds_give_the_not_collected_sentence():
    for df in (None, pd.DataFrame(columns=schemas.FACTORS.names), factors_table()):
        v = rfactors.factors_view(df, 2020, COUNTY, _rules(), first_figure=3)
        assert not v["has_data"] and v["n_figures"] == 0 and v["grades"] == []
    v = rfactors.factors_view(factors_table(), YEAR, COUNTY, _rules(), first_figure=3)
    assert [g["figure"] for g in v["grades"]] == [3, 4] and v["n_figures"] == 2


def test_no_between_school_variance_names_no_school_factor():
    # the 四年级语文 null model at its boundary (校间差异占比 0): the significant school factors of
    # the fixture (学校设施使用指数, p 0.01) have no between-school variance to explain
    t = factors_table()
    at = (t["grade"] == 4) & (t["subject"] == "chinese") & (t["statistic"] == "icc")
    t.loc[at, "estimate"] = 0.0
    v = rfactors.factors_view(t, YEAR, COUNTY, _rules(), first_figure=3)
    row = v["grades"][0]["two_level"]["rows"][0]
    text = str(row)
    assert "语文" in text and "0.0%" in text
    assert "校间差异为0，无可解释" in text and "学校设施使用指数" not in text


def test_estimate_without_se_reads_untestable_and_the_note_names_the_standardised_index():
    t = factors_table()
    at = (
        (t["grade"] == 4) & (t["kind"] == "coef") & (t["statistic"] == "adjusted")
        & (t["subject"] == "chinese") & (t["factor"] == "relation")
    )  # fmt: skip
    t.loc[at, ["estimate", "se", "p_value"]] = [56.4, NAN, NAN]
    v = rfactors.factors_view(t, YEAR, COUNTY, _rules(), first_figure=3)
    g4, g8 = (g["table"] for g in v["grades"])
    row = next(r for r in g4["rows"] if "师生关系指数" in str(r))
    assert "无法检验" in str(row) and "56.4" not in str(row)
    # only grade 8's 心理健康指数 is standardised in the fixture: the note names it, grade 4's none
    assert "心理健康指数已按" in g8["note"] and "全国为 0" not in g4["note"]
    assert "学习兴趣指数已按" not in g8["note"]
