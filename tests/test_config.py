"""params.yaml is strict: a typo is an error naming the key, never a silently ignored threshold."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from pipeline.config import MonitoringParams, Scale, build_params, load_params, make_context
from pipeline.errors import EqmError

REPO = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class _Inner:
    limit: float
    names: tuple[str, ...] = ()


@dataclass(frozen=True)
class _Outer:
    inner: _Inner
    alpha: float = 0.05
    mode: str = "a"


def test_repository_params_load_and_monitoring_section_is_typed():
    params = load_params(REPO)
    mon = build_params(MonitoringParams, params["monitoring"], "monitoring")
    assert mon.county_name("450181") == "横州市"
    assert mon.county_aliases["横县"] == "450181"
    # 2022 rotation (国家义务教育质量监测方案 2021 修订): 语文、艺术、英语 (英语 grade 8 only here)
    assert mon.rotation[2022][8] == ("chinese", "arts", "english")
    assert mon.scale(2020, "science", 4) == Scale(
        cut_scores=(380.0, 480.0, 580.0), plausible_range=(100.0, 900.0)
    )


def test_unknown_key_is_rejected_with_its_dotted_path():
    with pytest.raises(EqmError, match=r"inner.*limt"):
        build_params(_Outer, {"inner": {"limt": 1}}, "evidence")


def test_missing_required_key_is_rejected():
    with pytest.raises(EqmError, match=r"evidence\.inner\.limit 缺失"):
        build_params(_Outer, {"inner": {}}, "evidence")


def test_types_are_converted_and_checked():
    got = build_params(_Outer, {"inner": {"limit": 1, "names": ["x", "y"]}, "alpha": 0.1}, "s")
    assert got == _Outer(inner=_Inner(limit=1.0, names=("x", "y")), alpha=0.1)
    assert isinstance(got.inner.limit, float)
    with pytest.raises(EqmError, match="应为数值"):
        build_params(_Outer, {"inner": {"limit": "high"}}, "s")
    with pytest.raises(EqmError, match="应为数值"):
        build_params(_Outer, {"inner": {"limit": True}}, "s")


def test_params_file_problems_are_user_errors(tmp_path: Path):
    with pytest.raises(EqmError, match="找不到参数文件"):
        load_params(tmp_path)
    (tmp_path / "params.yaml").write_text("monitoring: [unclosed\n", encoding="utf-8")
    with pytest.raises(EqmError, match="不是有效的 YAML"):
        load_params(tmp_path)
    good = yaml.safe_load((REPO / "params.yaml").read_text(encoding="utf-8"))
    good["reprot"] = {}
    (tmp_path / "params.yaml").write_text(
        yaml.safe_dump(good, allow_unicode=True), encoding="utf-8"
    )
    with pytest.raises(EqmError, match="reprot"):
        load_params(tmp_path)


def test_context_resolves_paths_against_root(project_root: Path):
    ctx = make_context(project_root)
    assert (
        ctx.paths.ingested("students") == project_root / "data" / "processed" / "students.parquet"
    )
    assert ctx.paths.report_year(2022) == project_root / "reports" / "2022"


def _ctx_with(tmp_path: Path, edit) -> object:
    raw = yaml.safe_load((REPO / "params.yaml").read_text(encoding="utf-8"))
    edit(raw)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw, allow_unicode=True), "utf-8")
    return make_context(tmp_path, quiet=True)


def test_section_takes_a_shared_value_but_refuses_a_repeated_one(tmp_path: Path):
    from pipeline.evidence import EvidenceParams

    ctx = _ctx_with(tmp_path, lambda raw: None)
    assert ctx.section(EvidenceParams, "evidence", icc_threshold=0.2).icc_threshold == 0.2
    # a copy of the standard put back into a stage's section is an error naming where it belongs

    def repeat(raw):
        raw["evidence"]["icc_threshold"] = 0.15

    ctx = _ctx_with(tmp_path, repeat)
    with pytest.raises(EqmError, match=r"evidence\.icc_threshold") as err:
        ctx.section(EvidenceParams, "evidence", icc_threshold=0.15)
    assert "monitoring.icc_threshold" in err.value.hint


def test_icc_threshold_must_be_a_share(tmp_path: Path):
    def bad(raw):
        raw["monitoring"]["icc_threshold"] = 15  # a percentage typed by mistake

    with pytest.raises(EqmError, match=r"monitoring\.icc_threshold"):
        _ = _ctx_with(tmp_path, bad).monitoring
