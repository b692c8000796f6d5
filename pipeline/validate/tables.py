"""Table-level rules: findings with a severity (``error`` stops the run, ``warn`` is reported)."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from pipeline import schemas
from pipeline.config import MonitoringParams
from pipeline.validate.params import (
    DEFAULT_SEVERITY,
    PCT_LEVEL_INDICATORS,
    QUESTIONNAIRES,
    ValidateParams,
)
from pipeline.validate.rules import _student_lookup

# ------------------------------------------------------------------------------------------------
# Table-level findings
# ------------------------------------------------------------------------------------------------

FINDING_COLUMNS = ("rule", "severity", "table", "county_code", "year", "grade", "message", "count")


def _finding(rule, table, county, year, grade, message, count, params, severity=None) -> dict:
    sev = severity or params.severity.get(rule, DEFAULT_SEVERITY[rule])
    return {
        "rule": rule,
        "severity": sev,
        "table": table,
        "county_code": county,
        "year": year,
        "grade": grade,
        "message": message,
        "count": int(count),
    }


def _clip_list(items, n: int = 10) -> str:
    items = [str(i) for i in items]
    more = f" 等 {len(items)} 个" if len(items) > n else ""
    return "、".join(items[:n]) + more


def _table_findings(
    passed: Mapping[str, pd.DataFrame],
    params: ValidateParams,
    mon: MonitoringParams,
) -> list[dict]:
    out: list[dict] = []
    st = passed["students"]
    name = mon.county_name
    if len(st):
        # schools and students per county x grade, per school
        per_school = (
            st.groupby(["year", "county_code", "grade", "school_id"], sort=True)
            .agg(n=("student_id", "size"), w=("weight", "sum"))
            .reset_index()
        )
        grp = per_school.groupby(["year", "county_code", "grade"], sort=True)
        summary = grp.agg(
            n_schools=("school_id", "size"), w_min=("w", "min"), w_max=("w", "max")
        ).reset_index()
        for r in summary.itertuples(index=False):
            if r.n_schools < params.min_schools_per_county_grade:
                out.append(_finding(
                    "few_schools", "students", r.county_code, r.year, r.grade,
                    f"{r.year} 年{name(r.county_code)}{schemas.GRADE_LABELS.get(r.grade, r.grade)}只有 "
                    f"{r.n_schools} 所样本学校（少于 {params.min_schools_per_county_grade} 所），"
                    "校际差异率等学校间统计量不可靠。", r.n_schools, params))  # fmt: skip
            ratio = r.w_max / r.w_min if r.w_min > 0 else np.inf
            if r.n_schools >= 2 and ratio > params.max_weight_sum_ratio:
                out.append(_finding(
                    "weight_sum_ratio", "students", r.county_code, r.year, r.grade,
                    f"{r.year} 年{name(r.county_code)}{schemas.GRADE_LABELS.get(r.grade, r.grade)}各样本学校"
                    f"学生权重之和最大为最小的 {ratio:.1f} 倍（超过 {params.max_weight_sum_ratio:g} 倍），"
                    "请核对权重是否按同一抽样设计计算。", r.n_schools, params))  # fmt: skip
        big = per_school[per_school["n"] > params.max_students_per_school]
        for (year, county, grade), g in big.groupby(["year", "county_code", "grade"], sort=True):
            out.append(_finding(
                "too_many_students", "students", county, year, grade,
                f"{year} 年{name(county)}{schemas.GRADE_LABELS.get(grade, grade)}有 {len(g)} 所学校样本学生"
                f"超过 {params.max_students_per_school} 人（学校编号：{_clip_list(g['school_id'])}），"
                "可能是学校编号合并错误或重复上报。", len(g), params))  # fmt: skip
        # grade vs school stage
        sch = passed["schools"]
        if len(sch):
            stages = (
                sch.assign(p=sch["stage"].eq("primary"), j=sch["stage"].eq("junior"))
                .groupby(["year", "school_id"])[["p", "j"]]
                .any()
            )
            m = st[["year", "county_code", "grade", "school_id"]].join(
                stages, on=["year", "school_id"]
            )
            bad = ((m["grade"] == 4) & m["j"].eq(True) & m["p"].eq(False)) | (
                (m["grade"] == 8) & m["p"].eq(True) & m["j"].eq(False)
            )
            for (year, county, grade), g in m[bad].groupby(
                ["year", "county_code", "grade"], sort=True
            ):
                kind = "只有初中学段的学校" if grade == 4 else "只有小学学段的学校"
                out.append(_finding(
                    "grade_stage_mismatch", "students", county, year, grade,
                    f"{year} 年{name(county)}有 {len(g)} 名{schemas.GRADE_LABELS.get(grade, grade)}学生属于{kind}"
                    f"（学校编号：{_clip_list(sorted(g['school_id'].unique()))}），请核对年级或学校编号。",
                    len(g), params))  # fmt: skip
    # subjects outside the rotation (scores via the student's grade, and county reports)
    rot = mon.rotation
    seen_years = set()
    sc = passed["scores"]
    subj_frames = []
    if len(sc) and len(st):
        lk = _student_lookup(st)
        g = sc[["year", "student_id", "subject"]].join(
            lk[["grade", "county_code"]], on=["year", "student_id"]
        )
        subj_frames.append(("scores", g[["year", "county_code", "grade", "subject"]]))
    cr = passed["county_reports"]
    if len(cr):
        subj_frames.append(
            ("county_reports", cr[["year", "county_code", "grade", "subject"]].dropna())
        )
    for table, g in subj_frames:
        g = g.dropna()
        counts = g.groupby(["year", "county_code", "grade", "subject"], sort=True).size()
        for (year, county, grade, subject), n in counts.items():
            year, grade = int(year), int(grade)
            if year not in rot:
                if year not in seen_years:
                    seen_years.add(year)
                    out.append(_finding(
                        "rotation_year_unknown", table, None, year, None,
                        f"params.yaml 的 monitoring.rotation 没有 {year} 年，无法核对学科轮次。", 0, params))  # fmt: skip
                continue
            if subject not in rot[year].get(grade, ()):
                out.append(_finding(
                    "subject_not_in_rotation", table, county, year, grade,
                    f"{year} 年{name(county)}{schemas.GRADE_LABELS.get(grade, grade)}有「"
                    f"{schemas.SUBJECT_LABELS.get(subject, subject)}」的数据 {n} 行，该学科不在当年国家监测"
                    "轮次中（可能是本地加测，也可能是年份或学科填错）。", n, params))  # fmt: skip
    # county reports: level percentages must add up to 100 +- tolerance
    if len(cr):
        lv = cr[cr["indicator"].isin(PCT_LEVEL_INDICATORS)]
        keys = ["year", "county_code", "grade", "subject", "group_var", "group_value", "scope"]
        keys = [k for k in keys if k in lv.columns]
        if len(lv):
            agg = (
                lv.groupby(keys, dropna=False, sort=True)
                .agg(n=("indicator", "nunique"), total=("value", "sum"))
                .reset_index()
            )
            agg = agg[(agg["n"] == len(PCT_LEVEL_INDICATORS))]
            agg = agg[(agg["total"] - 100).abs() > params.level_pct_tolerance]
            for (year, county, grade), g in agg.groupby(
                ["year", "county_code", "grade"], sort=True
            ):
                where = "；".join(
                    f"{schemas.SUBJECT_LABELS.get(r.subject, r.subject)}"
                    f"{'' if pd.isna(getattr(r, 'group_value', None)) else '（' + str(r.group_value) + '）'}"
                    f"{schemas.SCOPE_LABELS.get(r.scope, r.scope)}合计 {r.total:g}"
                    for r in g.head(5).itertuples(index=False)
                )
                out.append(_finding(
                    "level_pct_sum", "county_reports", county, year, grade,
                    f"{year} 年{name(county)}{schemas.GRADE_LABELS.get(grade, grade)}区县报告中有 {len(g)} 组"
                    f"水平Ⅰ–Ⅳ百分比之和不在 100±{params.level_pct_tolerance:g} 内：{where}。"
                    "请对照报告原文核对录入。", len(g), params))  # fmt: skip
    # whole-table availability
    if passed["students"].empty and passed["county_reports"].empty:
        out.append(_finding(
            "no_achievement_data", "students", None, None, None,
            "校验后既没有学生数据，也没有区县报告汇总数据，无法计算任何监测指标。", 0, params))  # fmt: skip
    if passed["schools"].empty:
        out.append(_finding(
            "no_school_data", "schools", None, None, None,
            "校验后没有学校办学条件数据，将无法计算资源配置均衡指标。", 0, params))  # fmt: skip
    if len(passed["students"]) and passed["scores"].empty:
        out.append(_finding(
            "no_scores", "scores", None, None, None,
            "有学生数据但没有成绩数据，将无法计算学业成绩指标。", 0, params))  # fmt: skip
    return out + unlinked_findings(passed, params)


def _school_keys(df: pd.DataFrame) -> pd.MultiIndex:
    return pd.MultiIndex.from_arrays(
        [df["year"].astype("int64"), df["school_id"].astype("str").str.strip()]
    )


def unlinked_findings(passed: Mapping[str, pd.DataFrame], params: ValidateParams) -> list[dict]:
    """``unlinked_questionnaire``: teacher and principal rows whose school (year × school_id) is
    among neither the passed students nor the passed schools of the round.

    They are kept (not set aside: the questionnaire may be right and the school's students missing);
    they simply never link to a student. One finding per table × year, with the count of rows, the
    schools and where the first rows are."""
    linked = [
        _school_keys(passed[t])
        for t in ("students", "schools")
        if t in passed and len(passed[t]) and "school_id" in passed[t]
    ]
    known = linked[0].append(linked[1:]).unique() if linked else pd.MultiIndex.from_arrays([[], []])
    out: list[dict] = []
    for t in QUESTIONNAIRES:
        df = passed.get(t)
        if df is None or df.empty:
            continue
        off = df.loc[~_school_keys(df).isin(known)]
        for year, g in off.groupby("year", sort=True):
            schools = sorted(set(g["school_id"].astype("str")))
            g = g.sort_values(["source_file", "source_row"], kind="stable")
            where = [
                f"{f} 第 {r} 行" for f, r in zip(g["source_file"], g["source_row"], strict=True)
            ]
            label = schemas.INPUT_TABLES[t].label
            out.append(_finding(
                "unlinked_questionnaire", t, None, int(year), None,
                f"{int(year)} 年「{label}」中有 {len(g)} 行的学校不在本轮的学生数据和学校办学条件数据中"
                f"（学校编号：{_clip_list(schools, 5)}；如 {_clip_list(where, 3)}）。这些行已保留，但关联不到"
                "任何学生，不进入相关因素的统计。请核对这些行的学校编号和监测年份是否与学生数据中的写法一致；"
                "若这些学校本轮确未抽样，可不予理会。", len(g), params))  # fmt: skip
    return out


def _findings_frame(rows: list[dict]) -> pd.DataFrame:
    f = pd.DataFrame(rows, columns=list(FINDING_COLUMNS))
    f = f.astype(
        {
            "rule": "str",
            "severity": "str",
            "table": "object",
            "county_code": "object",
            "year": "Int64",
            "grade": "Int64",
            "message": "str",
            "count": "int64",
        }
    )
    for c in ("table", "county_code"):
        f[c] = f[c].astype("str").where(f[c].notna(), pd.NA)
    sev = f["severity"].map({"error": 0, "warn": 1})
    return (
        f.assign(_s=sev)
        .sort_values(["_s", "year", "county_code", "grade", "rule", "message"], na_position="first")
        .drop(columns="_s")
        .reset_index(drop=True)
    )


# ------------------------------------------------------------------------------------------------
# Nothing leaves the count: rows lost per county x year and per table x year, empty files
# ------------------------------------------------------------------------------------------------

UNKNOWN_COUNTY_RULES = ("county_unknown", "ingest.unknown_county")


def _county_label(c: str, mon: MonitoringParams) -> str:
    if c in mon.counties or c == mon.city_code:
        return f"{mon.county_name(c)}（{c}）"
    if c.isdigit() and len(c) == 6:
        return f"区县代码 {c}（params.yaml 未登记）"
    return f"「{c}」（无法识别的区县）"


def _causes(rules: pd.Series, n: int = 3) -> str:
    """The commonest rules of set-aside rows, in Chinese: ``原因：<label> 120 行；…``."""
    counts = rules.dropna().astype("str").str.split(";").explode().str.strip().value_counts()
    counts = counts.sort_index().sort_values(ascending=False, kind="stable")
    parts = [f"{schemas.rule_label(r)} {int(k)} 行" for r, k in counts.head(n).items()]
    return "原因：" + "；".join(parts) if parts else ""


def _fix_hint(county: str, rules: pd.Series, mon: MonitoringParams) -> str:
    """What to change: params.yaml for a county it does not know (a name it cannot map, or a code
    it does not list), else the raw data following the rules the rows broke."""
    if county in mon.counties or county == mon.city_code:
        return "请按校验页「被隔离的行」中列出的原因改正原始数据后重新运行。"
    seen = set(rules.dropna().astype("str").str.split(";").explode().str.strip())
    also = (
        ""
        if seen <= set(UNKNOWN_COUNTY_RULES)
        else "并按校验页「被隔离的行」中列出的其他原因改正，"
    )
    if not (county.isdigit() and len(county) == 6):
        return (
            f"「{county}」无法对应到区县代码：若它是某个区县的另一种写法，请在 params.yaml 的 "
            f'monitoring.county_aliases 中添加「{county}: "区县代码"」（区县本身须已在 monitoring.counties '
            f"中登记）；若是填写错误，请改正原始数据，{also}然后重新运行。"
        )
    return (
        f"区县代码 {county} 不在 params.yaml 的 monitoring.counties 中：若它是本次监测的区县，请在 "
        f'monitoring.counties 中添加「"{county}": 区县名称」；若代码填错，请改正原始数据，{also}然后重新运行。'
    )


def _per_table(g: pd.DataFrame) -> str:
    n = g.groupby("table", sort=True)["n"].sum()
    return "、".join(f"{schemas.INPUT_TABLES[t].label} {int(k)} 行" for t, k in n.items())


def loss_findings(
    ledger: pd.DataFrame, params: ValidateParams, mon: MonitoringParams
) -> list[dict]:
    """Findings on the share of rows set aside (ingest + validate), in tiers.

    Per year × county (every table, any county, registered or not): all rows lost →
    ``county_lost`` (``stray_county_rows`` for fewer than ``stray_county_max_rows`` rows of a county
    params.yaml does not list: a typo in a few rows, not a county gone); at least ``lost_share`` → ``rows_mostly_lost``; above
    ``quarantine_share_warn`` → ``quarantine_share`` (an error above ``quarantine_share_error``).
    Per year × table: all rows lost → ``year_lost`` (one finding per year naming its tables); at
    least ``lost_share`` → ``rows_mostly_lost``. Rows whose year or county is unknown count in
    the table's total (year unknown: their own group).
    """
    out: list[dict] = []
    if ledger.empty:
        return out
    by_county = ledger.dropna(subset=["year", "county"])
    for (year, county), g in by_county.groupby(["year", "county"], sort=True):
        year, n, lost = int(year), int(g["n"].sum()), int(g.loc[g["lost"], "n"].sum())
        share = lost / n
        if lost == 0 or share <= params.quarantine_share_warn:
            continue
        who = _county_label(county, mon)
        gone = g[g["lost"]]
        if lost == n and county not in mon.counties and n < params.stray_county_max_rows:
            # a handful of rows under a code or name no county has: a typo, not a lost county
            out.append(_finding(
                "stray_county_rows", None, county, year, None,
                f"{year} 年有 {lost} 行数据的区县是「{county}」（{_per_table(gone)}），它不是已登记的区县，"
                f"这些行已隔离。{_fix_hint(county, gone['rule'], mon)}",
                lost, params))  # fmt: skip
        elif lost == n:
            out.append(_finding(
                "county_lost", None, county, year, None,
                f"{year} 年{who}的数据全部被隔离（{_per_table(gone)}，共 {lost} 行），该区县不会出现在"
                f"任何统计和报告中。{_causes(gone['rule'])}。{_fix_hint(county, gone['rule'], mon)}",
                lost, params))  # fmt: skip
        elif share >= params.lost_share:
            out.append(_finding(
                "rows_mostly_lost", None, county, year, None,
                f"{year} 年{who}共 {n} 行数据中有 {lost} 行被隔离（{share:.0%}，不低于 params.yaml 的 "
                f"validate.lost_share {params.lost_share:.0%}；{_per_table(gone)}），余下的数据已不能代表"
                f"该区县的样本。{_causes(gone['rule'])}。{_fix_hint(county, gone['rule'], mon)}",
                lost, params))  # fmt: skip
        else:
            sev = "error" if share > params.quarantine_share_error else None
            out.append(_finding(
                "quarantine_share", None, county, year, None,
                f"{year} 年{who}共 {n} 行数据中有 {lost} 行被隔离"
                f"（{share:.1%}，{'超过' if sev else '高于'}"
                f"{params.quarantine_share_error if sev else params.quarantine_share_warn:.0%}），"
                "请先核对该区县的原始数据。", lost, params, severity=sev))  # fmt: skip
    # per year x table
    led = ledger.assign(_y=ledger["year"].astype("Int64").astype("object"))
    led["_y"] = led["_y"].where(led["_y"].notna(), -1)
    whole: dict[int, list[pd.DataFrame]] = {}
    for (y, t), g in led.groupby(["_y", "table"], sort=True):
        n, lost = int(g["n"].sum()), int(g.loc[g["lost"], "n"].sum())
        label = schemas.INPUT_TABLES[t].label if t in schemas.INPUT_TABLES else t
        when = "年份无法识别的" if y == -1 else f"{y} 年的"
        if lost == n:
            whole.setdefault(int(y), []).append(g)
        elif lost / n >= params.lost_share:
            out.append(_finding(
                "rows_mostly_lost", t, None, None if y == -1 else int(y), None,
                f"{when}「{label}」共 {n} 行中有 {lost} 行被隔离（{lost / n:.0%}，不低于 params.yaml 的 "
                f"validate.lost_share {params.lost_share:.0%}）。{_causes(g.loc[g['lost'], 'rule'])}。"
                "请按校验页「被隔离的行」中列出的原因改正原始数据（或参数）后重新运行。", lost, params))  # fmt: skip
    for y, gs in sorted(whole.items()):
        g = pd.concat(gs, ignore_index=True)
        when = "年份无法识别的" if y == -1 else f"{y} 年的"
        names = "、".join(f"「{schemas.INPUT_TABLES[t].label}」" for t in sorted(set(g["table"])))
        out.append(_finding(
            "year_lost", None, None, None if y == -1 else y, None,
            f"{when}{names}全部被隔离（{_per_table(g)}），这些数据不会进入任何统计。"
            f"{_causes(g['rule'])}。请按校验页「被隔离的行」中列出的原因改正原始数据（或参数）后重新运行。",
            int(g["n"].sum()), params))  # fmt: skip
    return out


def empty_file_findings(
    manifest: Mapping | None, ledger: pd.DataFrame, params: ValidateParams
) -> list[dict]:
    """A file without data rows (manifest ``empty``/``data_rows``): ``empty_file``; when no file
    gives its table any row, one ``empty_table`` for the table instead."""
    from pipeline.validate.accounting import _manifest_files, file_is_empty, file_table

    by_table: dict[str | None, list[str]] = {}
    for f, m in sorted(_manifest_files(manifest).items()):
        if file_is_empty(m):
            by_table.setdefault(file_table(f, m), []).append(f)
    rows_in = ledger.groupby("table")["n"].sum() if len(ledger) else pd.Series(dtype="int64")
    out = []
    for t, files in sorted(by_table.items(), key=lambda kv: str(kv[0])):
        label = schemas.INPUT_TABLES[t].label if t in schemas.INPUT_TABLES else "未知数据表"
        if t is not None and int(rows_in.get(t, 0)) == 0:
            out.append(_finding(
                "empty_table", t, None, None, None,
                f"「{label}」没有任何数据行：文件 {_clip_list(files, 5)} 只有表头或为空，也没有其他文件提供"
                f"{label}，后续环节将没有{label}可用。请检查是否放错了文件或导出时漏掉了数据，改正后重新运行。",
                0, params))  # fmt: skip
            continue
        for f in files:
            out.append(_finding(
                "empty_file", t, None, None, None,
                f"文件 {f} 没有数据行（只有表头或为空），已跳过；「{label}」的其他文件照常使用。"
                "请确认这个文件是否本应有数据。", 0, params))  # fmt: skip
    return out
