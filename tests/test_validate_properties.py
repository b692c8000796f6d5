"""Property test (hypothesis): validate creates and loses no row, whatever the defects.

For random values in the checked columns (NaN, ±inf, negatives, huge numbers) and random duplicated
rows, every ingested row ends up in exactly one of the validated table and the quarantine, validated
rows are unchanged copies of input rows, and the simplest rules hold as an oracle: a student whose
weight is not a finite number > 0 is never passed on, nor is a score outside 100–900.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_validate import make_tables, run_core

NUM = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True, width=64),
    st.sampled_from([0.0, -1.0, 1.0, 100.0, 900.0, 900.5, 9999.0]),
)


@st.composite
def rounds(draw):
    tables = make_tables(n_per_school=2)
    stu = tables["students"]
    sc = tables["scores"]
    n_st, n_sc = len(stu), len(sc)
    weights = draw(st.lists(NUM, min_size=n_st, max_size=n_st))
    sleep = draw(st.lists(NUM, min_size=n_st, max_size=n_st))
    scores = draw(st.lists(NUM, min_size=n_sc, max_size=n_sc))
    dup_st = draw(st.lists(st.integers(0, n_st - 1), max_size=4))
    dup_sc = draw(st.lists(st.integers(0, n_sc - 1), max_size=4))
    stu = stu.assign(weight=weights, sleep_hours=sleep)
    sc = sc.assign(scale_score=scores, level=pd.NA)
    stu = pd.concat([stu, stu.iloc[dup_st].assign(source_row=np.arange(1000, 1000 + len(dup_st)))])
    sc = pd.concat([sc, sc.iloc[dup_sc].assign(source_row=np.arange(1000, 1000 + len(dup_sc)))])
    return {**tables, "students": stu.reset_index(drop=True), "scores": sc.reset_index(drop=True)}


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rounds())
def test_no_row_created_or_lost(tables):
    res = run_core(tables)
    q = res.quarantine[res.quarantine["stage"] == "validate"]
    for t, df in tables.items():
        qrows = sorted(q.loc[q["table"] == t, "source_row"].astype(int))
        vrows = sorted(res.validated[t]["source_row"].astype(int))
        assert sorted(qrows + vrows) == sorted(df["source_row"].astype(int)), t
        assert len(set(qrows)) == len(qrows)  # one quarantine row per rejected row
        # validated rows are the input rows, unchanged
        kept = df[df["source_row"].isin(vrows)].reset_index(drop=True)
        pd.testing.assert_frame_equal(res.validated[t], kept)
        assert res.summary["files"][df["source_file"].iloc[0]]["tables"][t]["reconciled"]
    w = res.validated["students"]["weight"]
    assert (np.isfinite(w) & (w > 0)).all()
    s = res.validated["scores"]["scale_score"].dropna()
    assert ((s >= 100) & (s <= 900)).all()
    assert res.summary["reconciled"] is True
