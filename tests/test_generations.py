"""Generations (issue 15): all-or-nothing outputs per stage, no stale publication, one run per root,
full disks and permissions as user errors.

The first half drives the stamp protocol with tiny stand-in stages (a function decorated like a
stage's run(), writing that stage's real output paths) so each rule is checked in milliseconds. The
second half runs the real CLI on one small demo round (2 counties, 6 + 5 schools, 12 students per
school, HTML only) built once per module and copied per test, and kills commands at every rename of
a commit: in process by snapshotting the project at the moment of each rename (the state a kill
leaves), and once for real with SIGKILL on a subprocess paused inside a rename.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml
from conftest import REPO
from typer.testing import CliRunner

from pipeline import generations
from pipeline.cli import app
from pipeline.config import Paths, make_context
from pipeline.errors import EqmError
from pipeline.generations import (
    project_lock,
    recover,
    require_upstream,
    stamp_existing,
    stamped,
)
from pipeline.io import outputs

runner = CliRunner()


# ------------------------------------------------------------------------------------------------
# The protocol on stand-in stages
# ------------------------------------------------------------------------------------------------


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _validated_round(root: Path) -> Paths:
    """A root whose ingest (nothing) and validate (one table) are stamped, as fixtures do."""
    shutil.copy(REPO / "params.yaml", root / "params.yaml")
    p = Paths(root.resolve())
    p.validated_dir.mkdir(parents=True)
    pd.DataFrame({"x": [1]}).to_parquet(p.validated("students"))
    stamp_existing(root, "validate")
    return p


def _fake_indicators(value: int, fail_after_commit: BaseException | None = None):
    @stamped("indicators")
    def run(ctx):
        require_upstream(ctx, "indicators")
        p = ctx.paths
        with outputs() as out:
            out.parquet(pd.DataFrame({"v": [value]}), p.indicators)
            out.parquet(pd.DataFrame({"v": [value]}), p.resource_balance)
            out.parquet(pd.DataFrame({"v": [value]}), p.school_compliance)
            out.json({"v": value}, p.indicators_summary)
        if fail_after_commit is not None:
            raise fail_after_commit

    return run


def test_stamp_records_hashes_upstream_and_its_own_generation(tmp_path: Path):
    p = _validated_round(tmp_path)
    _fake_indicators(1)(make_context(tmp_path))
    stamp = json.loads(p.stamp("indicators").read_text(encoding="utf-8"))
    outs = (p.indicators, p.indicators_summary, p.resource_balance, p.school_compliance)
    assert stamp["outputs"] == {o.relative_to(p.root).as_posix(): _sha(o) for o in outs}
    validate_gen = json.loads(p.stamp("validate").read_text(encoding="utf-8"))["generation"]
    assert stamp["upstream"] == {"validate": validate_gen}
    assert (stamp["stage"], stamp["status"]) == ("indicators", "ok")
    # the generation id is the sha256 of everything else, as compact sorted JSON (recomputed here)
    body = {k: v for k, v in stamp.items() if k != "generation"}
    canon = json.dumps(body, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    assert stamp["generation"] == hashlib.sha256(canon.encode()).hexdigest()
    first = p.stamp("indicators").read_bytes()
    _fake_indicators(1)(make_context(tmp_path))
    assert p.stamp("indicators").read_bytes() == first  # no clock: a rerun is byte-identical
    _fake_indicators(2)(make_context(tmp_path))
    assert p.stamp("indicators").read_bytes() != first


def test_stage_that_fails_after_committing_is_stamped_failed(tmp_path: Path):
    p = _validated_round(tmp_path)
    with pytest.raises(EqmError):
        _fake_indicators(1, EqmError("第 3 行数据有问题"))(make_context(tmp_path))
    stamp = json.loads(p.stamp("indicators").read_text(encoding="utf-8"))
    assert (stamp["status"], stamp["reason"]) == ("failed", "第 3 行数据有问题")
    with pytest.raises(EqmError) as exc:
        require_upstream(make_context(tmp_path), "evidence")
    assert "指标计算（eqm indicators）上一次运行出错：第 3 行数据有问题" in str(exc.value)


def test_stage_that_fails_before_committing_keeps_the_old_stamp(tmp_path: Path):
    p = _validated_round(tmp_path)
    _fake_indicators(1)(make_context(tmp_path))
    before = p.stamp("indicators").read_bytes()

    @stamped("indicators")
    def broken(ctx):
        with outputs() as out:
            out.parquet(pd.DataFrame({"v": [9]}), p.indicators)
            raise ValueError("half-way")

    with pytest.raises(ValueError):
        broken(make_context(tmp_path))
    assert p.stamp("indicators").read_bytes() == before
    require_upstream(make_context(tmp_path), "evidence")  # the old generation is still whole


def test_refusals_name_the_stage_and_what_to_run(tmp_path: Path):
    # never run: every missing stage is listed with its command and first output
    shutil.copy(REPO / "params.yaml", tmp_path / "params.yaml")
    with pytest.raises(EqmError) as exc:
        require_upstream(make_context(tmp_path), "report")
    text = str(exc.value)
    assert "报告未生成" in text
    for stage in ("ingest", "validate", "indicators", "evidence"):
        assert f"（eqm {stage}）还没有运行过" in text
    assert "indicators.parquet" in text and "依次运行 eqm ingest、eqm validate" in text

    p = _validated_round(tmp_path)
    _fake_indicators(1)(make_context(tmp_path))
    ctx = make_context(tmp_path)
    require_upstream(ctx, "evidence")
    # an output edited by hand after the run
    p.resource_balance.write_bytes(p.resource_balance.read_bytes() + b"x")
    with pytest.raises(EqmError) as exc:
        require_upstream(ctx, "evidence")
    assert "resource_balance.parquet" in str(exc.value) and "被修改过" in str(exc.value)
    assert "eqm indicators、eqm evidence" in str(exc.value)
    _fake_indicators(1)(ctx)
    # an upstream generation newer than the one indicators read: stale
    pd.DataFrame({"x": [2]}).to_parquet(p.validated("students"))
    stamp_existing(tmp_path, "validate")
    with pytest.raises(EqmError) as exc:
        require_upstream(ctx, "evidence")
    assert (
        "指标计算（eqm indicators）的结果是用较早一次的「数据质量校验」结果算出的，已过时"
        in str(exc.value)
    )
    # no stamp although outputs exist: an interrupted run
    p.stamp("indicators").unlink()
    with pytest.raises(EqmError) as exc:
        require_upstream(ctx, "evidence")
    assert "上一次运行没有完成" in str(exc.value)
    # a stamp edited by hand no longer matches its own generation id
    _fake_indicators(1)(ctx)
    text = p.stamp("indicators").read_text(encoding="utf-8").replace('"ok"', '"OK"')
    p.stamp("indicators").write_text(text, encoding="utf-8")
    with pytest.raises(EqmError, match="上一次运行没有完成"):
        require_upstream(ctx, "evidence")


def test_second_writer_on_one_root_is_refused_with_the_holders_pid(tmp_path: Path):
    p = Paths(tmp_path)
    with project_lock(p):
        assert p.lock_file.read_text(encoding="ascii").strip() == str(os.getpid())
        with pytest.raises(EqmError) as exc, project_lock(p):
            pass
        assert f"另一个 eqm 进程（PID {os.getpid()}）正在此项目目录运行" in str(exc.value)
        assert "请等它结束后再运行" in str(exc.value)
    with project_lock(p):  # released when the holder ends
        pass


def test_read_only_output_is_refused_before_the_stage_runs(tmp_path: Path):
    p = _validated_round(tmp_path)
    _fake_indicators(1)(make_context(tmp_path))
    before = p.indicators.read_bytes()
    p.indicators.chmod(0o444)
    calls = []

    @stamped("indicators")
    def run(ctx):
        calls.append(1)

    try:
        with pytest.raises(EqmError) as exc:
            run(make_context(tmp_path))
    finally:
        p.indicators.chmod(0o644)
    assert calls == [] and str(p.indicators) in str(exc.value) and "只读" in str(exc.value)
    assert p.indicators.read_bytes() == before


# ------------------------------------------------------------------------------------------------
# The real CLI on a small demo round
# ------------------------------------------------------------------------------------------------

SMALL_DEMO = {"counties": ["450107", "450125"], "primary_schools": 6, "junior_schools": 5,
              "students_per_school": 12}  # fmt: skip


def _edit_params(root: Path, **sections) -> None:
    params = yaml.safe_load((root / "params.yaml").read_text(encoding="utf-8"))
    for section, values in sections.items():
        params[section] = {**params[section], **values}
    (root / "params.yaml").write_text(yaml.safe_dump(params, allow_unicode=True), "utf-8")


def eqm(root: Path, *args: str):
    return runner.invoke(app, [*args, "--root", str(root), "--quiet"])


def _tree(path: Path) -> dict[str, bytes]:
    return {
        f.relative_to(path).as_posix(): f.read_bytes()
        for f in sorted(path.rglob("*"))
        if f.is_file()
    }


def _leftovers(root: Path) -> list[str]:
    return sorted(
        f.relative_to(root).as_posix()
        for f in root.rglob("*")
        if f.name.endswith((".tmp", ".old")) and ".venv" not in f.parts
    )


@pytest.fixture(scope="module")
def demo_round(tmp_path_factory) -> Path:
    mp = pytest.MonkeyPatch()
    mp.setenv("EQM_SALT", "generations-test-salt")
    root = tmp_path_factory.mktemp("generations_round")
    shutil.copy(REPO / "params.yaml", root / "params.yaml")
    _edit_params(root, demo=SMALL_DEMO, report={"build_pdf": False})
    for command in ("demo-data", "run"):
        done = eqm(root, command)
        assert done.exit_code == 0, done.output
    yield root
    mp.undo()


@pytest.fixture
def root(demo_round: Path, tmp_path: Path, monkeypatch) -> Path:
    monkeypatch.setenv("EQM_SALT", "generations-test-salt")
    dest = tmp_path / "round"
    shutil.copytree(demo_round, dest, symlinks=True)
    return dest


def _snapshots_at_each_rename(root: Path, dest: Path, monkeypatch, *command: str) -> list[Path]:
    """Run ``command``; at each rename under ``root`` copy the whole project first: the state a
    kill at that moment leaves behind. Returns the copies in order."""
    real = os.replace
    shots: list[Path] = []

    def replace(src, dst, *args, **kwargs):
        if Path(os.fsdecode(dst)).is_relative_to(root):
            shot = dest / f"kill{len(shots)}"
            shutil.copytree(root, shot, symlinks=True)
            shots.append(shot)
        return real(src, dst, *args, **kwargs)

    monkeypatch.setattr(os, "replace", replace)
    done = eqm(root, *command)
    monkeypatch.setattr(os, "replace", real)
    assert done.exit_code == 0, done.output
    return shots


@pytest.mark.slow
def test_stamps_cover_every_output_and_a_rerun_changes_nothing(root: Path):
    p = Paths(root)
    stamped_files = set()
    for stage in generations.STAGES:
        stamp = json.loads(p.stamp(stage).read_text(encoding="utf-8"))
        assert stamp["status"] == "ok"
        stamped_files |= set(stamp["outputs"])
    on_disk = {
        f.relative_to(root).as_posix()
        for base in (p.processed, p.reports)
        for f in base.rglob("*")
        if f.is_file() and ".stamps" not in f.parts
    }
    assert on_disk == stamped_files  # every written file belongs to exactly one declared stage
    before = _tree(p.processed / ".stamps")
    assert eqm(root, "validate").exit_code == 0
    assert _tree(p.processed / ".stamps") == before  # same inputs: same generation, nothing stale
    require_upstream(make_context(root), "report")


def _output_files(root: Path, stage: str) -> dict[str, bytes]:
    """Every output file of ``stage`` under ``root`` by path; a folder whose swap was cut between
    its two renames is read from ``.<name>.old``, where the next run restores it from."""
    found = {}
    for out in Paths(root).stage_outputs(stage):
        rel, there = out.relative_to(root), out
        if not there.exists() and there.with_name(f".{there.name}.old").is_dir():
            there = there.with_name(f".{there.name}.old")
        files = sorted(f for f in there.rglob("*") if f.is_file()) if there.is_dir() else [there]
        for f in files:
            if f.is_file() and not generations.TMP_NAME.match(
                f.name
            ):  # temporaries are not outputs
                found[
                    (rel / f.relative_to(there)).as_posix() if there.is_dir() else rel.as_posix()
                ] = f.read_bytes()
    return found


# Renames of one run, in order: indicators 5 files, then the stamp; validate 3 files, the pages
# swap (pages -> .pages.old, temporary -> pages), the validated-folder swap, then the stamp.
RENAMES = {"indicators": 6, "validate": 8}
# Kills after which the stage is rerun to the end (every one for indicators, which is cheap; for
# validate the first rename, the middle of the pages swap, and the stamp). After every kill the
# downstream stage is refused and recover() leaves nothing behind.
RERUN = {"indicators": range(6), "validate": (0, 4, 6, 7)}


@pytest.mark.slow
@pytest.mark.parametrize(
    ("stage", "downstream"), [("indicators", "evidence"), ("validate", "indicators")]
)
def test_kill_at_each_rename_of_a_commit(root, tmp_path, monkeypatch, stage, downstream):
    if stage == "validate":  # new ingested tables (another salt): every validate output changes
        monkeypatch.setenv("EQM_SALT", "another-salt")
        assert eqm(root, "ingest").exit_code == 0
    else:  # changes the indicator rows and the summary's count of suppressed rows
        _edit_params(root, indicators={"suppress_min_students": 40})
    old = _output_files(root, stage)
    shots = _snapshots_at_each_rename(root, tmp_path / "shots", monkeypatch, stage)
    new = _output_files(root, stage)
    assert len(shots) == RENAMES[stage]
    mixed = 0
    for n, shot in enumerate(shots):
        assert not Paths(shot).stamp(stage).exists()  # removed before the first rename
        got = _output_files(shot, stage)
        assert set(got) == set(old) | set(new)  # nothing lost: old, new, or set aside to restore
        assert all(v in (old.get(k), new.get(k)) for k, v in got.items())
        changed = {k for k in got if old.get(k) != new.get(k)}
        mixed += len({got[k] == new[k] for k in changed}) == 2  # new and old side by side
        done = eqm(shot, downstream)
        assert done.exit_code == 1, done.output
        assert f"{generations.LABELS[stage]}（eqm {stage}）上一次运行没有完成" in done.output
        assert "Traceback" not in done.output
        if n in RERUN[stage]:
            done = eqm(shot, stage)  # the next run cleans up and succeeds
            assert done.exit_code == 0, done.output
            assert _output_files(shot, stage) == new
            require_upstream(make_context(shot), downstream)
        else:
            recover(Paths(shot))
            assert _output_files(shot, stage) == got  # the set-aside folder is back in place
        assert _leftovers(shot) == []
        shutil.rmtree(shot)
    assert mixed >= 2  # the kills did land between renames that mix two runs


@pytest.mark.slow
def test_kill_between_the_two_renames_of_the_reports_swap(root, tmp_path, monkeypatch):
    p = Paths(root)
    old = _tree(p.reports)
    _edit_params(root, report={"decimals": {"score": 2, "percent": 1, "rate": 3}})
    shots = _snapshots_at_each_rename(root, tmp_path / "shots", monkeypatch, "report")
    assert len(shots) == 3  # reports -> .reports.old, temporary -> reports, the stamp
    between = Paths(shots[1])
    assert not between.reports.exists() and _tree(between.root / ".reports.old") == old
    done = eqm(between.root, "indicators")  # any writing command first puts reports/ back
    assert done.exit_code == 0, done.output
    assert _tree(between.reports) == old and _leftovers(between.root) == []
    assert not between.stamp("report").exists()  # restored, but not a valid generation
    assert _tree(p.reports) != old  # (the uninterrupted run did publish something new)


@pytest.mark.slow
def test_report_after_a_failed_validate_exits_1_and_publishes_nothing(root: Path):
    p = Paths(root)
    reports = _tree(p.reports)
    _edit_params(
        root,
        validate={
            "min_schools_per_county_grade": 50,
            "severity": {
                **yaml.safe_load((root / "params.yaml").read_text("utf-8"))["validate"]["severity"],
                "few_schools": "error",
            },
        },
    )
    done = eqm(root, "validate")
    assert done.exit_code == 1 and "严重问题" in done.output
    stamp = json.loads(p.stamp("validate").read_text(encoding="utf-8"))
    assert stamp["status"] == "failed" and "严重问题" in stamp["reason"]
    for command in ("report", "indicators", "evidence"):
        done = eqm(root, command)
        assert done.exit_code == 1, done.output
        assert "数据质量校验（eqm validate）上一次运行未通过" in done.output
        assert "validation_all.html" in done.output and "再运行 eqm run" in done.output
        assert "Traceback" not in done.output
    assert "报告未生成" in eqm(root, "report").output
    assert _tree(p.reports) == reports


@pytest.mark.slow
def test_stale_indicators_are_not_published(root: Path, monkeypatch):
    p = Paths(root)
    reports = _tree(p.reports)
    monkeypatch.setenv("EQM_SALT", "another-salt")
    assert eqm(root, "ingest").exit_code == 0
    assert eqm(root, "validate").exit_code == 0
    done = eqm(root, "report")
    assert done.exit_code == 1
    assert "指标计算（eqm indicators）的结果是用较早一次的「数据质量校验」结果算出的" in done.output
    assert "eqm indicators、eqm evidence、eqm report" in done.output
    assert _tree(p.reports) == reports


WRAPPER = """
import os, sys, time
from pathlib import Path
marker, nth = Path(sys.argv[1]), int(sys.argv[2])
real, calls = os.replace, []
def replace(src, dst, *args, **kwargs):
    calls.append(dst)
    if len(calls) == nth:
        marker.write_text(str(os.getpid()))
        time.sleep(120)
    return real(src, dst, *args, **kwargs)
