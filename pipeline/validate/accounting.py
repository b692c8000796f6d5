"""Accounting: quarantine rows, the ingest manifest check and the summary (nothing leaves the count)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from pipeline import schemas
from pipeline.validate.params import ROW_RULES, TABLES, TRACE
from pipeline.validate.rules import _loads


@dataclass(frozen=True)
class ValidationResult:
    validated: dict[str, pd.DataFrame]
    quarantine: pd.DataFrame  # ingest's rows + this stage's
    findings: pd.DataFrame
    summary: dict
    balance: pd.DataFrame  # table, source_file, year, rows_in, passed, quarantined

    @property
    def has_errors(self) -> bool:
        return bool((self.findings["severity"] == "error").any())


# ------------------------------------------------------------------------------------------------
# Quarantine rows
# ------------------------------------------------------------------------------------------------


def _display(table: str, column: str) -> str:
    try:
        return schemas.INPUT_TABLES[table][column].display
    except KeyError:
        return column


def _value_text(v: pd.Series) -> pd.Series:
    return v.astype("object").where(v.notna(), None).map(lambda x: "空" if x is None else str(x))


def _quarantine_rows(
    table: str, df: pd.DataFrame, fails: pd.DataFrame, county: pd.Series, stage: str = "validate"
) -> pd.DataFrame:
    """One quarantine row per failing canonical row, all its rules joined (sorted by rule id)."""
    if fails.empty:
        return _empty_quarantine()
    f = fails.drop_duplicates(["pos", "rule", "column"]).sort_values(["pos", "rule", "column"])
    # message per violation: "<rule text>（<column label>：<value>）"
    msgs = []
    for column, grp in f.groupby("column", sort=True):
        if column in df.columns:
            vals = _value_text(df[column].iloc[grp["pos"].to_numpy()]).to_numpy()
            text = "（" + _display(table, column) + "：" + pd.Series(vals, index=grp.index) + "）"
        else:  # compound key: name the key columns
            cols = [_display(table, c) for c in column.split(",")]
            text = pd.Series("（" + "、".join(cols) + "）", index=grp.index)
        if "detail" in grp:  # a check's own explanation replaces the bare value
            det = grp["detail"]
            text = text.where(
                det.isna(), "（" + det.astype("object").fillna("").astype("str") + "）"
            )
        msgs.append(grp["rule"].map(ROW_RULES) + text)
    f = f.assign(message=pd.concat(msgs).reindex(f.index))
    agg = f.groupby("pos", sort=True).agg(
        rule=("rule", ";".join), column=("column", ";".join), message=("message", "；".join)
    )
    pos = agg.index.to_numpy()
    rows = df.iloc[pos]
    payload = rows.drop(columns=[c for c in TRACE if c in rows.columns])
    raw = payload.to_json(orient="records", lines=True, force_ascii=False)
    raw_lines = raw.splitlines() if len(payload) else []
    return pd.DataFrame(
        {
            "table": table,
            "source_file": rows["source_file"].astype("str").to_numpy(),
            "source_row": rows["source_row"].astype("int64").to_numpy(),
            "column": agg["column"].to_numpy(),
            "rule": agg["rule"].to_numpy(),
            "message": agg["message"].to_numpy(),
            "raw_values": raw_lines,
            "stage": stage,
            "county_code": county.iloc[pos].astype("str").to_numpy(),
            "year": rows["year"].astype("Int64").to_numpy(),
        }
    ).astype({"county_code": "str"})


QUARANTINE_COLUMNS = schemas.QUARANTINE.names


def _empty_quarantine() -> pd.DataFrame:
    return _conform_quarantine(pd.DataFrame({c: [] for c in QUARANTINE_COLUMNS}))


def _conform_quarantine(q: pd.DataFrame) -> pd.DataFrame:
    q = q.reindex(columns=QUARANTINE_COLUMNS)
    out = {}
    for c in QUARANTINE_COLUMNS:
        if c in ("source_row", "year"):
            num = pd.to_numeric(q[c], errors="coerce").astype("Int64")
            # source_row as ingest writes it (int64); year may be unknown (Int64)
            out[c] = num.astype("int64") if c == "source_row" and num.notna().all() else num
        else:
            s = q[c].astype("object")
            out[c] = s.where(s.notna(), None).astype("str")
            out[c] = out[c].where(s.notna(), pd.NA)
    return pd.DataFrame(out)


def _sort_quarantine(q: pd.DataFrame) -> pd.DataFrame:
    order = q["stage"].map({"ingest": 0, "validate": 1}).fillna(2)
    return (
        q.assign(_o=order)
        .sort_values(
            ["_o", "table", "source_file", "source_row", "rule", "column", "raw_values"],
            na_position="last",
            kind="mergesort",
        )
        .drop(columns="_o")
        .reset_index(drop=True)
    )


def _manifest_files(manifest: Mapping[str, Any] | None) -> dict[str, dict]:
    files = (manifest or {}).get("files") or {}
    if isinstance(files, Mapping):
        return {str(k): dict(v) for k, v in files.items()}
    out = {}
    for item in files:
        key = item.get("source_file") or item.get("path") or item.get("file")
        if key is not None:
            out[str(key)] = dict(item)
    return out


def _ingest_check(manifest: Mapping[str, Any] | None, iq: pd.DataFrame) -> dict:
    files = _manifest_files(manifest)
    per_file = iq.groupby("source_file").size() if len(iq) else pd.Series(dtype="int64")
    mismatched = []
    out = {}
    for f, m in sorted(files.items()):
        read, kept, qn = (m.get(k) for k in ("rows_read", "rows_kept", "rows_quarantined"))
        ok = None
        if None not in (read, kept, qn):
            ok = int(read) == int(kept) + int(qn) and int(qn) == int(per_file.get(f, 0))
            if not ok:
                mismatched.append(f)
        out[f] = {
            "rows_read": read, "rows_kept": kept, "rows_quarantined": qn, "consistent": ok,
            "empty": file_is_empty(m), "table": file_table(f, m),
        }  # fmt: skip
    return {"files": out, "mismatched": mismatched}


def file_is_empty(m: Mapping[str, Any]) -> bool:
    """A manifest entry of a file without data rows: ``empty: true``, else ``data_rows == 0``,
    else (older manifests) ``rows_read == 0``."""
    if m.get("empty") is not None:
        return bool(m.get("empty"))
    rows = m.get("data_rows", m.get("rows_read"))
    return rows is not None and int(rows) == 0


def file_table(source_file: str, m: Mapping[str, Any]) -> str | None:
    """The table a source file feeds: the manifest's ``table``, else its folder under data/raw."""
    t = m.get("table") or str(source_file).replace("\\", "/").split("/", 1)[0]
    return t if t in TABLES else None


