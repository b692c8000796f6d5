"""The factor catalogue (pipeline/catalogue.py): index rule and unit values, worked by hand."""

from __future__ import annotations

import numpy as np
import pandas as pd

from pipeline import catalogue, schemas
from pipeline.catalogue import FACTORS, INDICES, index_scores, raw_values

STANDARDS = {"exercise_minutes": 60.0, "reading_minutes": 30.0, "training_hours": 72.0,
             "after_school_days": 5.0}  # fmt: skip


def test_index_is_the_mean_of_answered_items_with_reverse_coding():
    conf = INDICES["confidence"]  # item 3 reverse-coded
    items = pd.DataFrame(
        {
            "confidence_1": [4, 4, 2, np.nan, np.nan],
            "confidence_2": [3, np.nan, 2, np.nan, 1],
            "confidence_3": [1, 4, np.nan, np.nan, np.nan],
        },
        dtype=float,
    )
    got = index_scores(items, conf, 0.5)
    # (4 + 3 + (5 − 1))/3 = 11/3; (4 + (5 − 4))/2 = 2.5; (2 + 2)/2 = 2; no answer; 1 of 3 answered
    # is under half (ceil(0.5 · 3) = 2 needed)
    np.testing.assert_allclose(got, [11 / 3, 2.5, 2.0, np.nan, np.nan])
    # with min share 1/3 a single answer is enough
    np.testing.assert_allclose(index_scores(items, conf, 1 / 3)[4], 1.0)
    wb = INDICES["wellbeing"]  # items 2 and 4 reversed: (1, 1, 1, 1) -> (1 + 4 + 1 + 4)/4
    one = pd.DataFrame({c: [1.0] for c in wb.items})
    assert index_scores(one, wb, 0.5)[0] == 2.5


def test_share_factors_meet_their_standard_inclusively_and_keep_missing():
    st = pd.DataFrame(
        {
            "exercise_minutes": [59.0, 60.0, np.nan],
            "tutoring": pd.array([True, False, pd.NA], dtype="boolean"),
        }
    )
    np.testing.assert_array_equal(
        raw_values(FACTORS["exercise"], st, STANDARDS, 0.5), [0.0, 1.0, np.nan]
    )  # 60 minutes is "at least one hour"
    np.testing.assert_array_equal(
        raw_values(FACTORS["tutoring"], st, STANDARDS, 0.5), [1, 0, np.nan]
    )
    te = pd.DataFrame({"education": ["bachelor", "college", "postgraduate", None]})
    np.testing.assert_array_equal(
        raw_values(FACTORS["t_degree"], te, STANDARDS, 0.5), [1.0, 0.0, 1.0, np.nan]
    )
    # an absent source column gives missing values, never 0
    assert np.isnan(raw_values(FACTORS["reading"], st, STANDARDS, 0.5)).all()


def test_catalogue_is_consistent_with_the_schemas_and_params():
    students = set(schemas.STUDENTS.names)
    tables = {"student": students, "teacher": set(schemas.TEACHERS.names),
              "principal": set(schemas.PRINCIPALS.names)}  # fmt: skip
    for f in FACTORS.values():
        cols = INDICES[f.source].items if f.index else (f.source,)
        assert set(cols) <= tables[f.level], f.id
        if f.threshold:
            assert f.threshold in STANDARDS
        assert f.term_phrase and f.label
    assert catalogue.national_key("interest") == "factor_interest"
    assert catalogue.national_key("relation", sd=True) == "factor_relation_sd"
    assert catalogue.FACTORS["interest"].term_phrase == "学习兴趣指数每高1"
