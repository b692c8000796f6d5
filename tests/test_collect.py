"""`eqm init` (a new round's folder) and `eqm templates` (the counties' Excel forms).

One module-scoped round is made the way the office would: `eqm init` with a year and the demo's
counties, `eqm demo-data`, `eqm run` (all in-process). The template test then refills the same
demo round through the templates — every demo raw file's rows written into the template columns,
values only — and checks the indicators come out the same.
"""

from __future__ import annotations

import difflib
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from pipeline import ingest, schemas
from pipeline.cli import app
from pipeline.collect import guide, scaffold, workbooks
from pipeline.config import INIT_MARKER, RAW_TABLES, MonitoringParams, build_params, make_context
from pipeline.errors import EqmError

REPO = Path(__file__).resolve().parents[1]
runner = CliRunner()
DEMO_COUNTIES = ("450107", "450110", "450125", "450181")  # params.yaml demo.counties


def _invoke(*args: str):
    result = runner.invoke(app, list(args))
    out = result.output + (result.stderr if result.stderr_bytes is not None else "")
    return result.exit_code, out


# ------------------------------------------------------------------------------------------------
# eqm init
# ------------------------------------------------------------------------------------------------


def test_shipped_default_params_equal_the_repository_params():
    """`eqm init` copies the packaged params; it must be the repository's params.yaml, byte for byte
    (after editing params.yaml: cp params.yaml pipeline/collect/default_params.yaml)."""
    assert scaffold.DEFAULT_PARAMS.read_bytes() == (REPO / "params.yaml").read_bytes()


def test_init_without_options_writes_the_defaults_with_their_comments(tmp_path: Path):
    code, out = _invoke("init", str(tmp_path / "r"), "--quiet")
    assert code == 0, out
    assert (tmp_path / "r/params.yaml").read_bytes() == (REPO / "params.yaml").read_bytes()


def test_year_and_counties_edit_only_their_lines(tmp_path: Path):
    default = (REPO / "params.yaml").read_text(encoding="utf-8")
    chosen = scaffold.parse_counties(
        "横县，450107 上林县", {"450107": "西乡塘区", "450125": "上林县", "450181": "横州市"},
        {"横县": "450181"},
    )  # fmt: skip
    text = scaffold.round_params(default, 2031, chosen)
    got = yaml.safe_load(text)
    # the chosen counties, in the default table's order, with their official names
    assert dict(got["monitoring"]["counties"]) == {
        "450107": "西乡塘区", "450125": "上林县", "450181": "横州市",
    }  # fmt: skip
    assert got["demo"]["counties"] == ["450107", "450125", "450181"]
    assert 2031 not in got["monitoring"]["rotation"]  # a placeholder comment, to be filled in
    assert re.search(r"^    # 2031: \{4: \[\.\.\.\], 8: \[\.\.\.\]\}", text, flags=re.M)
    # every other value unchanged; every comment line of the default kept
    want = yaml.safe_load(default)
    for key in ("counties",):
        got["monitoring"].pop(key), want["monitoring"].pop(key)
    got["demo"].pop("counties"), want["demo"].pop("counties")
    assert got == want
    # line by line: only the other counties' lines and demo.counties go; three lines come in
    diff = list(difflib.ndiff(default.splitlines(), text.splitlines()))
    removed = [ln[2:] for ln in diff if ln.startswith("- ")]
    added = [ln[2:] for ln in diff if ln.startswith("+ ")]
    others = (
        "450102",
        "450103",
        "450105",
        "450108",
        "450109",
        "450110",
        "450123",
        "450124",
        "450126",
    )
    assert sorted(removed) == sorted(
        [next(ln for ln in default.splitlines() if ln.startswith(f'    "{c}":')) for c in others]
        + ['  counties: ["450107", "450110", "450125", "450181"]']
    )
    assert added[0].startswith(
        "# 本轮（eqm init 生成）：2031 年监测；区县 西乡塘区、上林县、横州市"
    )
    assert added[1].startswith("    # 2031: {4: [...], 8: [...]}")
    assert added[2].startswith('  counties: ["450107", "450125", "450181"]')
    assert len(added) == 3
    mon = build_params(MonitoringParams, got["monitoring"] | {"counties": {}}, "monitoring")
    assert mon.icc_threshold == 0.15


