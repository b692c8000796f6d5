"""Issue 5, "Done when": on the demo data the rules find what the generator planted and nothing
the generator did not plant, at the stated alpha.

The expected findings come from the generator's TRUE parameters (``demo_truth.json`` → ``findings``),
not from the pipeline: each testable cell is ``planted`` (truly worse than the rule's threshold or
the benchmark printed in the county reports by a margin the sample can resolve), ``clearly_fine``
(truly on the good side by a margin) or ``ambiguous``. One demo round (default seed) is built once
per session (conftest ``dvc_round``: ``eqm demo-data`` + ``dvc repro``, shared with test_round_e2e);
this module reads a copy of it.
"""

from __future__ import annotations

import json
import shutil

import pandas as pd
import pytest

from pipeline import evidence, schemas
from pipeline.config import make_context

pytestmark = pytest.mark.slow

KEY = ["rule_id", *schemas.CELL_KEY]  # a candidate cell of one rule


@pytest.fixture(scope="module")
def demo_root(dvc_round, tmp_path_factory, monkeypatch_module):
    """A copy of the session's demo round (conftest ``dvc_round``: default seed, salt test-salt);
    the ledger test below writes into it."""
    root = tmp_path_factory.mktemp("demo_findings") / "round"
    shutil.copytree(dvc_round, root, symlinks=True)
    monkeypatch_module.setenv("EQM_SALT", "test-salt")  # the ledger test re-runs evidence
    return root


@pytest.fixture(scope="module")
def demo_round(demo_root):
    root = demo_root
    ctx = make_context(root, quiet=True)
    truth = json.loads((root / "data/raw/demo_truth.json").read_text(encoding="utf-8"))
    problems = pd.read_parquet(root / "data/processed/problems.parquet")
    quarantine = pd.read_parquet(root / "data/processed/validation/quarantine.parquet")
    params = evidence.stage_params(ctx)
    return truth, problems, quarantine, params


@pytest.fixture(scope="module")
def monkeypatch_module():
    mp = pytest.MonkeyPatch()
    yield mp
    mp.undo()


def _keys(df: pd.DataFrame) -> set[tuple]:
    d = df.copy()
    d["grade"] = pd.to_numeric(d["grade"], errors="coerce").astype("Int64")
    d["grade"] = pd.Series(
        [None if pd.isna(g) else int(g) for g in d["grade"]], index=d.index, dtype=object
    )
    for c in ("subject", "indicator", "group_var", "group_value"):
        d[c] = d[c].astype("string").fillna("").astype(str)
    d["year"] = d["year"].astype(int)
    d["county_code"] = d["county_code"].astype(str)
    return set(d[KEY].itertuples(index=False, name=None))


def _fired(problems: pd.DataFrame, params=None) -> pd.DataFrame:
    """Firing *measures* of the problems that fire in their own round (not close-outs, not
    carried rows), one row per candidate key: a merged ACH problem gives one row per failing
    measure (LEVEL, MEAN, MEDIUM) and a school problem one row per failing section, so the keys
    compare with the generator's planted cells."""
    now = problems["status"].isin(schemas.PROBLEM_OPEN_STATUSES)
    live = problems[now & (problems["previous_status"] != "not re-measured")]
    rows = []
    for r in live.to_dict("records"):
        ev = json.loads(r["evidence"])
        if r["rule_id"] == "ACH":
            for m in ev["measures"]:
                if m["fires"]:
                    rows.append({**r, "rule_id": m["rule_id"], "indicator": m["indicator"]})
        elif r["rule_id"] == "SCHOOL":
            for x in ev["rows"]:
                if x.get("passes") is False:
                    rows.append({**r, "group_value": f"{x['stage']}/{x['school_id']}"})
        else:
            rows.append(r)
    return pd.DataFrame(rows, columns=problems.columns)


# Sampling false discoveries of the default-seed demo, each checked against demo_truth.json: the
# sample shows a significant gender-gap reversal (the county gap itself significantly below 0) where
# the true gap has the national sign. The GAP
# rule must report what the sample shows (issue 11 asks for 横州市 四年级德育 2020: sample 女−男
# −18.0, SE 8.3, against the national +20; the generator's true gap is +10), so these cells are
# named here instead of being hidden by a weaker rule.
SAMPLE_FALSE_DISCOVERIES = {
    ("GAP", 2020, "450181", 4, "moral", "gap_mean_score", "gender", "female-male"),
}


def test_the_named_false_discoveries_do_fire(demo_round):
    # the list above cannot go stale: each named cell is a finding of this demo round
    _, problems, _, params = demo_round
    assert _keys(_fired(problems, params)) >= SAMPLE_FALSE_DISCOVERIES


