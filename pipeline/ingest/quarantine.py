"""Quarantine records: per-row parse failures and the rows/cells set aside, PII removed.

A cell value is shown (in a message or in ``raw_values``) only with ID-number-like digits masked
and run-together lines elided (:func:`pipeline.ingest.values.shown_text`); student and teacher
ids only as their pseudonym; name and ID number columns never (they are dropped before any record
is built)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

import pipeline.schemas as schemas
from pipeline.ingest.values import as_text, shown_text


class _Fails:
    """Per-row parse failures collected column by column (vectorised)."""

    def __init__(self, n: int) -> None:
        self.bad = np.zeros(n, dtype=bool)
        self.column = np.full(n, None, dtype=object)
        self.rule = np.full(n, None, dtype=object)
        self.message = np.full(n, "", dtype=object)

    def add(
        self,
        mask: np.ndarray,
        column: str,
        rule: str,
        template: str,
        values: pd.Series | None = None,
    ) -> None:
        """Record failures; ``template``'s ``{}`` is replaced by each row's quoted raw value."""
        mask = np.asarray(mask, dtype=bool)
        if not mask.any():
            return
        if values is None:
            msg = np.full(len(mask), template, dtype=object)
        else:  # built only when some row failed
            before, _, after = template.partition("{}")
            msg = (before + _quote(as_text(values)) + after).to_numpy(dtype=object)
        self.add_messages(mask, column, rule, msg)

    def add_messages(self, mask: np.ndarray, column: str, rule: str, msg: np.ndarray) -> None:
        """Record failures with one ready message per row (``msg`` as long as ``mask``)."""
        mask = np.asarray(mask, dtype=bool)
        if not mask.any():
            return
        msg = np.asarray(msg, dtype=object)
        new = mask & ~self.bad
        self.column[new] = column
        self.rule[new] = rule
        prev = self.message[mask]
        self.message[mask] = np.where(prev == "", msg[mask], prev + "；" + msg[mask])
        self.bad |= mask


def _quote(text: pd.Series) -> pd.Series:
    return "「" + shown_text(text).fillna("").astype(str) + "」"


def _shown(values: pd.Series) -> list:
    """A raw column as ``raw_values`` shows it: stripped text, masked and elided (``shown_text``)."""
    return shown_text(as_text(values)).tolist()


def _pseudonymised(table: str, cols) -> list[str]:
    """The read columns of ``table`` shown only as their pseudonym (student_id, teacher_id)."""
    tbl = schemas.INPUT_TABLES[table]
    return [c for c in cols if c in tbl.names and tbl[c].pseudonymised]


def _quarantine_rows(raw, bad, fails, out, cols, wide, pvs) -> pd.DataFrame:
    if not bad.any():
        return empty_quarantine()
    ids = _pseudonymised(raw.table, cols)
    shown = (
        [h for c, (h, _) in cols.items() if c not in ids] + list(wide.values()) + list(pvs.values())
    )
    sub = raw.data.reset_index(drop=True).loc[bad, [h for h in raw.data.columns if h in set(shown)]]
    texts = {h: _shown(sub[h]) for h in sub.columns}
    for c in ids:
        texts[cols[c][0]] = out[c][bad].tolist()
    keys = sorted(texts)
    records = [
        json.dumps({k: texts[k][i] for k in keys}, ensure_ascii=False, sort_keys=True)
        for i in range(int(bad.sum()))
    ]
    year = out["year"][bad] if "year" in out else pd.Series(np.nan, index=range(int(bad.sum())))
    county = (
        out["county_code"][bad]
        if "county_code" in out
        else pd.Series(None, index=year.index, dtype=object)
    )
    return pd.DataFrame(
        {
            "table": raw.table,
            "source_file": raw.source,
            "source_row": np.asarray(raw.rows, dtype=np.int64)[bad],
            "column": fails.column[bad],
            "rule": fails.rule[bad],
            "message": fails.message[bad],
            "raw_values": records,
            "stage": "ingest",
            "county_code": county.to_numpy(dtype=object),
            "year": pd.array(year.to_numpy(dtype=float), dtype="Float64").astype("Int64"),
        }
    )


def _quarantine_cells(raw, mask, sf, out, cols, heads) -> pd.DataFrame:
    """Quarantine records for one subject's wide score cells of kept student rows (table scores)."""
    m = int(mask.sum())
    data = raw.data.reset_index(drop=True)
    texts = {h: _shown(data.loc[mask, h]) for h in heads}
    for c in _pseudonymised(raw.table, cols):
        texts[cols[c][0]] = out[c][mask].tolist()
    keys = sorted(texts)
    records = [
        json.dumps({k: texts[k][i] for k in keys}, ensure_ascii=False, sort_keys=True)
        for i in range(m)
    ]
    year = out["year"][mask] if "year" in out else pd.Series(np.nan, index=range(m))
    county = out["county_code"][mask] if "county_code" in out else pd.Series([None] * m)
    return pd.DataFrame(
        {
            "table": "scores",
            "source_file": raw.source,
            "source_row": np.asarray(raw.rows, dtype=np.int64)[mask],
            "column": sf.column[mask],
            "rule": sf.rule[mask],
            "message": sf.message[mask] + "（该生其他数据已保留，仅该科成绩被隔离）",
            "raw_values": records,
            "stage": "ingest",
            "county_code": county.to_numpy(dtype=object),
            "year": pd.array(year.to_numpy(dtype=float), dtype="Float64").astype("Int64"),
        }
    )


def empty_quarantine() -> pd.DataFrame:
    return _finalise_quarantine(pd.DataFrame({c: [] for c in schemas.QUARANTINE.names}))


def _finalise_quarantine(df: pd.DataFrame) -> pd.DataFrame:
    res = {}
    for c in schemas.QUARANTINE.names:
        s = df[c] if c in df else pd.Series([None] * len(df), dtype=object)
        if c == "source_row":
            res[c] = s.astype("int64")
        elif c == "year":
            res[c] = (
                pd.array(s, dtype="Float64").astype("Int64")
                if len(s)
                else pd.array([], dtype="Int64")
            )
        else:
            res[c] = s.astype("str")
    out = pd.DataFrame(res, columns=schemas.QUARANTINE.names)
    return out.sort_values(["table", "source_file", "source_row"], kind="mergesort").reset_index(
        drop=True
    )