def test_counties_by_name_alias_and_unknown_code():
    table = {"450107": "西乡塘区", "450181": "横州市"}
    chosen = scaffold.parse_counties("450999,横县,西乡塘区,450107", table, {"横县": "450181"})
    assert [(c.code, c.name) for c in chosen] == [
        ("450107", "西乡塘区"), ("450181", "横州市"), ("450999", None),
    ]  # fmt: skip
    text = scaffold.round_params(
        'monitoring:\n  counties:\n    "450107": 西乡塘区\n  rotation: {}\n'
        'demo:\n  counties: ["450107"]\n',
        None,
        chosen,
    )
    assert yaml.safe_load(text)["monitoring"]["counties"]["450999"] == "450999"
    assert "请把引号中的代码改成区县名称" in text
    with pytest.raises(EqmError, match="「南宁」"):
        scaffold.parse_counties("450107,南宁", table, {})


def test_init_refuses_to_overwrite_a_round_and_accepts_an_empty_folder(tmp_path: Path):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert _invoke("init", str(empty), "--quiet")[0] == 0
    old = tmp_path / "old"
    old.mkdir()
    (old / "params.yaml").write_text("monitoring: {}\n", encoding="utf-8")
    code, out = _invoke("init", str(old), "--year", "2025")
    assert code == 1 and "Traceback" not in out
    assert "params.yaml" in out and "覆盖" in out
    assert sorted(p.name for p in old.iterdir()) == ["params.yaml"]  # nothing written
    assert (old / "params.yaml").read_text(encoding="utf-8") == "monitoring: {}\n"
    # a folder of collected files without params.yaml is completed, its files untouched
    partial = tmp_path / "partial"
    (partial / "data/raw/students").mkdir(parents=True)
    (partial / "data/raw/students/西乡塘区.xlsx").write_bytes(b"kept")
    assert _invoke("init", str(partial), "--quiet")[0] == 0
    assert (partial / "data/raw/students/西乡塘区.xlsx").read_bytes() == b"kept"
    code, out = _invoke("init", str(tmp_path / "y"), "--year", "1999")
    assert code == 1 and "1999" in out and not (tmp_path / "y").exists()