os.replace = replace
from pipeline.cli import main
sys.argv = ["eqm", *sys.argv[3:]]
main()
"""


@pytest.mark.slow
def test_sigkill_during_a_commit_then_a_second_run_and_recovery(root: Path, tmp_path: Path):
    """A real process: paused inside its third rename, a second command is refused by the lock;
    then SIGKILL; the downstream stage refuses; the next run cleans up and succeeds."""
    p = Paths(root)
    _edit_params(root, indicators={"ci_reference": "normal"})
    marker = tmp_path / "in_commit"
    args = [
        sys.executable,
        "-c",
        WRAPPER,
        str(marker),
        "3",
        "indicators",
        "--root",
        str(root),
        "-q",
    ]
    child = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while not marker.exists() and child.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert marker.exists(), child.communicate(timeout=5)
        done = subprocess.run(
            [sys.executable, "-m", "pipeline", "report", "--root", str(root), "-q"],
            capture_output=True, text=True, check=False, timeout=120,
        )  # fmt: skip
        assert done.returncode == 1
        assert f"另一个 eqm 进程（PID {child.pid}）正在此项目目录运行" in done.stderr
        assert "Traceback" not in done.stderr
    finally:
        child.send_signal(signal.SIGKILL)
        child.communicate(timeout=30)
    assert child.returncode == -signal.SIGKILL
    assert not p.stamp("indicators").exists() and _leftovers(root) != []
    done = eqm(root, "evidence")
    assert done.exit_code == 1 and "指标计算（eqm indicators）上一次运行没有完成" in done.output
    done = eqm(root, "indicators")
    assert done.exit_code == 0, done.output
    assert _leftovers(root) == []
    require_upstream(make_context(root), "evidence")


@pytest.mark.slow
def test_read_only_reports_is_refused_naming_the_path(root: Path):
    p = Paths(root)
    reports = _tree(p.reports)
    modes = {d: d.stat().st_mode for d in [p.reports, *p.reports.rglob("*")]}
    for d in sorted(modes, key=lambda x: -len(x.parts)):
        d.chmod(0o555 if d.is_dir() else 0o444)
    try:
        done = eqm(root, "report")
    finally:
        for d, mode in modes.items():
            d.chmod(mode)
    assert done.exit_code == 1
    assert f"输出位置是只读的：{p.reports}" in done.output and "Traceback" not in done.output
    assert _tree(p.reports) == reports and _leftovers(root) == []


@pytest.mark.slow
@pytest.mark.parametrize(
    ("code", "words", "filename"),
    [
        (errno.ENOSPC, "磁盘空间不足", "given"),
        (errno.ENOSPC, "磁盘空间不足", None),  # pyarrow names no file
        (errno.EDQUOT, "超出磁盘配额", "given"),
        (errno.EACCES, "没有权限读写", "given"),
    ],
)
def test_full_disk_or_permission_error_is_a_user_error(root, monkeypatch, code, words, filename):
    p = Paths(root)
    before = {o: o.read_bytes() for o in p.stage_outputs("indicators")}
    stamp = p.stamp("indicators").read_bytes()

    def write_table(table, where, **kwargs):
        raise OSError(code, os.strerror(code), *([str(where)] if filename else []))

    monkeypatch.setattr("pipeline.io.pq.write_table", write_table)
    done = eqm(root, "indicators")
    assert done.exit_code == 1, done.output
    assert words in done.output and str(p.indicators) in done.output  # the target, not the temp
    assert "内部错误" not in done.output and "Traceback" not in done.output
    assert {o: o.read_bytes() for o in before} == before and _leftovers(root) == []
    assert p.stamp("indicators").read_bytes() == stamp  # nothing committed: still whole
    require_upstream(make_context(root), "evidence")


@pytest.mark.slow
def test_permission_error_during_the_commit_leaves_a_failed_stamp(root: Path, monkeypatch):
    p = Paths(root)
    real, calls = os.replace, []

    def replace(src, dst, *args, **kwargs):
        calls.append(dst)
        if len(calls) == 2:
            raise PermissionError(errno.EACCES, "Permission denied", os.fsdecode(dst))
        return real(src, dst, *args, **kwargs)

    monkeypatch.setattr(os, "replace", replace)
    done = eqm(root, "indicators")
    monkeypatch.setattr(os, "replace", real)
    assert done.exit_code == 1 and f"没有权限读写 {p.resource_balance}" in done.output
    assert _leftovers(root) == []  # the files not yet renamed are removed
    assert json.loads(p.stamp("indicators").read_text("utf-8"))["status"] == "failed"
    done = eqm(root, "evidence")
    assert done.exit_code == 1 and "指标计算（eqm indicators）上一次运行出错" in done.output


def test_recover_is_called_before_any_stage(monkeypatch, project_root: Path):
    """Every writing command takes the lock and recovers before its first stage."""
    seen = []
    monkeypatch.setattr(generations, "recover", lambda paths: seen.append("recover"))
    import types

    monkeypatch.setitem(
        sys.modules,
        "pipeline.ingest",
        types.SimpleNamespace(run=lambda ctx: seen.append(ctx.paths.lock_file.exists())),
    )
    assert eqm(project_root, "ingest").exit_code == 0
    assert seen == ["recover", True]


def test_recover_only_touches_the_pipelines_own_leftovers(tmp_path: Path):
    p = Paths(tmp_path)
    (p.processed / "validated").mkdir(parents=True)
    tmp_file = p.processed / "validated" / ".students.parquet.ab1cd2ef.parquet.tmp"
    tmp_file.write_bytes(b"half")
    (tmp_path / ".reports.x1y2z3w4.tmp").mkdir()
    (tmp_path / ".reports.old").mkdir()
    (tmp_path / ".reports.old" / "a.html").write_text("old", encoding="utf-8")
    (p.processed / ".evidence.old").mkdir()  # its target exists: a finished swap, old not removed
    (p.processed / "evidence").mkdir()
    (tmp_path / ".notes.old").mkdir()  # not ours
    (tmp_path / ".cache.abcdefgh.tmp").write_text("not ours", encoding="utf-8")
    recover(p)
    assert not tmp_file.exists() and not (tmp_path / ".reports.x1y2z3w4.tmp").exists()
    assert (p.reports / "a.html").read_text(encoding="utf-8") == "old"
    assert not (tmp_path / ".reports.old").exists() and not (p.processed / ".evidence.old").exists()
    assert (p.processed / "evidence").is_dir()
    assert (tmp_path / ".notes.old").is_dir() and (tmp_path / ".cache.abcdefgh.tmp").exists()


def test_forked_workers_do_not_keep_the_project_locked(tmp_path):
    """A report worker (forked while the run holds the lock) closes its copy of the lock at once:
    were the run killed (kill -9, OOM), an orphaned worker would otherwise keep every later run out
    with the message about a PID that no longer exists (found by review)."""
    paths = Paths(tmp_path)
    read_end, write_end = os.pipe()  # parent -> worker: "end now"
    ready_r, ready_w = os.pipe()  # worker -> parent: "running" (after the fork hooks ran)
    with generations.project_lock(paths):
        pid = os.fork()
        if pid == 0:  # the worker: says it runs, then waits until told to end
            os.close(write_end)
            os.write(ready_w, b"r")
            os.read(read_end, 1)
            os._exit(0)
        os.read(ready_r, 1)
    # the run has ended (its lock closed); the worker still lives and must not hold the lock
    try:
        with generations.project_lock(paths):
            pass
    finally:
        for fd in (read_end, ready_r, ready_w):
            os.close(fd)
        os.write(write_end, b"x")
        os.close(write_end)
        os.waitpid(pid, 0)


def test_a_worker_ends_when_its_run_is_killed(tmp_path):
    """kill -9 of the run: its forked worker (which would block forever on its task pipe) ends too."""
    script = f"""
import os, signal, sys, time
from pathlib import Path
from pipeline import generations
from pipeline.config import Paths
with generations.project_lock(Paths(Path({str(tmp_path)!r}))):
    pid = os.fork()
    if pid == 0:  # lets go of the output pipe, so that subprocess.run returns at the kill
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, 1)
        os.dup2(null, 2)
        time.sleep(60)
        os._exit(0)
    print(pid, flush=True)
    os.kill(os.getpid(), signal.SIGKILL)
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO)
    assert done.returncode == -signal.SIGKILL, done.stderr
    worker = int(done.stdout.split()[0])
    for _ in range(50):  # the kernel sends SIGKILL at once; allow up to 5 s for a loaded machine
        try:  # gone, or a zombie nobody has reaped yet (State: Z)
            if "\nState:\tZ" in Path(f"/proc/{worker}/status").read_text():
                break
        except FileNotFoundError:
            break
        time.sleep(0.1)
    else:
        os.kill(worker, signal.SIGKILL)
        pytest.fail("the worker outlived its killed run")
