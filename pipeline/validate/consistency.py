"""Checks that compare a row with other rows or with the configuration.

* :func:`weight_failures` — a student weight far from the median weight of its year × county ×
  grade (``validate.weight_ratio_max``) is set aside as ``weight_implausible``.
* :func:`level_failures` — the 水平 of a score row against the cut scores of its year × subject ×
  grade. A few disagreeing rows are data errors (``level_inconsistent``, set aside row by row);
  when most rows of the year × subject × grade disagree the *configuration* is suspect: one
  ``cut_scores_mismatch`` finding shows the cut points the data imply and no row is set aside.
* :func:`school_county_failures` — a school under two counties (students vs schools tables, or
  inside one of them). Rows that are clearly wrong (their school's own record, or a strict
  majority of its students, names another county) are set aside as ``school_county_mismatch``;
  a contradiction with no clear side is one ``school_county_conflict`` finding.
* :func:`duplicate_failures` — the table key, checked on the rows that passed every other row
  rule (so an invalid copy never takes a valid one down with it): identical copies keep the first
  (in file and row order) and set the others aside as ``duplicate_identical`` with a warning;
  copies that differ are all set aside (which one is right cannot be known).

Each returns failures as ``table, pos, rule, column, detail`` and, where it has any, findings.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from pipeline import schemas
from pipeline.config import MonitoringParams
from pipeline.validate.params import DUPLICATE_RULES, TRACE, ValidateParams
from pipeline.validate.rules import _empty_failures, _expected_level, _mask_failures
from pipeline.validate.tables import _clip_list, _finding

# A median of at least 3 weights is not moved by one wild value (its breakdown point); smaller
# groups are compared with the median of the year × grade, then of the year.
WEIGHT_MEDIAN_MIN_ROWS = 3
LEVEL_SHORT = {lv: schemas.LEVEL_LABELS[lv].split()[0] for lv in schemas.LEVELS}  # I -> Ⅰ


def _fmt(x: float) -> str:
    return "—" if x is None or not np.isfinite(x) else f"{x:g}"


def _grade_label(grade) -> str:
    return "年级未知" if pd.isna(grade) else schemas.GRADE_LABELS.get(int(grade), str(grade))


# ------------------------------------------------------------------------------------------------
# Weights
# ------------------------------------------------------------------------------------------------


def weight_failures(students: pd.DataFrame, params: ValidateParams) -> pd.DataFrame:
    """``weight_implausible``: a finite weight > 0 whose ratio to the median weight of its
    year × county × grade is above ``weight_ratio_max`` or below its inverse.

    The median is taken over the finite weights > 0 of the group (the others are
    ``weight_invalid``); a group with fewer than :data:`WEIGHT_MEDIAN_MIN_ROWS` such weights is
    compared with the year × grade median, then the year's.
    """
    if students.empty or "weight" not in students:
        return _empty_failures()
    w = pd.to_numeric(students["weight"], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    ok = np.isfinite(w) & (w > 0) & (w <= schemas.STUDENTS["weight"].max)  # else weight_invalid
    if ok.sum() < WEIGHT_MEDIAN_MIN_ROWS:
        return _empty_failures()
    na = pd.Series(pd.NA, index=students.index, dtype="object")
    d = pd.DataFrame(
        {
            "year": students["year"],
            "county": students.get("county_code", na),
            "grade": students.get("grade", na),
            "w": np.where(ok, w, np.nan),
        }
    )
    n = len(d)
    ref, n_ref = np.full(n, np.nan), np.zeros(n)
    scope = np.full(n, "", dtype=object)
    for keys, label in (
        (["year", "county", "grade"], "同一区县同一年级"),
        (["year", "grade"], "同一年份同一年级（各区县合计）"),
        (["year"], "同一年份"),
    ):
        g = d.groupby(keys, dropna=True, sort=False)["w"]
        med = g.transform("median").to_numpy(dtype=float, na_value=np.nan)
        cnt = g.transform("count").to_numpy(dtype=float, na_value=np.nan)
        use = np.isnan(ref) & (np.nan_to_num(cnt) >= WEIGHT_MEDIAN_MIN_ROWS)
        ref[use], n_ref[use], scope[use] = med[use], cnt[use], label
    rmax = params.weight_ratio_max
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
        ratio = w / ref
    bad = ok & np.isfinite(ref) & ((ratio > rmax) | (ratio < 1.0 / rmax))
    if not bad.any():
        return _empty_failures()
    detail = np.full(n, None, dtype=object)
    for i in np.flatnonzero(bad):
        detail[i] = (
            f"学生权重：{w[i]:g}，是{scope[i]} {int(n_ref[i])} 名学生权重中位数 {ref[i]:g} 的 "
            f"{ratio[i]:.3g} 倍，超出 params.yaml 中 validate.weight_ratio_max 允许的 {rmax:g} 倍"
            "（或低于其倒数）；请核对权重的数值和单位"
        )
    return _mask_failures("students", bad, "weight_implausible", "weight", detail)


# ------------------------------------------------------------------------------------------------
# Level vs cut scores: data error or configuration error
# ------------------------------------------------------------------------------------------------


def _cut_key_text(year, subject, grade, mon: MonitoringParams) -> str:
    if pd.isna(grade):
        return "params.yaml 的 monitoring.default_scale.cut_scores（这些成绩的学生年级未知）"
    key = f"{int(year)}/{subject}/{int(grade)}"
    if key in mon.scales:
        return f'params.yaml 中 monitoring.scales 下 "{key}" 的 cut_scores'
    return (
        "params.yaml 的 monitoring.default_scale.cut_scores"
        f'（或在 monitoring.scales 中为 "{key}" 单独设置 cut_scores）'
    )


def level_failures(
    scores: pd.DataFrame,
    score_ctx: tuple[pd.Series, pd.DataFrame] | None,
    params: ValidateParams,
    mon: MonitoringParams,
) -> tuple[pd.DataFrame, list[dict]]:
    """Level against the cut scores (lower bounds of II, III, IV), for rows with a scale score in
    the plausible range and a level.

    Per year × subject × grade (the unit the cut scores are configured for): when at least
    ``cut_scores_min_rows`` such rows exist and more than ``cut_scores_mismatch_share`` of them
    disagree, one ``cut_scores_mismatch`` finding names the configured and the implied cut points
    (per boundary, the highest score of the lower level and the lowest of the upper level) and
    the params.yaml key; its rows are not set aside. Otherwise each disagreeing row is set aside
    as ``level_inconsistent``.
    """
    if score_ctx is None or not {"scale_score", "level"} <= set(scores.columns):
        return _empty_failures(), []
    grade, scales = score_ctx
    s = scores["scale_score"]
    expected = _expected_level(s, scales)
    in_range = (s >= scales["lo"].to_numpy()) & (s <= scales["hi"].to_numpy())
    level = scores["level"]
    both = (s.notna() & level.notna() & expected.notna() & in_range).fillna(False)
    both = both.to_numpy(dtype=bool)
    bad = both & (level.astype("str") != expected.astype("str")).fillna(False).to_numpy(bool)
    if not bad.any():
        return _empty_failures(), []
    keys = pd.DataFrame(
        {"year": scores["year"], "subject": scores["subject"], "grade": grade.astype("Int64")}
    )
    gid = keys.groupby(["year", "subject", "grade"], dropna=False, sort=True).ngroup().to_numpy()
    n = np.bincount(gid[both], minlength=gid.max() + 1)
    nb = np.bincount(gid[bad], minlength=gid.max() + 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        share = np.where(n > 0, nb / np.maximum(n, 1), 0.0)
    wrong = (n >= params.cut_scores_min_rows) & (share > params.cut_scores_mismatch_share)
    suspect = wrong[gid]
    findings = []
    for g in np.flatnonzero(wrong):
        rows = both & (gid == g)
        i0 = int(np.flatnonzero(rows)[0])
        year, subject, gr = keys["year"].iloc[i0], keys["subject"].iloc[i0], keys["grade"].iloc[i0]
        cuts = scales.iloc[i0][["c1", "c2", "c3"]].to_numpy(dtype=float)
        sv = s.to_numpy(dtype=float, na_value=np.nan)[rows]
        lv = level.astype("str").to_numpy()[rows]
        parts = []
        for k in range(3):
            lo_lv, up_lv = schemas.LEVELS[k], schemas.LEVELS[k + 1]
            mx = float(sv[lv == lo_lv].max()) if (lv == lo_lv).any() else np.nan
            mn = float(sv[lv == up_lv].min()) if (lv == up_lv).any() else np.nan
            parts.append(
                f"{LEVEL_SHORT[lo_lv]}/{LEVEL_SHORT[up_lv]}：{LEVEL_SHORT[lo_lv]}级最高 {_fmt(mx)}、"
                f"{LEVEL_SHORT[up_lv]}级最低 {_fmt(mn)}（现设 {_fmt(cuts[k])}）"
            )
        files = sorted(set(scores["source_file"].astype("str").to_numpy()[rows & bad]))
        label = schemas.SUBJECT_LABELS.get(subject, subject)
        findings.append(_finding(
            "cut_scores_mismatch", "scores", None, int(year), None if pd.isna(gr) else int(gr),
            f"{int(year)} 年{_grade_label(gr)}{label}：{int(n[g])} 行有量尺分数和水平的成绩中，"
            f"{int(nb[g])} 行（{share[g]:.0%}）的水平与划界分数不一致（文件：{_clip_list(files, 5)}）。"
            "这么多行不一致，多半是划界分数设置有误，而不是原始数据有误，因此这些行未逐行隔离。"
            f"数据中的水平对应的分界——{'；'.join(parts)}。"
            f"请对照国家监测报告核对 {_cut_key_text(year, subject, gr, mon)}，修改后重新运行。",
            int(nb[g]), params))  # fmt: skip
    return _mask_failures("scores", bad & ~suspect, "level_inconsistent", "level"), findings


# ------------------------------------------------------------------------------------------------
# School vs county
# ------------------------------------------------------------------------------------------------


def _ids(df: pd.DataFrame) -> pd.DataFrame:
    """year, school_id, county_code of the rows that name all three (text, stripped)."""
    if df.empty or not {"school_id", "county_code"} <= set(df.columns):
        return pd.DataFrame(columns=["year", "school_id", "county_code"])
    out = pd.DataFrame(
        {
            "year": df["year"],
            "school_id": df["school_id"].astype("str").str.strip(),
            "county_code": df["county_code"].astype("str").str.strip(),
        },
        index=df.index,
    )
    keep = df["school_id"].notna() & df["county_code"].notna() & out["school_id"].ne("")
    return out[keep.fillna(False).to_numpy(bool)]


def _cn(c: str, mon: MonitoringParams) -> str:
    return f"{mon.county_name(c)}（{c}）" if c in mon.counties else f"{c}（未登记）"


def school_county_failures(
    students: pd.DataFrame,
    schools: pd.DataFrame,
    params: ValidateParams,
    mon: MonitoringParams,
) -> tuple[pd.DataFrame, list[dict]]:
    """A school (``year × school_id``) under more than one county.

    * Schools table naming two counties for one school: a finding (which row is wrong cannot
      be told; both sections feed their county's resource statistics).
    * A student whose county differs from his school's county in the schools table: set aside
      (``school_county_mismatch``) when fewer than half of the school's students disagree — the
      school's record and most classmates agree, so the row is the odd one; otherwise (half or
      more disagree: the schools row itself may be wrong) a finding, nothing set aside.
    * A school absent from the schools table whose students name several counties: the rows
      outside a strict majority county are set aside; with no strict majority, a finding.
    """
    st, sch = _ids(students), _ids(schools)
    findings, ref = _schools_table_conflicts(schools, sch, params, mon)
    detail = pd.Series(None, index=st.index, dtype="object")
    if len(st):
        r = st.join(ref.rename("ref"), on=["year", "school_id"])
        has = r["ref"].notna().to_numpy()
        d1, f1 = _against_schools_table(r[has], params, mon)
        d2, f2 = _by_student_majority(r[~has], params, mon)
        detail = pd.concat([d1, d2]).reindex(st.index)
        findings += f1 + f2
    odd = detail.dropna()
    if odd.empty:
        return _empty_failures(), findings
    mask = np.zeros(len(students), dtype=bool)
    text = np.full(len(students), None, dtype=object)
    mask[odd.index.to_numpy()] = True
    text[odd.index.to_numpy()] = odd.to_numpy()
    return _mask_failures("students", mask, "school_county_mismatch", "county_code", text), findings


def _schools_table_conflicts(
    schools: pd.DataFrame, sch: pd.DataFrame, params: ValidateParams, mon: MonitoringParams
) -> tuple[list[dict], pd.Series]:
    """Findings for schools the schools table puts under two counties; the county of the others
    (``(year, school_id) → county_code``)."""
    keys = ["year", "school_id"]
    sc = sch.drop_duplicates([*keys, "county_code"])
    nun = sc.groupby(keys, sort=True)["county_code"].nunique()
    conflicted = nun[nun > 1].index
    findings = []
    in_conflict = pd.MultiIndex.from_frame(sch[keys]).isin(conflicted)
    for year, y in sch[in_conflict].groupby("year", sort=True):
        items = []
        for sid, g in y.groupby("school_id", sort=True):
            rows = schools.loc[g.index]
            where = "、".join(
                f"{f} 第 {r} 行"
                for f, r in zip(rows["source_file"], rows["source_row"], strict=True)
            )
            codes = "、".join(_cn(c, mon) for c in sorted(set(g["county_code"])))
            items.append(f"学校 {sid} 同时属于 {codes}（{where}）")
        findings.append(_finding(
            "school_county_conflict", "schools", None, int(year), None,
            f"{int(year)} 年学校办学条件表中有 {len(items)} 所学校出现在不同区县：{_clip_list(items, 5)}。"
            "同一学校只能属于一个区县，请核对学校编号和区县代码。", len(y), params))  # fmt: skip
    ref = sc[~pd.MultiIndex.from_frame(sc[keys]).isin(conflicted)].set_index(keys)["county_code"]
    return findings, ref


def _against_schools_table(
    a: pd.DataFrame, params: ValidateParams, mon: MonitoringParams
) -> tuple[pd.Series, list[dict]]:
    """Students of schools with one county in the schools table (column ``ref``): the detail
    text of the rows to set aside, and findings where half or more of a school disagree."""
    mis = (a["county_code"] != a["ref"]).to_numpy()
    g = pd.Series(mis, index=a.index).groupby([a["year"], a["school_id"]])
    n, k = g.transform("size").to_numpy(), g.transform("sum").to_numpy()
    odd = mis & (k * 2 < n)
    o = a[odd]
    detail = pd.Series(
        [
            f"学校 {sid} 在学校办学条件表中属于 {_cn(rc, mon)}，同校另有 {int(nn - kk)} 名学生也是；"
            f"本行的区县代码为 {c}，请核对区县代码或学校编号"
            for sid, rc, c, nn, kk in zip(o["school_id"], o["ref"], o["county_code"], n[odd], k[odd], strict=True)
        ],
        index=o.index,
        dtype="object",
    )  # fmt: skip
    findings = []
    unclear = a[mis & (k * 2 >= n)].assign(size=n[mis & (k * 2 >= n)])
    # one finding per year x county of the schools table x county the students name
    for (year, ref_c, c), u in unclear.groupby(["year", "ref", "county_code"], sort=True):
        per = u.groupby("school_id", sort=True).agg(k=("size", "size"), n=("size", "first"))
        schools = [f"{sid}（{int(r.k)}/{int(r.n)} 名）" for sid, r in per.iterrows()]
        findings.append(_finding(
            "school_county_conflict", "students", ref_c, int(year), None,
            f"{int(year)} 年有 {len(per)} 所学校在学校办学条件表中属于 {_cn(ref_c, mon)}，但其半数以上学生的"
            f"区县为 {_cn(c, mon)}：{_clip_list(schools, 10)}。无法判断哪一方有误（学生数据未逐行隔离）。"
            "请核对两张表中这些学校的学校编号和区县代码。", len(u), params))  # fmt: skip
    return detail, findings


def _by_student_majority(
    b: pd.DataFrame, params: ValidateParams, mon: MonitoringParams
) -> tuple[pd.Series, list[dict]]:
    """Students of schools absent from the schools table: rows outside a strict majority county
    of their school are set aside; a school without one gives a finding."""
    keys = ["year", "school_id"]
    cnt = b.groupby([*keys, "county_code"], sort=True).size().rename("k").reset_index()
    cnt = cnt.assign(
        total=cnt.groupby(keys)["k"].transform("sum"),
        n_counties=cnt.groupby(keys)["k"].transform("size"),
    )
    multi = cnt[cnt["n_counties"] > 1].sort_values([*keys, "k"], ascending=[True, True, False])
    top = multi.drop_duplicates(keys).set_index(keys)
    settled = top[top["k"] * 2 > top["total"]]
    o = b.join(
        settled[["county_code", "k"]].rename(columns={"county_code": "top", "k": "top_k"}), on=keys
    )
    o = o[o["top"].notna() & (o["county_code"] != o["top"])]
    detail = pd.Series(
        [
            f"同校 {int(tk)} 名学生属于 {_cn(t, mon)}（学校 {sid} 不在学校办学条件表中）；"
            f"本行的区县代码为 {c}，请核对区县代码或学校编号"
            for sid, t, tk, c in zip(o["school_id"], o["top"], o["top_k"], o["county_code"], strict=True)
        ],
        index=o.index,
        dtype="object",
    )  # fmt: skip
    findings = []
    open_ = top.index[top["k"] * 2 <= top["total"]]
    split = multi[pd.MultiIndex.from_frame(multi[keys]).isin(open_)] if len(multi) else multi
    for year, y in split.groupby("year", sort=True):
        items = [
            f"学校 {sid}："
            + "、".join(f"{_cn(c, mon)} {int(v)} 名" for c, v in zip(g["county_code"], g["k"], strict=True))
            for sid, g in y.groupby("school_id", sort=True)
        ]  # fmt: skip
        findings.append(_finding(
            "school_county_conflict", "students", None, int(year), None,
            f"{int(year)} 年有 {len(items)} 所不在学校办学条件表中的学校，其学生分属不同区县且没有过半数的区县"
            f"（{_clip_list(items, 5)}），无法判断哪些行有误（未逐行隔离）。请核对这些学生的区县代码或学校编号。",
            int(y["k"].sum()), params))  # fmt: skip
    return detail, findings


# ------------------------------------------------------------------------------------------------
# Duplicates (after the row rules)
# ------------------------------------------------------------------------------------------------


def duplicate_failures(
    frames: Mapping[str, pd.DataFrame], fails: pd.DataFrame, params: ValidateParams
) -> tuple[pd.DataFrame, list[dict]]:
    """The table key (:mod:`pipeline.schemas` ``Table.key``) among the rows no other row rule
    set aside.

    Copies equal in every column but the trace (``source_file``, ``source_row``) keep the first
    in (file, row) order; the others get ``duplicate_identical`` naming the kept row, and each
    table × year with such rows gives one ``duplicate_identical`` finding. Copies that differ in
    any column are all set aside with the table's duplicate rule (``duplicate_student`` …),
    naming the other copies.
    """
    parts, findings = [], []
    for t, df in frames.items():
        key = [k for k in schemas.INPUT_TABLES[t].key if k in df.columns]
        if not key or len(df) < 2:
            continue
        failed = np.zeros(len(df), dtype=bool)
        failed[fails.loc[fails["table"] == t, "pos"].to_numpy(dtype="int64")] = True
        ok = df.loc[~failed]
        dk = ok.duplicated(key, keep=False)
        if not dk.any():
            continue
        d = ok.loc[dk.to_numpy(bool)].sort_values(list(TRACE), kind="stable")
        gid = d.groupby(key, dropna=False, sort=False).ngroup()
        content = [c for c in d.columns if c not in TRACE]
        distinct = (~d.duplicated(content, keep="first")).groupby(gid).transform("sum")
        identical = (distinct == 1).to_numpy()
        first = (~gid.duplicated(keep="first")).to_numpy()
        where = d["source_file"].astype("str") + " 第 " + d["source_row"].astype("str") + " 行"
        kept_at = where[first].set_axis(gid[first].to_numpy())
        detail = np.full(len(df), None, dtype=object)
        ident = np.zeros(len(df), dtype=bool)
        pos = d.index.to_numpy()
        for i in np.flatnonzero(identical & ~first):
            ident[pos[i]] = True
            detail[pos[i]] = f"已保留与本行完全相同的 {kept_at[gid.iloc[i]]}"
        if ident.any():
            parts.append(_mask_failures(t, ident, "duplicate_identical", ",".join(key), detail))
            yr = df.loc[ident, "year"]
            for year, n in yr.value_counts(sort=False, dropna=False).sort_index().items():
                sel = ident & (df["year"] == year).to_numpy(bool)
                files = sorted(set(df.loc[sel, "source_file"].astype("str")))
                findings.append(_finding(
                    "duplicate_identical", t, None, None if pd.isna(year) else int(year), None,
                    f"{'' if pd.isna(year) else f'{int(year)} 年'}「{schemas.INPUT_TABLES[t].label}」中有 "
                    f"{int(n)} 行与另一行完全相同（每一列都相同），每组保留第一行，其余 {int(n)} 行已隔离"
                    f"（文件：{_clip_list(files, 5)}）。请确认是否重复上报。", int(n), params))  # fmt: skip
        conflict = ~identical
        if conflict.any():
            groups = where[conflict].groupby(gid[conflict].to_numpy(), sort=False).agg("、".join)
            keys_label = "、".join(schemas.INPUT_TABLES[t][k].display for k in key)
            cdet = np.full(len(df), None, dtype=object)
            cmask = np.zeros(len(df), dtype=bool)
            for i in np.flatnonzero(conflict):
                cmask[pos[i]] = True
                cdet[pos[i]] = f"{keys_label}相同而其他列不同的行：{groups[gid.iloc[i]]}"
            parts.append(_mask_failures(t, cmask, DUPLICATE_RULES[t], ",".join(key), cdet))
    if not parts:
        return _empty_failures(), findings
    return pd.concat(parts, ignore_index=True), findings
