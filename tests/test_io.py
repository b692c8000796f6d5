"""Outputs are all-or-nothing and byte-stable."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from pipeline.errors import EqmError
from pipeline.io import outputs, read_parquet


def test_failed_stage_leaves_previous_outputs_untouched(tmp_path: Path):
    a, b = tmp_path / "a.parquet", tmp_path / "sub" / "b.json"
    with outputs() as out:
        out.parquet(pd.DataFrame({"x": [1, 2]}), a)
        out.json({"k": 1}, b)
    before = (a.read_bytes(), b.read_bytes())
    with pytest.raises(RuntimeError), outputs() as out:
        out.parquet(pd.DataFrame({"x": [3]}), a)
        out.json({"k": 2}, b)
        raise RuntimeError("stage failed half-way")
    assert (a.read_bytes(), b.read_bytes()) == before
    assert sorted(p.name for p in tmp_path.rglob("*")) == [
        "a.parquet",
        "b.json",
        "sub",
    ]  # no temp files left


def test_directory_is_replaced_whole(tmp_path: Path):
    target = tmp_path / "reports"
    with outputs() as out:
        d = out.directory(target)
        (d / "old.html").write_text("old", encoding="utf-8")
    with outputs() as out:
        d = out.directory(target)
        (d / "new.html").write_text("new", encoding="utf-8")
    assert [p.name for p in target.iterdir()] == ["new.html"]
    with pytest.raises(ValueError), outputs() as out:
        d = out.directory(target)
        (d / "broken.html").write_text("x", encoding="utf-8")
        raise ValueError
    assert [p.name for p in target.iterdir()] == ["new.html"]


def test_parquet_and_json_are_byte_stable(tmp_path: Path):
    df = pd.DataFrame({"county_code": ["450107", "450110"], "v": [0.1, 0.2]})
    blobs = []
    for i in range(2):
        with outputs() as out:
            out.parquet(df, tmp_path / f"t{i}.parquet")
            out.json({"b": 1, "a": "南宁"}, tmp_path / f"t{i}.json")
        blobs.append(
            ((tmp_path / f"t{i}.parquet").read_bytes(), (tmp_path / f"t{i}.json").read_bytes())
        )
    assert blobs[0] == blobs[1]
    assert "南宁" in (tmp_path / "t0.json").read_text(encoding="utf-8")  # not \u-escaped
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "t0.parquet"), df)


def test_missing_input_names_the_file_and_what_to_do(tmp_path: Path):
    with pytest.raises(EqmError) as exc:
        read_parquet(tmp_path / "indicators.parquet", "指标表")
    assert "indicators.parquet" in str(exc.value) and "eqm run" in str(exc.value)
