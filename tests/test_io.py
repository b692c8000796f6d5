"""Outputs are all-or-nothing and byte-stable; failed renames, read-only targets and full disks."""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import pandas as pd
import pytest

from pipeline.errors import EqmError
from pipeline.generations import user_error
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


def _patch_replace(monkeypatch, fail_at: int, exc: BaseException) -> list:
    """os.replace that raises ``exc`` at its ``fail_at``-th call (1-based)."""
    real, calls = os.replace, []

    def replace(src, dst, *args, **kwargs):
        calls.append(Path(os.fsdecode(dst)).name)
        if len(calls) == fail_at:
            raise exc
        return real(src, dst, *args, **kwargs)

    monkeypatch.setattr(os, "replace", replace)
    return calls


def test_a_failed_rename_removes_what_is_not_yet_renamed(tmp_path: Path, monkeypatch):
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    with outputs() as out:
        out.json({"v": 1}, a)
        out.json({"v": 1}, b)
    _patch_replace(monkeypatch, 2, PermissionError(errno.EACCES, "denied", str(b)))
    with pytest.raises(PermissionError), outputs() as out:
        out.json({"v": 2}, a)
        out.json({"v": 2}, b)
    assert json.loads(a.read_text(encoding="utf-8")) == {"v": 2}  # renamed before the failure
    assert json.loads(b.read_text(encoding="utf-8")) == {"v": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json", "b.json"]  # no temporaries


def test_a_failed_folder_swap_puts_the_old_folder_back(tmp_path: Path, monkeypatch):
    target = tmp_path / "reports"
    with outputs() as out:
        (out.directory(target) / "old.html").write_text("old", encoding="utf-8")
    # the swap's first rename (reports -> .reports.old) works, the second fails
    calls = _patch_replace(monkeypatch, 2, OSError(errno.EIO, "I/O error"))
    with pytest.raises(OSError), outputs() as out:
        (out.directory(target) / "new.html").write_text("new", encoding="utf-8")
    assert calls == [".reports.old", "reports", "reports"]  # aside, failed, put back
    assert [p.name for p in tmp_path.iterdir()] == ["reports"]
    assert (target / "old.html").read_text(encoding="utf-8") == "old"


def test_read_only_target_is_refused_before_anything_is_written(tmp_path: Path):
    target = tmp_path / "reports"
    with outputs() as out:
        (out.directory(target) / "a.html").write_text("a", encoding="utf-8")
    target.chmod(0o555)  # root may still write; the mode bits say "do not replace"
    try:
        with pytest.raises(EqmError) as exc, outputs() as out:
            out.directory(target)
    finally:
        target.chmod(0o755)
    assert f"输出位置是只读的：{target}" in str(exc.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["reports"]
    assert [p.name for p in target.iterdir()] == ["a.html"]
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        with pytest.raises(EqmError, match="只读") as exc, outputs() as out:
            out.json({}, folder / "x.json")
    finally:
        folder.chmod(0o755)
    assert str(folder) in str(exc.value) and list(folder.iterdir()) == []


def test_os_error_naming_no_file_is_given_the_target(tmp_path: Path, monkeypatch):
    def write_table(*args, **kwargs):  # what pyarrow raises on a full disk: errno, no filename
        raise OSError(errno.ENOSPC, "Error writing bytes to file. Detail: [errno 28]")

    monkeypatch.setattr("pipeline.io.pq.write_table", write_table)
    target = tmp_path / "indicators.parquet"
    with pytest.raises(OSError) as exc, outputs() as out:
        out.parquet(pd.DataFrame({"x": [1]}), target)
    assert exc.value.errno == errno.ENOSPC and exc.value.filename == str(target)
    assert list(tmp_path.iterdir()) == []


def test_disk_and_permission_errors_become_user_errors_naming_the_path(tmp_path: Path):
    tmp = tmp_path / "reports" / ".2022.ab12cd34.tmp" / "x.pdf"
    try:
        try:
            raise OSError(errno.ENOSPC, "No space left on device", str(tmp))
        except OSError as inner:
            raise RuntimeError("wrapped by a library") from inner
    except RuntimeError as outer:
        err = user_error(outer)
    assert err is not None and "磁盘空间不足" in str(err)
    assert str(tmp_path / "reports" / "2022" / "x.pdf") in str(err)  # the name the user knows
    err = user_error(PermissionError(errno.EROFS, "Read-only file system", "/mnt/r"))
    assert "没有权限读写 /mnt/r（文件系统是只读的）" in str(err)
    assert user_error(OSError(errno.EIO, "I/O error", "/x")) is None  # stays an internal error
    assert user_error(ValueError("x")) is None
