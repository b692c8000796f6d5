"""Rounds linked: every problem of the previous round gets a row in this round, with its status.

The previous round of round Y is the latest earlier year for which the project holds a problem list:
eqm's own output for that year (computed in the same run, from the same project's data) and/or a
hand-entered list (``previous_problems/``). A hand-entered item is named by the same identity
function as eqm's problems (:mod:`pipeline.evidence.identity`); its own number is kept as
``previous_problem_id``. An item whose object eqm cannot find in either round is kept under its own
number and reported as unmatched.

Status of a previous problem in round Y (``previous_status``):

* ``improved`` / ``unchanged`` / ``worse``: it is still a problem; the change of its value is tested
  (:func:`pipeline.evidence.inference.change_test`: two-sided z on the difference of the two
  rounds, ``SE = sqrt(se_now² + se_prev² + LE²)``, BH over the round's change tests, q < alpha).
  Census values (差异系数, 学校达标项数) have no sampling error: a change larger than
  ``census_change_tolerance`` decides.
* ``resolved``: it now meets its standard (its rule no longer fires): a close-out, status
  建议销号, no severity, counted apart from the problems; the change test is still reported.
* ``not re-measured``: no value this round (NAEQ rotates subjects on a 3-year cycle): the row is
  carried with its last measured value and year, status 整改中, and is re-measured when the subject
  returns (the previous value then comes from the carried row).
* ``new``: this round's problem that the previous round's list did not have.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import numpy as np
import pandas as pd

import pipeline.schemas as schemas
from pipeline.evidence.inference import bh_qvalues, change_test
from pipeline.evidence.params import EvidenceParams
from pipeline.evidence.rules import BAD_DIRECTION, KEYS

log = logging.getLogger(__name__)

CENSUS_RULES = ("RES", "SCHOOL")
TREND_RULES = ("ACH", "ICC", "GAP")
CHANGE_TEST_TEXT = (
    "两侧 z 检验：z = 变化 / sqrt(本轮标准误² + 上轮标准误² + 链接误差²)，"
    "z > 0 表示向不利方向变化；本轮全部变化检验一起作 BH 校正"
)
CENSUS_TEXT = "普查数据无抽样误差：变化超过容差 {tol:g} 即判定改善或恶化"


def _f(x) -> float:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return np.nan
    return v


def _key(r: Mapping) -> tuple:
    g = r.get("grade")
    return (
        str(r["county_code"]), None if pd.isna(g) else int(g), str(r.get("subject") or ""),
        str(r["indicator"]), str(r.get("group_var") or ""), str(r.get("group_value") or ""),
    )  # fmt: skip


class History:
    """Values of every indicator in every year of the project (computed or official), for the
    previous SE of a hand-entered item and the same-subject trend."""

    def __init__(self, obs: pd.DataFrame):
        self.rows: dict[tuple, tuple[float, float]] = {}
        self.years: dict[tuple, list[int]] = {}
        for r in obs.to_dict("records"):
            k = _key(r)
            self.rows[(int(r["year"]), *k)] = (_f(r["estimate"]), _f(r["se"]))
            self.years.setdefault(k, []).append(int(r["year"]))

    def get(self, year: int, key: tuple) -> tuple[float, float] | None:
        return self.rows.get((int(year), *key))

    def before(self, year: int, key: tuple) -> int | None:
        ys = [y for y in self.years.get(key, []) if y < year]
        return max(ys) if ys else None


def _prev_item(r: Mapping, year: int, measured: bool) -> dict:
    """A previous-round row as the item this round re-checks (its last measured value)."""
    return {
        "problem_id": r["problem_id"], "rule_id": r["rule_id"],
        **{k: r[k] for k in KEYS}, "title": r.get("_base_title") or r["title"],
        "severity": r["severity"],
        "value": r["value"] if measured else r["_last_value"],
        "se": r["own_se"] if measured else r["_last_se"],
        "year": year if measured else r["_last_year"],
        "listed_id": r["previous_problem_id"], "unmatched": r["_unmatched"], "origin": "eqm",
        "target": r.get("target") or "", "suggestion": r.get("suggestion") or "",
    }  # fmt: skip


def _hand_items(hand: pd.DataFrame, year: int, items: dict[str, dict], known: set[str]) -> None:
    """Merge the hand-entered list of ``year`` into the open items (by identity). An item already
    open keeps eqm's values and gains the list's number (several numbers are joined with 、); a
    newer list's own item replaces an older list's one."""
    for h in hand[hand["year"] == year].to_dict("records"):
        pid = h["problem_id"] or h["listed_id"]
        old = items.get(pid)
        if old is not None and old["origin"] == "eqm":
            ids = [x for x in str(old["listed_id"] or "").split("、") if x]
            if h["listed_id"] not in ids:
                old["listed_id"] = "、".join([*ids, h["listed_id"]])
            continue
        items[pid] = {
            "problem_id": pid, "rule_id": h["problem_rule"] or h["rule_id"],
            **{k: h[k] for k in KEYS}, "title": h["title"], "severity": h["severity"],
            "value": h["value"], "se": h["se"], "year": year, "listed_id": h["listed_id"],
            "unmatched": pid not in known, "origin": "list", "unit": h["responsible_unit"],
            "domain": h["domain"], "target": "", "suggestion": "",
        }  # fmt: skip
        if pid not in known:
            log.warning(
                "上一轮问题清单 %s（%d 年）未能与 eqm 计算的任何对象对应，按原样保留为本轮未复测",
                h["listed_id"], year,
            )  # fmt: skip


def link_rounds(
    objects: pd.DataFrame,
    measures: Mapping[tuple, tuple[float, float]],
    hand: pd.DataFrame,
    history: History,
    params: EvidenceParams,
    rounds: list[int] | None = None,
) -> pd.DataFrame:
    """Rows of every round (``rounds``: the years with any candidate, judged or not; default the
    years of ``objects``): its problems, the close-outs and not re-measured rows of the earlier
    rounds' open problems. ``measures`` maps (year, problem_id, indicator) to (value, own SE) of
    the indicators each round judged. Internal columns (``_last_*``, ``previous`` …) are dropped by
    the caller.

    The open items are chained through every year in order: after a computed round, its open rows
    (problems and not re-measured rows) are the open items; a hand-entered list merges into them
    at its own year (the list of a computed year is merged after that round, so it is the previous
    list of the next one). Nothing open is dropped on the way; a list dated after the last computed
    round is not used, and says so."""
    years = sorted(
        set(rounds or []) | (set(objects["year"].astype(int)) if len(objects) else set())
    )
    hand_years = sorted(set(hand["year"].astype(int))) if len(hand) else []
    known = set(objects["problem_id"]) if len(objects) else set()
    open_items: dict[str, dict] = {}
    out: list[dict] = []
    for year in sorted(set(years) | set(hand_years)):
        if year in years:
            cur = objects[objects["year"] == year]
            rows = _round(year, cur, open_items, measures, history, params)
            out += rows
            open_items = {
                r["problem_id"]: _prev_item(r, year, pd.notna(r["value"]))
                for r in rows
                if r["status"] != schemas.STATUS_CLOSABLE
            }
        if year in hand_years:
            if years and year == years[-1]:
                log.info("%d 年的问题清单是最后一轮本身的清单，下一轮监测时复查", year)
                continue
            if not years or year > years[-1]:
                log.warning(
                    "%d 年的上一轮问题清单晚于最后一轮监测数据（%s），没有可复查它的一轮，未使用",
                    year, years[-1] if years else "无",
                )  # fmt: skip
                continue
            _hand_items(hand, year, open_items, known)
    return pd.DataFrame(out)


def _round(year, cur, items, measures, history, params: EvidenceParams) -> list[dict]:
    objs = {r["problem_id"]: r for r in cur.to_dict("records")}
    judged = {ind for (_, _, ind) in measures}
    rows, tests = [], []
    for pid, it in items.items():
        obj = objs.get(pid)
        now = measures.get((year, pid, it["indicator"]))
        # the item's own indicator was not judged this round although eqm judges it in some round
        # (another rotation, no benchmark): not re-measured, never resolved on another measure
        if obj is None or (now is None and it["indicator"] in judged):
            rows.append(_carried(year, it, params))
            continue
        row = _from_object(obj)
        t = _change(row, it, now, history, params)
        tests.append((row, t))
        row.update(
            previous_problem_id=it["listed_id"] or "", previous_year=it["year"],
            previous_value=it["value"], _unmatched=it["unmatched"],
            status=schemas.STATUS_OPEN if obj["is_problem"] else schemas.STATUS_CLOSABLE,
        )  # fmt: skip
        if not obj["is_problem"]:
            row["severity"] = ""
        rows.append(row)
    # BH over the round's change tests (one family per round)
    p = np.array([t["change_p"] for _, t in tests], float)
    q = bh_qvalues(p) if len(p) else p
    for (row, t), qi in zip(tests, q, strict=True):
        t["change_q"] = qi
        if t.get("fixed_status"):
            status = t["fixed_status"]
        elif np.isfinite(qi) and qi < params.alpha:
            status = "worse" if t["change_z"] > 0 else "improved"
        else:
            status = "unchanged"
        row["previous"] = {**t, "status_of_change": status}
        row["change_p"], row["change_q"] = t["change_p"], qi
        row["previous_status"] = status if row["status"] == schemas.STATUS_OPEN else "resolved"
    for pid, obj in objs.items():
        if pid in items or not obj["is_problem"]:
            continue
        row = _from_object(obj)
        row.update(previous_status="new", status=schemas.STATUS_NEW)
        rows.append(row)
    for row in rows:
        if row["rule_id"] in TREND_RULES and pd.notna(row["value"]):
            row["trend"] = _trend(row, history, params)
    return rows


def _from_object(obj: Mapping) -> dict:
    row = dict(obj)
    row.update(
        previous_problem_id="", previous_year=np.nan, previous_value=np.nan, change_p=np.nan,
        change_q=np.nan, previous=None, trend=None, _unmatched=False,
        _last_value=obj["value"], _last_se=obj["own_se"], _last_year=obj["year"],
    )  # fmt: skip
    return row


def _carried(year: int, it: Mapping, params: EvidenceParams) -> dict:
    """A previous problem with no value this round: carried with its last measured value."""
    title = it["title"] or it["problem_id"]
    suffix = params.previous_title_suffix.format(year=it["year"])
    return {
        "year": year, "problem_id": it["problem_id"], "rule_id": it["rule_id"],
        **{k: it[k] for k in KEYS}, "value": np.nan, "benchmark": np.nan, "bench_label": "",
        "gap": np.nan, "se": np.nan, "z": np.nan, "p_value": np.nan, "q_value": np.nan,
        "own_se": np.nan, "df": np.nan, "severity": it["severity"], "is_problem": True,
        "title": title + suffix, "_base_title": title, "measures": [],
        "rows": [], "bench_rows": [], "school_name": "", "data_missing": False,
        "note": "本轮没有与该问题对应的数据（学科轮换或未报送），状态沿用上一轮",
        "target": it.get("target") or "", "suggestion": it.get("suggestion") or "",
        "previous_status": "not re-measured", "status": schemas.STATUS_OPEN,
        "previous_problem_id": it["listed_id"] or "", "previous_year": it["year"],
        "previous_value": it["value"], "change_p": np.nan, "change_q": np.nan,
        "previous": {"problem_id": it["problem_id"], "year": it["year"], "value": it["value"],
                     "se": it["se"], "listed_id": it["listed_id"] or ""},
        "trend": None, "_unmatched": it["unmatched"], "_last_value": it["value"],
        "_last_se": it["se"], "_last_year": it["year"], "_unit": it.get("unit", ""),
        "_domain": it.get("domain", ""),
    }  # fmt: skip


def _change(row: Mapping, it: Mapping, now: tuple | None, history: History, params) -> dict:
    """The change test of one re-measured previous problem (see the module docstring).

    ``now`` is this round's (value, SE) of the item's own indicator, ``None`` when this round has
    no value of that indicator (then no change test: the two values would measure different
    things). Census values (RES, SCHOOL) use the tolerance; other values without an SE (official
    county-report figures) cannot be tested and are reported as such."""
    ind = str(it["indicator"])
    bad = BAD_DIRECTION.get(ind, 1)
    out = {
        "problem_id": it["problem_id"], "listed_id": it["listed_id"] or "", "year": it["year"],
        "indicator": ind, "value": it["value"], "se": it["se"], "se_assumed": False,
        "value_now": np.nan if now is None else now[0], "se_now": np.nan,
        "linking_error": 0.0, "census": False, "change_z": np.nan, "change_p": np.nan,
        "title": it["title"],
    }  # fmt: skip
    if now is None:
        out.update(fixed_status="unchanged", test="本轮没有同一指标的数值，未作变化检验")
        return out
    v_now, se_now = _f(now[0]), _f(now[1])
    v_prev, se_prev = _f(it["value"]), _f(it["se"])
    if ind == "gap_mean_score":  # a gap's size is compared, whatever its sign
        v_now, v_prev = abs(v_now), abs(v_prev)
    if row["rule_id"] in CENSUS_RULES:
        delta = (v_now - v_prev) * bad
        tol = params.census_change_tolerance
        status = "worse" if delta > tol else "improved" if delta < -tol else "unchanged"
        out.update(census=True, fixed_status=status, test=CENSUS_TEXT.format(tol=tol))
        return out
    if not np.isfinite(se_prev):
        got = history.get(int(it["year"]), _key(it))
        se_prev = got[1] if got else np.nan
    assumed = False
    if not np.isfinite(se_prev) and np.isfinite(se_now):
        se_prev, assumed = se_now, True  # same design and sample size assumed
    le = params.link_error(str(it.get("subject") or ""), ind)
    out.update(se=se_prev, se_assumed=assumed, se_now=se_now, linking_error=le)
    if not (np.isfinite(se_now) and se_now > 0 and np.isfinite(se_prev)):
        out.update(fixed_status="unchanged", test="数值没有标准误（官方报告未给出），未作变化检验")
        return out
    se_d, z, p = change_test(*(pd.Series([x]) for x in (v_now, se_now, v_prev, se_prev, le, bad)))
    out.update(
        change_z=_f(z.iloc[0]),
        change_p=_f(p.iloc[0]),
        se_change=_f(se_d.iloc[0]),
        test=CHANGE_TEST_TEXT,
    )
    return out


def _trend(row: Mapping, history: History, params: EvidenceParams) -> dict | None:
    """Same subject, previous cycle: the latest earlier year holding the same indicator of the
    same county x grade x subject (a returning NAEQ subject, e.g. 语文 2019 → 2022), from the
    computed indicators or the official county reports. Change with
    ``SE = sqrt(se_now² + se_prev² + LE²)``, two-sided normal p (not BH-adjusted: descriptive)."""
    key = _key(row)
    py = history.before(int(row["year"]), key)
    if py is None:
        return None
    now = history.get(int(row["year"]), key)
    prev = history.get(py, key)
    if now is None or prev is None:
        return None
    le = params.link_error(key[2], key[3])
    bad = BAD_DIRECTION.get(key[3], 1)
    v_now, v_prev = now[0], prev[0]
    if key[3] == "gap_mean_score":  # the gap's size, as in the change test
        v_now, v_prev = abs(v_now), abs(v_prev)
    se_d, z, p = change_test(*(pd.Series([x]) for x in (v_now, now[1], v_prev, prev[1], le, bad)))
    return {
        "year": py, "previous_value": prev[0], "previous_se": prev[1], "value": now[0],
        "se": now[1], "change": now[0] - prev[0], "linking_error": le,
        "se_change": _f(se_d.iloc[0]), "z": _f(z.iloc[0]), "p_value": _f(p.iloc[0]),
    }  # fmt: skip