# ------------------------------------------------------------------------------------------------
# The row ledger: every row that entered the pipeline, passed on or set aside
# ------------------------------------------------------------------------------------------------

COUNTY_HEADERS = {
    "county_code": (schemas.COUNTY_CODE.name, *schemas.COUNTY_CODE.aliases),
    "county_name": (schemas.COUNTY_NAME.name, *schemas.COUNTY_NAME.aliases),
}


def _ingest_county_labels(q: pd.DataFrame, manifest: Mapping[str, Any] | None) -> pd.Series:
    """County of each quarantine row: its ``county_code``, else (ingest could not resolve it) the
    code or name text of the source row, read from ``raw_values`` under the file's own headers
    (manifest ``columns``: header → canonical) or the schema's aliases."""
    county = q["county_code"].astype("object")
    todo = county.isna() & q["raw_values"].notna()
    if not todo.any():
        return county
    files = _manifest_files(manifest)
    labels = []
    for f, raw in zip(q.loc[todo, "source_file"], q.loc[todo, "raw_values"], strict=True):
        cols = (files.get(str(f)) or {}).get("columns") or {}
        d = _loads(raw)
        label = None
        for canon in ("county_code", "county_name"):
            heads = [h for h, c in cols.items() if c == canon] if isinstance(cols, Mapping) else []
            for h in (*heads, *COUNTY_HEADERS[canon]):
                v = d.get(h)
                if v not in (None, "") and str(v).strip():
                    label = str(v).strip()
                    break
            if label:
                break
        labels.append(label)
    out = county.copy()
    out.loc[todo] = labels
    return out


