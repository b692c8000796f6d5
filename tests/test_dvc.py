"""dvc.yaml agrees with the code: outs are the paths of pipeline/config.py, deps cover every module a
stage imports, and every params key it names exists in params.yaml."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import yaml

from pipeline.config import RAW_TABLES, Paths

REPO = Path(__file__).resolve().parents[1]
DVC = yaml.safe_load((REPO / "dvc.yaml").read_text(encoding="utf-8"))["stages"]
PARAMS = yaml.safe_load((REPO / "params.yaml").read_text(encoding="utf-8"))
P = Paths(Path("."))


def _rel(p: Path) -> str:
    return p.as_posix().removeprefix("./")


def _names(entries) -> set[str]:
    out = set()
    for e in entries or []:
        out.add(next(iter(e)) if isinstance(e, dict) else e)
    return out


EXPECTED_OUTS = {
    "ingest": {_rel(P.ingested(t)) for t in RAW_TABLES} | {_rel(P.ingest_quarantine), _rel(P.ingest_manifest)},
    "validate": {
        _rel(P.validated_dir), _rel(P.validation_quarantine), _rel(P.validation_findings),
        _rel(P.validation_pages), _rel(P.validation_summary),
    },
    "indicators": {
        _rel(P.indicators), _rel(P.resource_balance), _rel(P.school_compliance), _rel(P.factors),
        _rel(P.indicators_summary),
    },
    "evidence": {_rel(P.problems), _rel(P.comparisons), _rel(P.evidence_dir)},
    "report": {_rel(P.reports)},
}  # fmt: skip
for _stage, _outs in EXPECTED_OUTS.items():
    _outs.add(_rel(P.stamp(_stage)))  # its generation stamp (pipeline/generations.py)


def test_stages_are_the_five_in_order():
    assert list(DVC) == ["ingest", "validate", "indicators", "evidence", "report"]
    for name, stage in DVC.items():
        assert stage["cmd"].startswith(f"eqm {name}")


@pytest.mark.parametrize("stage", list(EXPECTED_OUTS))
def test_outs_and_metrics_match_config_paths(stage):
    declared = _names(DVC[stage].get("outs")) | _names(DVC[stage].get("metrics"))
    assert declared == EXPECTED_OUTS[stage]


@pytest.mark.parametrize("stage", list(EXPECTED_OUTS))
def test_data_deps_are_outputs_of_earlier_stages_or_raw(stage):
    order = list(DVC)
    earlier = set().union(*(EXPECTED_OUTS[s] for s in order[: order.index(stage)])) | {"data/raw"}
    for dep in _names(DVC[stage]["deps"]):
        if dep.startswith("data/"):
            assert any(
                dep == e or dep.startswith(e + "/") or e.startswith(dep + "/") for e in earlier
            ), dep


def _module_file(mod: str) -> Path | None:
    base = REPO / Path(*mod.split("."))
    if (base / "__init__.py").is_file():
        return base / "__init__.py"
    if base.with_suffix(".py").is_file():
        return base.with_suffix(".py")
    return None


def _pipeline_imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = set()
    pkg = ".".join(path.relative_to(REPO).with_suffix("").parts)
    pkg = pkg.removesuffix(".__init__") if path.name == "__init__.py" else pkg.rsplit(".", 1)[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = pkg.split(".")
                base = base[: len(base) - node.level + 1]
                mod = ".".join([*base, node.module] if node.module else base)
            else:
                mod = node.module or ""
            if mod.startswith("pipeline"):
                if (
                    mod != "pipeline"
                ):  # `from pipeline import x` imports pipeline.x, not every module
                    found.add(mod)
                for alias in node.names:
                    found.add(f"{mod}.{alias.name}")
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("pipeline")}
    return found


def _closure(module: str) -> set[Path]:
    seen: set[Path] = set()
    todo = [module]
    while todo:
        f = _module_file(todo.pop())
        if f is None or f in seen:
            continue
        seen.add(f)
        files = [f] if f.name != "__init__.py" else sorted(f.parent.rglob("*.py"))
        for g in files:
            seen.add(g)
            todo.extend(_pipeline_imports(g))
    return seen


@pytest.mark.parametrize("stage", list(EXPECTED_OUTS))
def test_code_deps_cover_every_module_the_stage_imports(stage):
    assert _module_file(f"pipeline.{stage}") is not None, f"stage module pipeline.{stage} missing"
    deps = [d for d in _names(DVC[stage]["deps"]) if d.startswith("pipeline")]
    for d in deps:
        assert (REPO / d).exists(), f"dvc.yaml dep {d} does not exist"
    for f in _closure(f"pipeline.{stage}"):
        rel = f.relative_to(REPO).as_posix()
        if rel == "pipeline/__init__.py":
            continue
        assert any(rel == d or rel.startswith(d.rstrip("/") + "/") for d in deps), (
            f"{stage} imports {rel} but dvc.yaml does not list it as a dep"
        )


@pytest.mark.parametrize("stage", list(EXPECTED_OUTS))
def test_params_keys_exist(stage):
    for key in DVC[stage].get("params", []):
        node = PARAMS
        for part in key.split("."):
            assert isinstance(node, dict) and part in node, (
                f"params key {key} missing in params.yaml"
            )
            node = node[part]
