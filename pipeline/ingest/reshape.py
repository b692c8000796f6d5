"""Reshaping kept rows: wide score columns → long scores; 一贯制 schools → compulsory sections."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

import pipeline.schemas as schemas

COMPULSORY_STAGES = ("primary", "junior")
SPLIT_FORMS = {
    "nine_year": "九年一贯制",
    "complete_middle": "完全中学",
    "twelve_year": "十二年一贯制",
}
SECTION_ENROLLMENT = {
    "primary": "enrollment_primary",
    "junior": "enrollment_junior",
    "senior": "enrollment_senior",
}


def melt_wide(frame: pd.DataFrame, wide_vals: Mapping[tuple[str, str], pd.Series]) -> pd.DataFrame:
    """Wide score columns (one per subject × field) → long scores rows (pure).

    A subject's row is kept when any of its values is present (a blank column = not tested).
    """
    parts = []
    for subj in sorted({s for s, _ in wide_vals}):
        fields = {f: v for (s, f), v in wide_vals.items() if s == subj}
        part = pd.DataFrame(
            {
                "year": frame["year"].to_numpy(),
                "student_id": frame["student_id"].to_numpy(dtype=object),
                "subject": subj,
                **{f: v.to_numpy() for f, v in fields.items()},
                "source_file": frame["source_file"].to_numpy(dtype=object),
                "source_row": frame["source_row"].to_numpy(),
            }
        )
        part = part.loc[pd.DataFrame(fields).notna().any(axis=1).to_numpy()]
        parts.append(part)
    if not parts:
        return pd.DataFrame(columns=["year", "student_id", "subject", "source_file", "source_row"])
    return pd.concat(parts, ignore_index=True)


def split_schools(
    frame: pd.DataFrame, split_weights: Mapping[str, Mapping[str, float]]
) -> pd.DataFrame:
    """Split 一贯制 rows into their compulsory sections (pure, vectorised per form).

    Section ``s`` of a school with enrolments ``E`` gets ``w_s·E_s / Σ_t w_t·E_t`` of every
    whole-school resource quantity (``schemas.RESOURCE_QUANTITIES``) and ``enrollment = E_s``;
    weights from ``ingest.split_weights`` (domain.md: 九年一贯制 primary share A/(A + 1.1·B);
    完全中学 junior : senior = 1 : 1.2; 十二年一贯制 1 : 1.1 : 1.32). Only primary and junior sections
    are kept. Single-section rows keep ``enrollment`` (falling back to that section's enrolment
    column) and get ``source_stage = stage``. Rows reaching here have every enrolment needed.
    """
    frame = frame.copy()
    for c in ("stage", "enrollment", *SECTION_ENROLLMENT.values(), *schemas.RESOURCE_QUANTITIES):
        if c not in frame:
            frame[c] = np.nan if c != "stage" else None
    stage = frame["stage"]
    plain = ~stage.isin(list(split_weights)).to_numpy()
    single = frame.loc[plain].copy()
    single["source_stage"] = single["stage"]
    for sec in COMPULSORY_STAGES:
        m = (single["stage"] == sec).to_numpy()
        single.loc[m, "enrollment"] = single.loc[m, "enrollment"].fillna(
            single.loc[m, SECTION_ENROLLMENT[sec]]
        )
    parts = [single]
    for form, weights in split_weights.items():
        rows = frame.loc[(stage == form).to_numpy()]
        if rows.empty:
            continue
        denom = sum(w * rows[SECTION_ENROLLMENT[s]].astype(float) for s, w in weights.items())
        for sec, w in weights.items():
            if sec not in COMPULSORY_STAGES:
                continue
            e = rows[SECTION_ENROLLMENT[sec]].astype(float)
            share = (w * e / denom).to_numpy()
            part = rows.copy()
            for q in schemas.RESOURCE_QUANTITIES:
                part[q] = part[q].astype(float).to_numpy() * share
            part["stage"] = sec
            part["enrollment"] = e.to_numpy()
            part["source_stage"] = form
            parts.append(part)
    return pd.concat(parts, ignore_index=True)