def row_ledger(
    frames: Mapping[str, pd.DataFrame],
    bad_of: Mapping[str, np.ndarray],
    county_of: Mapping[str, pd.Series],
    quarantine: pd.DataFrame,
    manifest: Mapping[str, Any] | None,
) -> pd.DataFrame:
    """Every row that entered the pipeline, as ``table, year, county, lost, rule, n``.

    Passed rows are counted per table × year × county (``n`` rows, ``lost`` False); each
    set-aside row of the quarantine (ingest's and this stage's) is one line with its ``rule``
    (``n`` = 1). ``county`` is the row's county code (scores: their student's), or for rows ingest
    could not place, the raw code or name text.
    """
    parts = []
    for t, df in frames.items():
        ok = ~bad_of[t]
        if ok.any():
            passed = pd.DataFrame(
                {
                    "year": df.loc[ok, "year"].astype("Int64").to_numpy(),
                    "county": county_of[t][ok].astype("object").to_numpy(),
                }
            )
            n = passed.groupby(["year", "county"], dropna=False, sort=True).size()
            parts.append(n.rename("n").reset_index().assign(table=t, lost=False, rule=None))
    if len(quarantine):
        parts.append(
            pd.DataFrame(
                {
                    "table": quarantine["table"].astype("object").to_numpy(),
                    "year": quarantine["year"].astype("Int64").to_numpy(),
                    "county": _ingest_county_labels(quarantine, manifest).to_numpy(),
                    "lost": True,
                    "rule": quarantine["rule"].astype("object").to_numpy(),
                    "n": 1,
                }
            )
        )
    cols = ["table", "year", "county", "lost", "rule", "n"]
    if not parts:
        return pd.DataFrame({c: pd.Series(dtype="object") for c in cols})
    led = pd.concat(parts, ignore_index=True)[cols]
    county = led["county"].astype("object")
    clean = county.where(county.notna(), None).map(
        lambda c: None if c is None or str(c).strip() in ("", "nan", "<NA>", "None") else str(c)
    )
    return led.assign(
        county=clean, year=led["year"].astype("Int64"), lost=led["lost"].astype(bool),
        n=led["n"].astype("int64"),
    )  # fmt: skip


def _counts(s: pd.Series) -> dict:
    return {str(k): int(v) for k, v in s.items()}


def _summary(
    frames, validated, quarantine, findings, balance, ingest_check, county_of, fails
) -> dict:
    vq = quarantine[quarantine["stage"] == "validate"]
    iq = quarantine[quarantine["stage"] == "ingest"]
    # rule counts: a row counts once under each rule it breaks
    long = fails.drop_duplicates(["table", "pos", "rule"])
    tables = {}
    for t in TABLES:
        tl = long[long["table"] == t]
        tables[t] = {
            "rows_in": len(frames[t]),
            "passed": len(validated[t]),
            "quarantined": int((vq["table"] == t).sum()),
            "ingest_quarantined": int((iq["table"] == t).sum()),
            "rules": _counts(tl.groupby("rule").size()),
        }
    # per county: table -> rule -> rows
    with_county = []
    for t in TABLES:
        tl = long[long["table"] == t]
        if len(tl):
            c = county_of[t].iloc[tl["pos"].to_numpy()].astype("object").fillna("unknown")
            with_county.append(
                pd.DataFrame(
                    {
                        "county": c.astype("str").to_numpy(),
                        "table": t,
                        "rule": tl["rule"].to_numpy(),
                    }
                )
            )
    counties: dict[str, dict] = {}
    if with_county:
        wc = pd.concat(with_county, ignore_index=True)
        for (county, t, rule), n in wc.groupby(["county", "table", "rule"]).size().items():
            counties.setdefault(county, {}).setdefault(t, {})[rule] = int(n)
    ing_rules = iq.groupby(["table", "rule"]).size() if len(iq) else pd.Series(dtype="int64")
    files: dict[str, dict] = {}
    for r in (
        balance.groupby(["source_file", "table"])[["rows_in", "passed", "quarantined"]]
        .sum()
        .itertuples()
    ):
        f, t = r.Index
        entry = files.setdefault(f, {"tables": {}, "ingest": ingest_check["files"].get(f)})
        entry["tables"][t] = {
            "rows_in": int(r.rows_in),
            "passed": int(r.passed),
            "quarantined": int(r.quarantined),
            "reconciled": int(r.rows_in) == int(r.passed) + int(r.quarantined),
        }
    for f, m in ingest_check["files"].items():
        files.setdefault(f, {"tables": {}, "ingest": m})
    reconciled = all(v["reconciled"] for e in files.values() for v in e["tables"].values())
    years = sorted({int(y) for df in frames.values() for y in df["year"].dropna().unique()}
                   | {int(y) for y in quarantine["year"].dropna().unique()})  # fmt: skip
    n_err = int((findings["severity"] == "error").sum())
    return {
        "status": "failed" if n_err else "passed",
        "years": years,
        "reconciled": bool(reconciled),
        "ingest_reconciled": not ingest_check["mismatched"],
        "tables": tables,
        "rules": _counts(long.groupby("rule").size()),
        "ingest_rules": {f"{t}/{r}": int(n) for (t, r), n in ing_rules.items()},
        "counties": counties,
        "files": files,
        "quarantine_rows": {"ingest": len(iq), "validate": len(vq)},
        "findings": {"error": n_err, "warn": int((findings["severity"] == "warn").sum())},
    }