def test_design_has_no_ambiguous_cells(demo_round):
    truth, *_ = demo_round
    f = truth["findings"]
    assert f["ambiguous"] == []
    rules = {p["rule_id"] for p in f["planted"]}
    assert {"ICC", "LEVEL", "MEAN", "MEDIUM", "HOMEWORK", "SLEEP", "RES", "SCHOOL"} <= rules
    # the between-school share differs by county and straddles 0.15 (issue 5's example)
    icc = {(r["county_code"]): r["icc"] for r in truth["scores"]}
    assert min(icc.values()) <= 0.05 and max(icc.values()) >= 0.25


def test_every_planted_problem_is_found(demo_round):
    truth, problems, _, params = demo_round
    fired = _keys(_fired(problems, params))
    planted = pd.DataFrame(truth["findings"]["planted"])
    each = planted[planted["detect"] == "each"]
    missing = sorted(_keys(each) - fired, key=str)
    assert missing == [], f"planted but not found: {missing[:10]}"
    anyp = planted[planted["detect"] == "any"]
    for (rule, year, county), g in anyp.groupby(["rule_id", "year", "county_code"]):
        assert _keys(g) & fired, f"{rule} {year} {county}: no planted cell fires"


def test_nothing_fires_that_is_clearly_fine(demo_round):
    truth, problems, _, params = demo_round
    fired = _keys(_fired(problems, params))
    fine = _keys(pd.DataFrame(truth["findings"]["clearly_fine"]))
    wrong = sorted(fired & fine - SAMPLE_FALSE_DISCOVERIES, key=str)
    assert wrong == [], f"fired although truly fine: {wrong}"
    # SCHOOL is a census rule: exactly the planted sections fail
    planted = pd.DataFrame(truth["findings"]["planted"])
    school = _fired(problems, params)
    assert _keys(school[school["rule_id"] == "SCHOOL"]) == _keys(
        planted[planted["rule_id"] == "SCHOOL"]
    )


def test_every_fired_problem_was_planted(demo_round):
    # stronger than "not clearly fine": with no ambiguous cells, every firing problem is planted
    truth, problems, _, params = demo_round
    fired = _keys(_fired(problems, params))
    planted = _keys(pd.DataFrame(truth["findings"]["planted"]))
    assert sorted(fired - planted - SAMPLE_FALSE_DISCOVERIES, key=str) == []


def test_planted_defects_are_quarantined(demo_round):
    truth, _, quarantine, _ = demo_round
    assert len(truth["defects"]) == 4
    q = quarantine[quarantine["stage"] == "validate"]
    for d in truth["defects"]:
        hit = q[(q["source_file"] == d["file"]) & q["source_row"].isin(d["source_rows"])]
        hit = hit[hit["table"] == d["table"]]
        # the planted duplicate is an identical copy (test_demo): one kept, the other set aside
        if d["kind"] == "duplicate_student":
            assert list(hit["source_row"]) == d["source_rows"][1:], f"defect not handled: {d}"
            assert list(hit["rule"]) == ["duplicate_identical"]
            continue
        assert len(hit) >= len(d["source_rows"]), f"defect not quarantined: {d}"


def test_rounds_linked_on_the_demo(demo_round):
    """Issue 11, "Done when" on the demo round."""
    _, problems, _, _ = demo_round
    p20 = problems[problems["year"] == 2020]
    p22 = problems[problems["year"] == 2022].set_index("problem_id")
    # every 2020 problem has a 2022 row with a status, and none of them is "new"
    assert set(p20["problem_id"]) <= set(p22.index)
    assert (p22.loc[list(p20["problem_id"]), "previous_status"] != "new").all()
    assert set(p22["previous_status"]) <= set(schemas.PROBLEM_STATUSES)
    # close-outs carry no severity; each is a previous problem that now meets its standard
    closed = p22[p22["status"] == schemas.STATUS_CLOSABLE]
    assert len(closed) > 0 and (closed["severity"] == "").all()
    assert (closed["previous_status"] == "resolved").all()
    # the hand-entered 2020 list is matched to eqm's own ids (NN2020-004 is HOMEWORK-450181-G4)
    assert p22.loc["HOMEWORK-450181-G4", "previous_problem_id"] == "NN2020-004"
    assert p22.loc["RES-450125-junior-L1", "status"] == schemas.STATUS_CLOSABLE  # NN2020-009
    # each school problem names its unmet indicators; a 一贯制 school is one problem
    sch = problems[problems["rule_id"] == "SCHOOL"]
    open_sch = sch[sch["status"].isin(schemas.PROBLEM_OPEN_STATUSES)]
    assert open_sch["title"].str.contains("项未达标：|无数据", regex=True).all()
    assert not sch.duplicated(["year", "problem_id"]).any()
    # the reversed gender gap of 横州市 四年级德育 2020 is found
    gap = p20.set_index("problem_id")
    assert "GAP-450181-G4-moral-gender-female-male" in gap.index
    assert "方向相反" in gap.loc["GAP-450181-G4-moral-gender-female-male", "title"]


