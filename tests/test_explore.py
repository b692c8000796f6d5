"""Tests of pipeline.explore (the notebooks' helper API) and of the notebooks themselves.

Expected numbers come from hand calculation or from R (``survey`` 4.x; ``sandwich`` for the
regression, whose script and CSVs are committed under ``tests/fixtures/r/``), named beside each
number.
The notebook test runs the three notebooks against a scratch root filled with small synthetic
processed tables (``_write_processed``), so it does not need the other stages.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline import explore
from pipeline.config import Paths
from pipeline.errors import EqmError
from pipeline.indicators import IndicatorsParams
from pipeline.indicators.factor_estimates import factor_estimates
from pipeline.io import outputs

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))
FIX_R = Path(__file__).parent / "fixtures" / "r"  # expected values from R, with their scripts


# ------------------------------------------------------------------------------------------------
# project root and reading
# ------------------------------------------------------------------------------------------------


def test_project_root_walks_up_from_a_subfolder(project_root, monkeypatch):
    monkeypatch.delenv(explore.ROOT_ENV, raising=False)
    sub = project_root / "notebooks" / "deeper"
    sub.mkdir(parents=True)
    assert explore.project_root(sub) == project_root.resolve()
    monkeypatch.chdir(sub)
    assert explore.project_root() == project_root.resolve()


def test_project_root_env_var_wins(project_root, tmp_path_factory, monkeypatch):
    elsewhere = tmp_path_factory.mktemp("elsewhere")
    monkeypatch.setenv(explore.ROOT_ENV, str(project_root))
    assert explore.project_root(elsewhere) == project_root.resolve()


def test_project_root_env_var_without_params_is_an_error(tmp_path, monkeypatch):
    monkeypatch.setenv(explore.ROOT_ENV, str(tmp_path))
    with pytest.raises(EqmError, match="params.yaml"):
        explore.project_root()


def test_project_root_not_found(tmp_path, monkeypatch):
    monkeypatch.delenv(explore.ROOT_ENV, raising=False)
    with pytest.raises(EqmError, match="找不到含 params.yaml"):
        explore.project_root(tmp_path)


def test_load_without_processed_data_says_what_to_run(project_root):
    with pytest.raises(EqmError, match="请先运行 make demo 或 eqm run"):
        explore.load("students", project_root)


def test_load_missing_table_and_unknown_table(project_root):
    (project_root / "data" / "processed").mkdir(parents=True)
    with pytest.raises(EqmError, match="请先运行 make demo 或 eqm run"):
        explore.load("indicators", project_root)
    with pytest.raises(EqmError, match="未知的数据表"):
        explore.load("quarantine", project_root)  # not a table the notebooks may read


def test_student_scores_joins_drops_ids_and_averages_pvs(project_root):
    students = pd.DataFrame(
        {
            "year": [2022, 2022, 2020],
            "student_id": ["h1", "h2", "h1"],
            "school_id": ["s1", "s2", "s1"],
            "weight": [1.0, 2.0, 1.0],
            "source_file": "students/a.csv",
            "source_row": [2, 3, 4],
        }
    )
    scores = pd.DataFrame(
        {
            "year": [2022, 2022, 2022, 2020],
            "student_id": ["h1", "h1", "h2", "h1"],
            "subject": ["math", "chinese", "math", "science"],
            "scale_score": [500.0, np.nan, 450.0, 480.0],
            "pv1": [np.nan, 400.0, np.nan, np.nan],
            "pv2": [np.nan, 420.0, np.nan, np.nan],
        }
    )
    _write(project_root, {"students": students, "scores": scores})
    got = explore.student_scores(2022, project_root)
    assert len(got) == 3
    assert "student_id" not in got and "source_row" not in got
    # chinese for h1 has only PVs: (400 + 420) / 2 = 410 (hand calculation)
    assert got.sort_values(["school_id", "subject"])["score"].tolist() == [410.0, 500.0, 450.0]
    with pytest.raises(EqmError, match="2019"):
        explore.student_scores(2019, project_root)


def test_student_scores_rejects_duplicate_students(project_root):
    students = pd.DataFrame(
        {"year": [2022, 2022], "student_id": ["h1", "h1"], "weight": [1.0, 1.0]}
    )
    scores = pd.DataFrame(
        {"year": [2022], "student_id": ["h1"], "subject": ["math"], "scale_score": [1.0]}
    )
    _write(project_root, {"students": students, "scores": scores})
    with pytest.raises(EqmError, match="重复的学生编号"):  # m:1 join stated and checked
        explore.student_scores(root=project_root)


# ------------------------------------------------------------------------------------------------
# statistics
# ------------------------------------------------------------------------------------------------

SCHOOLS_ABC = pd.DataFrame(
    {
        "grade": 4,
        "school_id": ["a", "a", "a", "b", "b", "c", "c", "c", "c"],
        "score": [10, 12, 15, 20, 18, 5, 9, 7, 11.0],
        "weight": [1, 2, 1, 1, 3, 2, 2, 1, 1.0],
    }
)


def test_school_means_match_r_survey():
    got = explore.school_means(SCHOOLS_ABC, by=["grade"])
    assert got["school_id"].tolist() == ["a", "b", "c"]
    # R survey 4.x: svymean(~y, svydesign(ids=~1, weights=~w, data=<school>)) per school
    np.testing.assert_allclose(got["mean"], [12.25, 18.5, 7.6666666667], rtol=1e-9)
    np.testing.assert_allclose(got["se"], [1.0986497395, 0.75, 1.3209299630], rtol=1e-8)
    np.testing.assert_allclose(got["ci_high"] - got["mean"], 1.96 * got["se"])
    assert got["suppressed"].all()  # every school has fewer than 10 students


def test_school_means_sorted_by_id_not_by_result_and_single_student():
    df = pd.DataFrame(
        {"school_id": ["z", "a", "m"], "score": [1.0, 9.0, 5.0], "weight": [1.0, 1.0, 1.0], "g": 1}
    )
    got = explore.school_means(df, by=["g"])
    assert got["school_id"].tolist() == ["a", "m", "z"]
    assert got["se"].isna().all()  # one student: no SE (n/(n-1) undefined)


def test_school_means_rejects_non_positive_weight():
    bad = SCHOOLS_ABC.assign(weight=SCHOOLS_ABC["weight"].where(SCHOOLS_ABC.index != 0, 0.0))
    with pytest.raises(EqmError, match="权重"):
        explore.school_means(bad, by=["grade"])


def test_variance_decomposition_domain_example():
    df = pd.DataFrame({"g": 1, "school_id": list("AAABBB"), "score": [1, 2, 3, 4, 5, 6.0]})
    got = explore.variance_decomposition(df, by=["g"]).iloc[0]
    # domain.md: eta^2 = 13.5/17.5 = 0.7714, ICC(1) = 12.5/15.5 = 0.8065 (MSB 13.5, MSW 1, n0 3)
    assert got["eta_squared"] == pytest.approx(0.7714, abs=5e-5)
    assert got["icc1"] == pytest.approx(0.8065, abs=5e-5)
    assert (got["msb"], got["msw"], got["n0"]) == pytest.approx((13.5, 1.0, 3.0))
    # school means 2 and 5, equal sizes: mean 3.5, SD 1.5, CV = 1.5/3.5 (hand calculation)
    assert got["school_mean_cv"] == pytest.approx(1.5 / 3.5)
    assert bool(got["suppressed"])  # only 2 schools


def test_variance_decomposition_unbalanced_hand_calculation_and_groups():
    # Unbalanced: A=[1,3] B=[2,4,6] C=[10]; N=6 k=3, grand 26/6.
    # SSB = 2(2-13/3)^2 + 3(4-13/3)^2 + (10-13/3)^2 = 43.3333; SSW = 2 + 8 + 0 = 10
    # MSB = 21.6667, MSW = 10/3, n0 = (6 - 14/6)/2 = 1.8333
    # ICC = (21.6667-3.3333)/(21.6667+0.8333*3.3333) = 0.7534 ; eta2 = 43.3333/53.3333 = 0.8125
    df = pd.DataFrame(
        {
            "g": [1] * 6 + [2] * 4,
            "school_id": list("AABBBC") + list("XXYY"),
            "score": [1, 3, 2, 4, 6, 10, 5, 5, 5, 5.0],
        }
    )
    got = explore.variance_decomposition(df, by=["g"]).set_index("g")
    assert got.loc[1, "icc1"] == pytest.approx(18.33333 / 24.44444, rel=1e-5)
    assert got.loc[1, "eta_squared"] == pytest.approx(0.8125)
    assert got.loc[1, "n0"] == pytest.approx(11 / 6)
    # group 2 has no variance at all: ICC and eta^2 undefined, not 0 and not an error
    assert np.isnan(got.loc[2, "icc1"]) and np.isnan(got.loc[2, "eta_squared"])


@settings(max_examples=40, deadline=None)
@given(
    sizes=st.lists(st.integers(1, 6), min_size=2, max_size=6),
    data=st.data(),
    scale=st.floats(0.1, 50),
    shift=st.floats(-1000, 1000),
)
def test_variance_decomposition_properties(sizes, data, scale, shift):
    """eta^2 in [0, 1], ICC(1) <= 1, both unchanged by an affine change of the score scale."""
    values = data.draw(
        st.lists(st.integers(0, 20), min_size=sum(sizes), max_size=sum(sizes)), label="scores"
    )
    df = pd.DataFrame(
        {"g": 1, "school_id": np.repeat([f"s{i}" for i in range(len(sizes))], sizes),
         "score": np.asarray(values, dtype=float)}
    )  # fmt: skip
    a = explore.variance_decomposition(df, by=["g"]).iloc[0]
    b = explore.variance_decomposition(df.assign(score=df["score"] * scale + shift), by=["g"])
    b = b.iloc[0]
    if not np.isnan(a["eta_squared"]):
        assert -1e-12 <= a["eta_squared"] <= 1 + 1e-12
        assert b["eta_squared"] == pytest.approx(a["eta_squared"], rel=1e-6, abs=1e-9)
    if not np.isnan(a["icc1"]):
        assert a["icc1"] <= 1 + 1e-9
        assert b["icc1"] == pytest.approx(a["icc1"], rel=1e-6, abs=1e-9)


def test_describe_and_weight_summary_hand_calculation():
    got = explore.describe_scores(SCHOOLS_ABC, by=["grade"]).iloc[0]
    w, y = SCHOOLS_ABC["weight"], SCHOOLS_ABC["score"]
    # weighted mean = 169/14 = 12.0714 (hand: 10+24+15+20+54+10+18+7+11 = 169)
    assert got["mean"] == pytest.approx(169 / 14)
    assert got["sd"] == pytest.approx(np.sqrt((w * (y - 169 / 14) ** 2).sum() / 14))
    assert (got["n_students"], got["n_schools"], bool(got["suppressed"])) == (9, 3, True)
    ws = explore.weight_summary(SCHOOLS_ABC, by=["grade"]).iloc[0]
    # sum w = 14, sum w^2 = 1+4+1+1+9+4+4+1+1 = 26 -> n_eff = 196/26 = 7.538, deff = 9*26/196
    assert ws["n_eff"] == pytest.approx(196 / 26)
    assert ws["deff_weighting"] == pytest.approx(9 * 26 / 196)


REG = pd.DataFrame(
    {
        "school_id": np.repeat(["s1", "s2", "s3", "s4", "s5"], 4),
        "score": [480, 510, 455, 530, 560, 590, 540, 575, 420, 445, 470, 400,
                  505, 525, 490, 515, 600, 570, 585, 610.0],
        "x": [1.0, 2.5, 0.5, 3.0, 2.0, 3.5, 1.5, 2.5, 0.0, 1.0, 2.0, -0.5,
              1.5, 2.0, 0.5, 2.5, 3.0, 2.0, 2.5, 4.0],
        "b": pd.array([1, 0, 1, 0, 0, 0, 1, 0, 1, 1, 0, 1, 0, 1, 0, 0, 0, 0, 0, 1], dtype="boolean"),
        "weight": [10, 12, 8, 11, 9, 9, 14, 10, 20, 18, 16, 22, 12, 11, 10, 13, 7, 8, 9, 7.0],
    }
)  # fmt: skip


def _r_regression_input() -> pd.DataFrame:
    """tests/fixtures/r/explore_regression.csv with the pipeline's dtypes: ids as strings, the 0/1
    factor as a nullable boolean and gender as a nullable string (both with a missing value)."""
    d = pd.read_csv(
        FIX_R / "explore_regression.csv",
        dtype={"county_code": str, "school_id": str, "gender": "string"},
        keep_default_na=False,
        na_values=[""],
    )
    return d.assign(b=d["b"].astype("boolean"))


def test_factor_regression_matches_r_crv1():
    """Every number of the coefficient table against R, unscaled.

    Expected: tests/fixtures/r/explore_regression_expected.csv, written by
    tests/fixtures/r/make_explore_fixture.R (R 4.2.2, sandwich 3.0.2, lmtest 0.9.40) from the
    committed input explore_regression.csv:
    fit <- lm(score ~ x + b + gender + county_code, data = complete cases, weights = weight);
    V <- sandwich::vcovCL(fit, cluster = ~school_id, type = "HC1")  (CRV1);
    lmtest::coeftest / coefci(fit, vcov. = V, df = G - 1).
    """
    expected = pd.read_csv(FIX_R / "explore_regression_expected.csv")
    fit = explore.factor_regression(
        _r_regression_input(), "score ~ x + b + C(gender) + C(county_code)"
    )
    got = fit.table.set_index("term")
    assert sorted(got.index) == sorted(expected["term"])
    got = got.loc[expected["term"]]
    for col in ("estimate", "se", "ci_low", "ci_high", "p_value"):
        np.testing.assert_allclose(got[col], expected[col], rtol=1e-8, err_msg=col)
    # 85 rows, 6 with a missing model variable; school S2504 loses both rows: 79 students, 12
    # schools (R: complete.cases, then length(unique(school_id)))
    assert (fit.n_obs, fit.n_clusters) == (expected["n_obs"][0], expected["n_clusters"][0])
    assert (fit.n_obs, fit.n_clusters) == (79, 12)
    assert fit.result.df_resid_inference == expected["df"][0]  # t on G - 1 = 11 df
    assert fit.r_squared == pytest.approx(expected["r_squared"][0], rel=1e-8)  # summary(fit)


def test_factor_regression_drops_missing_rows_with_their_clusters():
    reg = REG.copy()
    reg.loc[0, "x"] = np.nan
    reg["b"] = reg["b"].astype("boolean")
    reg.loc[1, "b"] = pd.NA
    fit = explore.factor_regression(reg, "score ~ x + b")
    assert fit.n_obs == 18 and fit.n_clusters == 5


def test_factor_regression_negative_cases():
    with pytest.raises(EqmError, match="无法解析"):
        explore.factor_regression(REG, "score ~ no_such_column")
    with pytest.raises(EqmError, match="样本不足"):
        explore.factor_regression(REG[REG["school_id"] == "s1"], "score ~ x")


def test_factor_regressions_per_group_with_bh_q_values():
    two = pd.concat([REG.assign(grade=4), REG.assign(grade=8, score=REG["score"][::-1].to_numpy())])
    got = explore.factor_regressions(two, "score ~ x + b", by=["grade"], min_schools=5)
    assert got["grade"].tolist() == [4, 4, 4, 8, 8, 8]
    slopes = got[got["term"] != "Intercept"]
    p = np.sort(slopes["p_value"].to_numpy())
    # Benjamini-Hochberg by hand: q_(i) = min_{j>=i} p_(j) * m / j, m = 4
    q = np.minimum.accumulate((p * 4 / np.arange(1, 5))[::-1])[::-1]
    np.testing.assert_allclose(np.sort(slopes["q_value"]), np.minimum(q, 1))
    assert got.loc[got["term"] == "Intercept", "q_value"].isna().all()
    with pytest.raises(EqmError, match="至少 6 所学校"):
        explore.factor_regressions(two, "score ~ x", by=["grade"], min_schools=6)


def test_school_resources_against_thresholds():
    compliance = pd.DataFrame(
        {"year": 2022, "county_code": "450107", "school_id": ["b", "a"], "stage": "primary",
         "L1": [4.2, 4.0], "L2": [1.5, 0.5]}
    )  # fmt: skip
    th = pd.DataFrame({"stage": "primary", "indicator": ["L1", "L2"], "threshold": [4.2, 1.0]})
    got = explore.school_resources(compliance, th)
    assert got["school_id"].tolist() == ["a", "a", "b", "b"]
    assert got["met"].tolist() == [False, False, True, True]  # 4.2 >= 4.2 met (inclusive)
    assert got["ratio"].tolist() == pytest.approx([4.0 / 4.2, 0.5, 1.0, 1.5])


def test_resource_thresholds_from_params(project_root):
    th = explore.resource_thresholds(project_root).set_index(["stage", "indicator"])["threshold"]
    assert len(th) == 14
    # 县域义务教育优质均衡发展督导评估办法 (2017): L1 4.2 / 5.3, L6 2000 / 2500 yuan
    assert th[("primary", "L1")] == 4.2 and th[("junior", "L1")] == 5.3
    assert th[("junior", "L6")] == 2500
    text = (project_root / "params.yaml").read_text(encoding="utf-8")
    (project_root / "params.yaml").write_text(
        text.replace("  resource_thresholds:", "  old_resource_thresholds:"), encoding="utf-8"
    )
    with pytest.raises(EqmError, match="resource_thresholds"):
        explore.resource_thresholds(project_root)


def test_official_first_prefers_county_report_values():
    base = {"year": 2022, "county_code": "450107", "grade": 4, "subject": "math",
            "group_var": "", "group_value": ""}  # fmt: skip
    ind = pd.DataFrame(
        [
            {**base, "indicator": "school_difference_rate", "source": "computed", "estimate": 0.2},
            {**base, "indicator": "school_difference_rate", "source": "official", "estimate": 0.1},
            {**base, "indicator": "mean_score", "source": "computed", "estimate": 500.0},
        ]
    )
    got = explore.official_first(ind).set_index("indicator")
    assert got.loc["school_difference_rate", "estimate"] == 0.1
    assert got.loc["mean_score", "source"] == "computed" and len(got) == 2


def test_balance_side_by_side_joins_the_stage_values():
    df = pd.DataFrame(
        {
            "year": 2022,
            "county_code": "450107",
            "grade": 4,
            "subject": "math",
            "school_id": list("AAABBBCCC") * 2,
            "score": [1, 2, 3, 4, 5, 6, 2, 3, 4.0] * 2,
        }
    )  # fmt: skip (every value twice: 18 students, so the group is not suppressed)
    vd = explore.variance_decomposition(df)
    base = {"year": 2022, "county_code": "450107", "grade": 4, "subject": "math",
            "group_var": "", "group_value": "", "suppressed": False}  # fmt: skip
    ind = pd.DataFrame(
        [
            {**base, "indicator": "school_difference_rate", "source": "computed", "estimate": 0.5},
            {**base, "indicator": "school_difference_rate", "source": "official", "estimate": 0.4},
            {**base, "indicator": "eta_squared", "source": "computed", "estimate": 0.7},
            {**base, "indicator": "mean_score", "source": "computed", "estimate": 3.4},
        ]
    )
    got = explore.balance_side_by_side(vd, ind).iloc[0]
    assert got["indicator_school_difference_rate"] == 0.4  # official wins
    assert got["indicator_eta_squared"] == 0.7 and np.isnan(got["indicator_school_mean_cv"])
    # A=[1,2,3]x2 B=[4,5,6]x2 C=[2,3,4]x2, grand 10/3 (hand): SSB = 6(16 + 25 + 1)/9 = 28,
    # SSW = 3 x 4 = 12, eta^2 = 28/40
    assert got["eta_squared"] == pytest.approx(28 / 40)


def test_factor_table_keeps_labelled_terms_in_label_order():
    fits = pd.DataFrame(
        {"grade": [8, 4, 4, 4], "term": ["ses", "C(county_code)[T.2]", "sleep_hours", "ses"],
         "estimate": [1.0, 2.0, 3.0, 4.0]}
    )  # fmt: skip
    got = explore.factor_table(fits)
    assert got["grade"].tolist() == [4, 4, 8]
    assert got["term"].tolist() == ["ses", "sleep_hours", "ses"]
    assert got["factor"].iloc[1] == "每天睡眠时间（每 1 小时）"


def test_chinese_font_is_registered():
    import matplotlib as mpl
    from matplotlib import font_manager

    name = explore.use_chinese_font()
    assert name == explore.FONT_NAME
    found = font_manager.findfont(
        font_manager.FontProperties(family=name), fallback_to_default=False
    )
    assert found.endswith(explore.FONT_FILE)
    assert mpl.rcParams["font.sans-serif"][0] == name


def test_school_means_plot_keeps_id_order_and_hides_suppressed():
    import matplotlib.pyplot as plt

    sm = pd.DataFrame(
        {"school_id": ["c", "a", "b"], "mean": [3.0, 1.0, 2.0], "ci_low": [2.0, 0.0, 1.0],
         "ci_high": [4.0, 2.0, 3.0], "sum_weight": 1.0, "suppressed": [False, False, True]}
    )  # fmt: skip
    ax = explore.plot_school_means(sm)
    assert [t.get_text() for t in ax.get_xticklabels()] == ["a", "c"]
    plt.close("all")


def test_resource_ratio_plot_one_panel_per_indicator_with_floor():
    import matplotlib.pyplot as plt

    res = pd.DataFrame(
        {
            "indicator": ["L2", "L1", "L1"],
            "county_name": ["乙", "乙", "甲"],
            "ratio": [0.5, 1.2, 0.9],
        }
    )
    fig = explore.plot_resource_ratios(res, 0.85)
    assert [ax.get_title() for ax in fig.axes] == ["L1", "L2"]
    l1 = fig.axes[0]
    assert [t.get_text() for t in l1.get_xticklabels()] == ["乙", "甲"]
    assert sorted(line.get_ydata()[0] for line in l1.lines[1:]) == [0.85, 1.0]
    plt.close(fig)


# ------------------------------------------------------------------------------------------------
# notebooks: committed without outputs, executed against synthetic processed tables
# ------------------------------------------------------------------------------------------------


def test_notebooks_are_committed_without_outputs():
    import nbformat

    assert len(NOTEBOOKS) >= 3
    for path in NOTEBOOKS:
        nb = nbformat.read(path, as_version=4)
        for cell in nb.cells:
            if cell.cell_type == "code":
                assert not cell.outputs and cell.execution_count is None, path.name
                assert len(cell.source.splitlines()) <= 12, f"{path.name}: long cell"
        text = path.read_text(encoding="utf-8")
        assert "pipeline.report" not in text and "data/raw" not in text


def _write(root: Path, tables: dict[str, pd.DataFrame]) -> None:
    paths = Paths(root)
    with outputs() as out:
        for name, df in tables.items():
            target = paths.validated(name) if name in explore.VALIDATED_TABLES else None
            out.parquet(df, target if target is not None else getattr(paths, name))


def _write_processed(root: Path, seed: int = 7) -> None:
    """Small synthetic round with the contract's columns: 2 counties x 2 grades x 12 schools."""
    rng = np.random.default_rng(seed)
    counties, grades = ["450107", "450125"], [4, 8]
    keys = pd.MultiIndex.from_product(
        [counties, grades, range(12), range(15)], names=["county_code", "grade", "sch", "k"]
    ).to_frame(index=False)
    n = len(keys)
    sid = keys["county_code"] + "-" + keys["grade"].astype(str) + "-" + keys["sch"].astype(str)
    school_effect = rng.normal(0, 30, size=48)[pd.factorize(sid)[0]]
    students = pd.DataFrame(
        {
            "year": 2022,
            "student_id": [f"{i:06x}" for i in range(n)],
            "county_code": keys["county_code"],
            "school_id": sid,
            "grade": keys["grade"].astype("int64"),
            "gender": np.where(rng.random(n) < 0.5, "male", "female"),
            "urban_rural": rng.choice(["urban", "town", "rural"], n),
            "left_behind": pd.array(rng.random(n) < 0.2, dtype="boolean"),
            "migrant": pd.array(rng.random(n) < 0.1, dtype="boolean"),
            "myopia": pd.array(rng.random(n) < 0.4, dtype="boolean"),
            "ses": rng.normal(size=n),
            "weight": rng.uniform(5, 15, n),
            "homework_minutes": rng.gamma(4, 15, n),
            "sleep_hours": rng.normal(9.3, 0.8, n),
            "fitness_score": rng.normal(78, 9, n),
            "source_file": "students/demo.csv",
            "source_row": np.arange(2, n + 2),
        }
    )
    subjects = ["chinese", "arts"]
    scores = pd.concat(
        [
            pd.DataFrame(
                {
                    "year": 2022,
                    "student_id": students["student_id"],
                    "subject": s,
                    "scale_score": 500
                    + school_effect
                    + 20 * students["ses"]
                    + rng.normal(0, 80, n),
                }
            )
            for s in subjects
        ],
        ignore_index=True,
    )
    scores["level"] = pd.cut(scores["scale_score"], [-np.inf, 380, 480, 580, np.inf],
                             labels=["I", "II", "III", "IV"], right=False).astype("str")  # fmt: skip
    ind_keys = pd.MultiIndex.from_product(
        [[*counties, "450100"], grades, subjects, ["pct_level_I", "pct_level_II", "pct_level_III",
         "pct_level_IV", "mean_score", "school_difference_rate"]],
        names=["county_code", "grade", "subject", "indicator"],
    ).to_frame(index=False)  # fmt: skip
    est = np.where(ind_keys["indicator"].str.startswith("pct_level"), 25.0, 500.0)
    est = np.where(ind_keys["indicator"] == "school_difference_rate", 0.12, est)
    indicators = ind_keys.assign(
        year=2022, group_var="", group_value="", estimate=est, se=1.0, ci_low=est - 2,
        ci_high=est + 2, n_students=360, n_schools=12, method="jkn", source="computed",
        suppressed=False,
    )  # fmt: skip
    first = ~sid.duplicated()
    schools = pd.DataFrame(
        {
            "year": 2022,
            "county_code": keys.loc[first, "county_code"].to_numpy(),
            "school_id": sid[first].to_numpy(),
            "stage": np.where(keys.loc[first, "grade"] == 4, "primary", "junior"),
        }
    )
    compliance = schools.assign(
        school_name="学校" + schools["school_id"],
        **{f"L{i}": rng.uniform(0.5, 12, len(schools)) for i in range(1, 8)},
        n_met=6, min_ratio_unmet=0.9, passes=True,
    )  # fmt: skip
    balance = pd.MultiIndex.from_product(
        [counties, ["primary", "junior"], [f"L{i}" for i in range(1, 8)]],
        names=["county_code", "stage", "indicator"],
    ).to_frame(index=False)
    balance = balance.assign(year=2022, county_value=5.0, cv=0.3, threshold=0.5, passes=True,
                             n_schools=12)  # fmt: skip
    questionnaires = _questionnaires(rng, students, subjects)
    students = questionnaires.pop("students")
    factors = factor_estimates(students, scores, *questionnaires.values(), None,
                               explore.monitoring(root), IndicatorsParams())  # fmt: skip
    _write(
        root,
        {
            "students": students,
            "scores": scores,
            "schools": schools,
            "indicators": indicators,
            "resource_balance": balance,
            "school_compliance": compliance,
            "factors": factors,
            **questionnaires,
        },
    )