def test_init_folder_guides_sources_example_and_gitignore(tmp_path: Path):
    root = tmp_path / "r"
    assert _invoke("init", str(root), "--year", "2025", "--quiet")[0] == 0
    for table in RAW_TABLES:
        text = (root / f"data/raw/{table}/README.md").read_text(encoding="utf-8")
        header = ",".join(c.header for c in guide.form_columns(table))
        assert header in text  # the example header: the form's column names
        for suffix in ingest.FORMATS:  # every format ingest reads is named
            assert f"`{suffix}`" in text, (table, suffix)
        assert "姓名" not in header and "身份证" not in header
    assert (root / "data/raw/ledger/README.md").is_file()
    # sources.yaml: nothing active; uncommented, a valid sources file
    text = (root / "data/raw/sources.yaml").read_text(encoding="utf-8")
    assert yaml.safe_load(text) is None
    live = "\n".join(ln[2:] if ln.startswith("# ") else ln for ln in text.splitlines())
    sources = ingest.parse_sources(yaml.safe_load(live))
    assert sources.files["students/西乡塘区2025.csv"].year == 2025
    assert sources.aliases["抽样权重"] == "weight"
    # .gitignore: raw data, results and the salt stay out of git; params and README go in
    subprocess.run(["git", "init", "-q", str(root)], check=True)
    probe = ["data/raw/students/a.xlsx", ".eqm_salt", "data/processed/x.parquet", "reports/a.html"]
    done = subprocess.run(
        ["git", "-C", str(root), "check-ignore", *probe, "params.yaml", "README.md"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.stdout.split() == probe
    readme = (root / "README.md").read_text(encoding="utf-8")
    assert "dvc add data/raw" in readme and "eqm templates" in readme and "2025" in readme


def test_demo_data_may_replace_the_untouched_example_only(tmp_path: Path):
    from pipeline import demo

    root = tmp_path / "r"
    assert _invoke("init", str(root), "--quiet")[0] == 0
    demo.check_raw_is_replaceable(root / "data/raw")  # guides kept, example replaceable
    with (root / "data/raw/sources.yaml").open("a", encoding="utf-8") as fh:
        fh.write("aliases: {抽样权重: weight}\n")
    with pytest.raises(EqmError, match="sources.yaml"):
        demo.check_raw_is_replaceable(root / "data/raw")


# ------------------------------------------------------------------------------------------------
# One round made by eqm init + eqm demo-data + eqm run (in-process)
# ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def made_round(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("collect") / "监测2022"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("EQM_SALT", "collect-test")
        code, out = _invoke(
            "init", str(root), "--year", "2022", "--counties", ",".join(DEMO_COUNTIES), "--quiet"
        )
        assert code == 0, out
        params = root / "params.yaml"  # HTML reports only: the PDFs do not concern this module
        text = params.read_text(encoding="utf-8")
        params.write_text(text.replace("build_pdf: true", "build_pdf: false"), encoding="utf-8")
        for command in ("demo-data", "run"):
            code, out = _invoke(command, "--root", str(root), "--quiet")
            assert code == 0, out
    return root


@pytest.mark.slow
def test_made_folder_runs_the_demo_round(made_round: Path):
    assert (made_round / "reports/2022/450107.html").is_file()
    assert (made_round / "reports/2020/summary.html").is_file()
    # the folder guides survive eqm demo-data; its sources.yaml replaced the example
    for table in RAW_TABLES:
        assert (made_round / f"data/raw/{table}/README.md").is_file()
    assert "synthetic: true" in (made_round / "data/raw/sources.yaml").read_text(encoding="utf-8")
    assert not (made_round / "data/raw" / INIT_MARKER).exists()
    assert (
        pd.read_parquet(made_round / "data/processed/indicators.parquet")["estimate"].notna().any()
    )


# ------------------------------------------------------------------------------------------------
# eqm templates
# ------------------------------------------------------------------------------------------------


def _list_values(wb, dv) -> list[str]:
    f = dv.formula1
    if f.startswith('"'):
        return f.strip('"').split(",")
    sheet, ref = f.split("!")
    cells = wb[sheet.strip("'")][ref.replace("$", "")]
    return [row[0].value for row in cells]


# Independent expectations: the drop-downs a clerk should see (spelled as in data-contract.md).
EXPECTED_LISTS = {
    "年级": ["四年级", "八年级"],
    "性别": ["男", "女"],
    "城乡类型": ["城区", "镇区", "乡村"],
    "是否留守儿童": ["是", "否"],
    "视力不良": ["是", "否"],
    "学科": ["数学", "语文", "英语", "科学", "体育与健康", "艺术", "德育", "劳动", "心理健康"],
    "水平": ["Ⅰ", "Ⅱ", "Ⅲ", "Ⅳ"],
    "学段": ["小学", "初中", "九年一贯制", "完全中学", "十二年一贯制"],
    "学校类别": ["普通", "特殊教育", "职业"],
    "教学点": ["是", "否"],
    "范围": ["本县", "全省", "全国"],
}
# (type, min, max) of numeric checks, from the data contract's rules
EXPECTED_CHECKS = {
    ("students", "监测年份"): ("whole", 2015, 2100),
    ("students", "每天睡眠时间"): ("decimal", 0, 24),
    ("students", "体质健康总分"): ("decimal", 0, 120),
    ("students", "每天书面作业时间"): ("decimal", 0, 600),
    ("schools", "在校生数"): ("whole", 0, None),
    ("schools", "教学仪器设备值"): ("decimal", 0, None),
    ("scores", "量尺分数"): ("decimal", 100, 900),  # params.yaml default_scale.plausible_range
    ("students", "学生权重"): ("decimal", 0, None),  # > 0: operator greaterThan
}


def test_templates_open_with_their_dropdowns_and_checks(project_root: Path):
    code, out = _invoke("templates", "--root", str(project_root), "--quiet")
    assert code == 0, out
    import openpyxl

    files = sorted((project_root / "templates").iterdir())
    assert [p.name for p in files] == sorted(workbooks.template_name(t) for t in RAW_TABLES)
    seen_lists, seen_checks = set(), set()
    lookups = ingest.build_lookups(make_context(project_root).monitoring, {})
    for table in RAW_TABLES:
        wb = openpyxl.load_workbook(project_root / "templates" / workbooks.template_name(table))
        ws = wb.worksheets[0]
        assert wb.sheetnames[1] == "填写说明" and ws.freeze_panes == "A2"
        headers = [c.value for c in ws[1]]
        # the canonical Chinese names, each recognised by ingest with no alias
        assert headers == [
            schemas.INPUT_TABLES[table][c.column.name].label for c in guide.form_columns(table)
        ]
        targets = [ingest.header_target(table, h, lookups, {}) for h in headers]
        assert all(t is not None and t.kind == "col" for t in targets), headers
        assert not {"姓名", "身份证号", "身份证件号"} & set(headers)
        assert all(
            not schemas.INPUT_TABLES[table][t.column].dropped  # ids: pseudonymised at ingest
            for t in targets
        )
        by_col = {}
        for dv in ws.data_validations.dataValidation:
            (rng,) = dv.sqref.ranges
            assert rng.min_row == 2 and rng.max_row == 1_048_576 and rng.min_col == rng.max_col
            by_col[headers[rng.min_col - 1]] = dv
        for h, dv in by_col.items():
            assert dv.showErrorMessage
            if h in EXPECTED_LISTS:
                assert dv.type == "list" and dv.errorStyle == "stop"
                assert _list_values(wb, dv) == EXPECTED_LISTS[h], (table, h)
                seen_lists.add(h)
            if (table, h) in EXPECTED_CHECKS:
                kind, lo, hi = EXPECTED_CHECKS[(table, h)]
                assert (dv.type, float(dv.formula1)) == (kind, lo)
                assert hi is None or float(dv.formula2) == hi
                if h == "学生权重":
                    assert dv.operator == "greaterThan"  # a weight of 0 is refused too
                seen_checks.add((table, h))
        if "区县" in by_col:
            assert _list_values(wb, by_col["区县"])[:4] == [
                "兴宁区",
                "青秀区",
                "江南区",
                "西乡塘区",
            ]
        if "学生编号" in headers:
            letter = openpyxl.utils.get_column_letter(headers.index("学生编号") + 1)
            assert ws.column_dimensions[letter].number_format == "@"  # long ids stay text
        guide_rows = [r[0] for r in wb["填写说明"].iter_rows(values_only=True)]
        assert set(headers) <= set(guide_rows)
    assert seen_lists == set(EXPECTED_LISTS) and seen_checks == set(EXPECTED_CHECKS)


def test_templates_are_not_written_into_raw_data(project_root: Path):
    code, out = _invoke(
        "templates", "--root", str(project_root), "--out", str(project_root / "data/raw/t")
    )
    assert code == 1 and "data/raw" in out and "Traceback" not in out
    assert not (project_root / "data/raw").exists()


def test_collect_imports_no_excel_library():
    code = "import sys, pipeline.collect; print('openpyxl' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"


def _clerk_value(value, col: guide.FormColumn, scale: float):
    """What a clerk types: numbers as numbers, everything else as the text shown."""
    if value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NA:
        return None
    if col.kind in ("whole", "decimal"):
        try:
            number = float(value)
        except (TypeError, ValueError):
            return str(value)  # a bad cell stays bad (the demo's planted defects)
        number = number * scale
        return int(number) if number.is_integer() and abs(number) < 2**53 else number
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _fill(root: Path, filled: Path) -> None:
    """Write every demo raw file's rows into the templates of ``filled``, saved as its raw files."""
    import openpyxl

    ctx = make_context(root)
    raw_dir = root / "data/raw"
    sources = ingest.load_sources(raw_dir / "sources.yaml")
    lookups = ingest.build_lookups(ctx.monitoring, sources.aliases)
    params = ctx.section(ingest.IngestParams, "ingest")
    rows: dict[str, list[dict[str, object]]] = {t: [] for t in RAW_TABLES}
    for table, path in ingest.discover(raw_dir):
        raw = ingest.read_raw_file(table, path, raw_dir, sources, params, lookups)
        cols = {c.column.name: c for c in guide.form_columns(table)}
        score_cols = {c.column.name: c for c in guide.form_columns("scores")}
        mapped, wide = {}, {}
        for h in raw.data.columns:
            t = ingest.header_target(table, h, lookups, raw.hint.aliases)
            if t is not None and t.kind == "col" and t.column in cols:
                mapped[h] = (cols[t.column], t.scale)
            elif t is not None and t.kind == "wide":
                wide[h] = (t.subject, score_cols[t.column])
        for rec in raw.data.to_dict("records"):
            row = {c.header: _clerk_value(rec[h], c, s) for h, (c, s) in mapped.items()}
            if raw.hint.year is not None and row.get("监测年份") is None:
                row["监测年份"] = raw.hint.year  # the year sources.yaml gave the file
            rows[table].append(row)
            by_subject: dict[str, dict[str, object]] = {}
            for h, (subject, c) in wide.items():  # wide score columns -> the scores form
                v = _clerk_value(rec[h], c, 1.0)
                if v is not None:
                    by_subject.setdefault(subject, {})[c.header] = v
            for subject, vals in by_subject.items():
                rows["scores"].append(
                    {"监测年份": row.get("监测年份"), "学生编号": row.get("学生编号"),
                     "学科": schemas.SUBJECT_LABELS[subject], **vals}
                )  # fmt: skip
    (filled / "data/raw").mkdir(parents=True)  # the filled forms only: no sources.yaml
    for table in RAW_TABLES:
        wb = openpyxl.load_workbook(filled / "templates" / workbooks.template_name(table))
        ws = wb.worksheets[0]
        headers = [c.value for c in ws[1]]
        for r in rows[table]:
            ws.append([r.get(h) for h in headers])
        (filled / "data/raw" / table).mkdir()
        wb.save(filled / "data/raw" / table / f"{table}_已填写.xlsx")


@pytest.mark.slow
def test_filled_templates_give_the_demo_indicators(made_round: Path, tmp_path: Path):
    """Filling the templates with the demo's rows (values only, no sources.yaml, no alias) and
    running the round gives the indicators of the demo's own files (to 1e-12)."""
    from pipeline import indicators, validate

    filled = tmp_path / "filled"
    filled.mkdir()
    shutil.copy(made_round / "params.yaml", filled / "params.yaml")
    assert _invoke("templates", "--root", str(filled), "--quiet")[0] == 0
    _fill(made_round, filled)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("EQM_SALT", "collect-test")
        ctx = make_context(filled, quiet=True)
        for stage in (ingest, validate, indicators):
            stage.run(ctx)
    manifest = ctx.paths.ingest_manifest.read_text(encoding="utf-8")
    assert all(f"{t}_已填写.xlsx" in manifest for t in RAW_TABLES)
    got = pd.read_parquet(ctx.paths.indicators)
    want = pd.read_parquet(made_round / "data/processed/indicators.parquet")
    assert len(want) > 1000
    key = list(schemas.INDICATORS.key)
    got, want = (d.sort_values(key).reset_index(drop=True) for d in (got, want))
    pd.testing.assert_frame_equal(got, want, check_exact=False, rtol=1e-12, atol=1e-12)
    for name in ("resource_balance.parquet", "school_compliance.parquet"):
        pd.testing.assert_frame_equal(
            pd.read_parquet(ctx.paths.processed / name),
            pd.read_parquet(made_round / "data/processed" / name),
            check_exact=False, rtol=1e-12, atol=1e-12,
        )  # fmt: skip


def test_readme_commands_make_a_round_and_its_templates(tmp_path: Path, monkeypatch):
    """The two commands of the README chapter 「放入一轮真实数据」, run from a sibling folder."""
    (tmp_path / "工作目录").mkdir()
    monkeypatch.chdir(tmp_path / "工作目录")
    for command in (
        "eqm init ../监测2025 --year 2025 --counties 450107,450110,450125,450181",
        "eqm templates --root ../监测2025",
    ):
        assert command in (REPO / "README.md").read_text(encoding="utf-8")
        code, out = _invoke(*command.split()[1:], "--quiet")
        assert code == 0, out
    round_dir = tmp_path / "监测2025"
    counties = yaml.safe_load((round_dir / "params.yaml").read_text(encoding="utf-8"))
    assert list(counties["monitoring"]["counties"]) == ["450107", "450110", "450125", "450181"]
    assert len(list((round_dir / "templates").glob("*.xlsx"))) == len(RAW_TABLES)