def test_ledger_round_trip_on_the_demo(demo_root):
    """Issue 12, "Done when": a clerk fills 整改措施 and 完成时限 for a 2020 problem in the county's
    2020 ledger, the file goes to data/raw/ledger/ (README), and the rerun shows the same text on
    that problem's 2020 and 2022 rows."""
    import datetime as dt

    import openpyxl

    ledger = demo_root / "data/processed/evidence/2020/ledger/450181.xlsx"
    wb = openpyxl.load_workbook(ledger)
    ws = wb["整改台账"]
    hdr = [c.value for c in ws[1]]
    ws_rows = [r for r in ws.iter_rows(min_row=2) if r[0].value == "HOMEWORK-450181-G4"]
    assert len(ws_rows) == 1
    ws_rows[0][hdr.index("整改措施")].value = "建立作业公示制度，每月抽查"
    ws_rows[0][hdr.index("完成时限")].value = dt.datetime(2023, 6, 30)
    raw = demo_root / "data/raw/ledger"
    raw.mkdir(parents=True, exist_ok=True)
    wb.save(raw / "横州市2020年整改台账（已填报）.xlsx")
    try:
        evidence.run(make_context(demo_root, quiet=True))
        for year in (2020, 2022):
            for name in ("450181", "city"):
                path = demo_root / f"data/processed/evidence/{year}/ledger/{name}.xlsx"
                ws = openpyxl.load_workbook(path)["整改台账"]
                hdr = [c.value for c in ws[1]]
                row = next(r for r in ws.iter_rows(min_row=2, values_only=True)
                           if r[0] == "HOMEWORK-450181-G4")  # fmt: skip
                assert row[hdr.index("整改措施")] == "建立作业公示制度，每月抽查"
                assert row[hdr.index("完成时限")] == dt.datetime(2023, 6, 30)
        # only the county's own rows in its ledger
        ws = openpyxl.load_workbook(demo_root / "data/processed/evidence/2022/ledger/450181.xlsx")[
            "整改台账"
        ]
        ids = [r[0] for r in ws.iter_rows(min_row=2, values_only=True)]
        assert ids and all("-450181-" in i for i in ids)
    finally:
        shutil.rmtree(raw)
        evidence.run(make_context(demo_root, quiet=True))


def test_cause_hints_name_planted_factors_only(demo_round):
    """Issue 14: a cause hint names a related factor only where the generator planted both its
    association with the outcome and the county being worse than national (demo_truth.json →
    factors), and the planted ones the sample resolves are named: every newly measured ACH problem
    of 上林县 (interest and confidence planted low and associated) has a hint."""
    from pipeline.catalogue import FACTORS

    truth, problems, _, _ = demo_round
    rows = {
        (r["year"], r["county_code"], r["grade"], r["subject"], r["factor"]): r
        for r in truth["factors"]["rows"]
    }
    named = []
    for r in problems.to_dict("records"):
        hint = json.loads(r["evidence"])["cause_hint"]
        if not hint:
            continue
        assert r["rule_id"] in ("ACH", "ICC"), r["problem_id"]
        ids = [f.id for f in FACTORS.values() if f"{f.label}本县为" in hint]
        assert ids and "相关不等于因果" in hint, hint
        for fid in ids:
            t = rows[(int(r["year"]), r["county_code"], int(r["grade"]), r["subject"], fid)]
            assert t["planted"] and t["worse_planted"], (r["problem_id"], r["year"], fid)
            named.append((r["rule_id"], r["county_code"], fid))
    low = problems[
        (problems["county_code"] == "450125")
        & (problems["rule_id"] == "ACH")
        & (problems["previous_status"] != "not re-measured")
        & problems["status"].isin(schemas.PROBLEM_OPEN_STATUSES)
    ]
    assert len(low) >= 4
    for e in low["evidence"]:
        hint = json.loads(e)["cause_hint"]
        assert "学习兴趣指数本县为" in hint or "学习自信心指数本县为" in hint
    # the high-ICC counties' planted school factors are named somewhere (ICC hints)
    assert {c for rule, c, _ in named if rule == "ICC"} == {"450107", "450181"}