def _questionnaires(rng, students: pd.DataFrame, subjects: list[str]) -> dict[str, pd.DataFrame]:
    """Student questionnaire items (1–4), two teachers per school and subject, one principal per
    school (相关因素, pipeline/catalogue.py): what notebook 3.0 reads."""
    n = len(students)
    items = {f"{i}_{k}": rng.integers(1, 5, n).astype(float)
             for i in ("interest", "confidence", "relation") for k in (1, 2, 3)}  # fmt: skip
    students = students.assign(**items, exercise_minutes=rng.gamma(3, 20, n))
    schools = students[["year", "county_code", "school_id", "grade"]].drop_duplicates()
    teachers = schools.loc[schools.index.repeat(2 * len(subjects))].reset_index(drop=True)
    m = len(teachers)
    teachers = teachers.assign(
        teacher_id=[f"t{i}" for i in range(m)], subject=subjects * (m // len(subjects)),
        major_match=pd.array(rng.random(m) < 0.8, dtype="boolean"),
        **{f"method_{k}": rng.integers(1, 5, m).astype(float) for k in (1, 2, 3)},
    )  # fmt: skip
    principals = schools.drop(columns="grade").assign(
        **{f"facility_use_{k}": rng.integers(1, 5, len(schools)).astype(float) for k in (1, 2, 3)},
        curriculum_complete=pd.array(rng.random(len(schools)) < 0.7, dtype="boolean"),
    )  # fmt: skip
    return {"students": students, "teachers": teachers, "principals": principals}


@pytest.mark.slow
@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_runs_on_synthetic_processed_tables(notebook, project_root, monkeypatch):
    import nbclient
    import nbformat

    _write_processed(project_root)
    monkeypatch.setenv(explore.ROOT_ENV, str(project_root))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    nb = nbformat.read(notebook, as_version=4)
    nbclient.NotebookClient(nb, timeout=120, kernel_name="python3",
                            resources={"metadata": {"path": str(notebook.parent)}}).execute()  # fmt: skip
