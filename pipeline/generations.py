"""Generations: which run of each stage made the files on disk, and whether they belong together.

A stage commits its outputs through :func:`pipeline.io.outputs`, renaming them into place one by one,
so a run killed during the renames leaves new and old files of one stage side by side, and a later
stage could read a mix of two runs. The **stamp** ``data/processed/.stamps/<stage>.json``
(``Paths.stamp``) makes a set of outputs one generation:

* the old stamp is removed before the stage's first rename and the new one is written after its last
  rename, so a run killed or failed half-way through its commit leaves no valid stamp;
* it records the stage, its status (``ok``, or ``failed`` with the Chinese reason when a stage stops
  after committing part of its outputs, e.g. the validate gate after writing its diagnostics), the
  sha256 of every output file (folders: every file inside), the generation ids of the upstream stages
  the run read, and its own generation id (sha256 over all of that). No clock, sorted keys: a rerun
  on the same inputs writes the same bytes, so it does not make the later stages stale.

Every stage but ingest calls :func:`require_upstream` before it reads anything: each stage it depends
on, directly or not, must have a stamp with status ok, outputs on disk equal to the recorded hashes,
and recorded upstream generations equal to the current ones (an older one means that stage is
stale). Otherwise the stage stops with an :class:`EqmError` naming the stage and what to run, and
writes nothing. Stages are wrapped with :func:`stamped`, which tracks the commit and writes the stamp.

Writing commands hold :func:`project_lock` (one eqm process per project root) and start with
:func:`recover`, which removes temporary files of killed runs and puts back a folder whose swap was
interrupted. :func:`user_error` turns a full disk or a permission error into a message naming the
path (exit 1) instead of an internal error.

This module uses the standard library only: the CLI imports it, and ``eqm --help`` loads no data
library.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from pipeline.config import Paths
from pipeline.errors import EqmError

try:  # POSIX
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger(__name__)

STAGES = ("ingest", "validate", "indicators", "evidence", "report")
# What each stage's run() reads, by the stage that wrote it (see each run()).
UPSTREAM: dict[str, tuple[str, ...]] = {
    "ingest": (),  # data/raw only
    "validate": ("ingest",),  # ingested tables, ingest quarantine, ingest manifest
    "indicators": ("validate",),  # validated tables
    "evidence": ("indicators", "validate"),  # indicator tables; validated county reports, lists
    # everything above, the validation pages and quarantine, and the ingest manifest
    "report": ("evidence", "indicators", "validate", "ingest"),
}
LABELS = {
    "ingest": "数据导入",
    "validate": "数据质量校验",
    "indicators": "指标计算",
    "evidence": "问题清单",
    "report": "报告生成",
}

# Temporary names of pipeline.io: tempfile's ".<target name>.<8 random chars><suffix>.tmp", and
# ".<target name>.old" for a folder being swapped.
TMP_NAME = re.compile(r"^\.(?P<name>.+)\.[a-z0-9_]{8}(?:\.[^.]*)?\.tmp$")
OLD_NAME = re.compile(r"^\.(?P<name>.+)\.old$")

_DISK_FULL = {errno.ENOSPC, errno.EDQUOT}
_NO_PERMISSION = {errno.EACCES, errno.EPERM, errno.EROFS}


def _label(stage: str) -> str:
    return f"{LABELS[stage]}（eqm {stage}）"


# ------------------------------------------------------------------------------------------------
# Hashes and stamps
# ------------------------------------------------------------------------------------------------

_HASHES: dict[tuple, str] = {}  # per process: (path, device, inode, size, mtime, ctime) -> sha256


def file_sha256(path: Path) -> str:
    """sha256 of a file; remembered while the file is unchanged (same inode, size and times), so
    ``eqm run`` hashes each output once, when its stage stamps it."""
    st = path.stat()
    key = (str(path), st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
    digest = _HASHES.get(key)
    if digest is None:
        with path.open("rb") as fh:
            digest = hashlib.file_digest(fh, "sha256").hexdigest()
        _HASHES[key] = digest
    return digest


def output_hashes(paths: Paths, stage: str) -> dict[str, str]:
    """sha256 of every output file of ``stage`` on disk, keyed by its path under the project root."""
    found: dict[str, str] = {}
    for out in paths.stage_outputs(stage):
        files = sorted(f for f in out.rglob("*") if f.is_file()) if out.is_dir() else [out]
        for f in files:
            if f.is_file():
                found[f.relative_to(paths.root).as_posix()] = file_sha256(f)
    return found


def _canonical(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False, sort_keys=True, separators=(",", ":"))


def _make_stamp(
    stage: str, status: str, outputs: dict[str, str], upstream: dict[str, str | None], reason: str
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "stage": stage,
        "status": status,
        "outputs": outputs,
        "upstream": upstream,
    }
    if reason:
        body["reason"] = reason
    body["generation"] = hashlib.sha256(_canonical(body).encode("utf-8")).hexdigest()
    return body


def read_stamp(paths: Paths, stage: str) -> dict[str, Any] | None:
    """The stage's stamp, or None when there is none or it is not a well-formed stamp of ``stage``."""
    path = paths.stamp(stage)
    try:
        stamp = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(stamp, dict) or stamp.get("stage") != stage:
        return None
    body = {k: v for k, v in stamp.items() if k != "generation"}
    if stamp.get("generation") != hashlib.sha256(_canonical(body).encode()).hexdigest():
        return None
    return stamp


def _write_stamp(paths: Paths, stamp: dict[str, Any]) -> None:
    target = paths.stamp(stamp["stage"])
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".json.tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(json.dumps(stamp, ensure_ascii=False, sort_keys=True, indent=2) + "\n")
        os.replace(name, target)
    except BaseException:
        Path(name).unlink(missing_ok=True)
        raise


# ------------------------------------------------------------------------------------------------
# A stage run: remove the stamp before the first rename, write it after the last
# ------------------------------------------------------------------------------------------------


@dataclass
class _Run:
    paths: Paths
    stage: str
    upstream: dict[str, str | None] | None = None  # set by require_upstream
    committing: bool = False  # the stage has started renaming outputs into place


_ACTIVE: ContextVar[_Run | None] = ContextVar("eqm_stage_run", default=None)


def commit_starting() -> None:
    """Called by :class:`pipeline.io.Outputs` before its first rename: the stage's stamp goes first."""
    run = _ACTIVE.get()
    if run is None or run.committing:
        return
    run.committing = True
    run.paths.stamp(run.stage).unlink(missing_ok=True)


def _current_generation(paths: Paths, stage: str) -> str | None:
    stamp = read_stamp(paths, stage)
    return stamp["generation"] if stamp else None


def _stamp_run(run: _Run, status: str, reason: str = "") -> dict[str, Any]:
    upstream = run.upstream
    if upstream is None:
        upstream = {u: _current_generation(run.paths, u) for u in UPSTREAM[run.stage]}
    stamp = _make_stamp(run.stage, status, output_hashes(run.paths, run.stage), upstream, reason)
    _write_stamp(run.paths, stamp)
    return stamp


def _failure_reason(exc: BaseException) -> str:
    if isinstance(exc, EqmError):
        return exc.message
    if isinstance(exc, KeyboardInterrupt):
        return "运行被中断"
    return f"运行出错（{type(exc).__name__}）"


F = TypeVar("F", bound=Callable[..., Any])


def stamped(stage: str) -> Callable[[F], F]:
    """Decorate a stage's ``run(ctx)``: refuse read-only outputs up front, track the commit, and
    write the stamp after the last rename (``ok``), or ``failed`` with the reason when the run stops
    after it began committing. A run that stops before committing leaves the old stamp, which still
    describes the old outputs."""
    if stage not in UPSTREAM:
        raise ValueError(f"unknown stage {stage!r}")

    def decorate(run: F) -> F:
        @functools.wraps(run)
        def wrapper(ctx, *args, **kwargs):
            paths = ctx.paths
            refuse_read_only(*paths.stage_outputs(stage), paths.stamp(stage))
            current = _Run(paths, stage)
            token = _ACTIVE.set(current)
            try:
                result = run(ctx, *args, **kwargs)
            except BaseException as exc:
                if current.committing:
                    try:
                        _stamp_run(current, "failed", _failure_reason(exc))
                    except OSError as err:  # e.g. the disk that stopped the stage is still full
                        log.warning("无法写出运行记录 %s：%s", paths.stamp(stage), err)
                raise
            finally:
                _ACTIVE.reset(token)
            if current.committing:
                _stamp_run(current, "ok")
            return result

        return wrapper  # type: ignore[return-value]

    return decorate


def stamp_existing(root: Path | str, through: str) -> None:
    """Stamp the outputs of ingest … ``through`` now on disk as ok, each stage consuming the stamps
    before it — as if those stages had just run. For fixtures that write processed tables by hand
    (tests); never called by the pipeline."""
    paths = Paths(Path(root).resolve())
    for stage in STAGES[: STAGES.index(through) + 1]:
        _stamp_run(_Run(paths, stage), "ok")


# ------------------------------------------------------------------------------------------------
# Before a stage reads: every stage it depends on has a complete, passing, current generation
# ------------------------------------------------------------------------------------------------


def ancestors(stage: str) -> tuple[str, ...]:
    """Every stage ``stage`` depends on, directly or through another, in pipeline order."""
    seen: set[str] = set()
    todo = list(UPSTREAM[stage])
    while todo:
        s = todo.pop()
        if s not in seen:
            seen.add(s)
            todo.extend(UPSTREAM[s])
    return tuple(s for s in STAGES if s in seen)


@dataclass(frozen=True)
class Problem:
    stage: str
    kind: str  # never | incomplete | failed | changed | stale
    text: str


def _inspect(paths: Paths, stage: str, generations: dict, bad: set[str]) -> Problem | None:
    stamp = read_stamp(paths, stage)
    if stamp is None:
        outs = paths.stage_outputs(stage)
        if not paths.stamp(stage).exists() and not any(o.exists() for o in outs):
            return Problem(stage, "never", f"{_label(stage)}还没有运行过（找不到 {outs[0]}）。")
        return Problem(
            stage,
            "incomplete",
            f"{_label(stage)}上一次运行没有完成（可能被中断或出错，没有有效的运行记录 "
            f"{paths.stamp(stage).name}），它的输出可能新旧混杂。",
        )
    generations[stage] = stamp["generation"]
    if stamp.get("status") != "ok":
        verb = "未通过" if stage == "validate" else "出错"
        reason = stamp.get("reason") or "原因未记录"
        return Problem(stage, "failed", f"{_label(stage)}上一次运行{verb}：{reason}")
    recorded, actual = stamp.get("outputs") or {}, output_hashes(paths, stage)
    if recorded != actual:
        rel = sorted(k for k in set(recorded) | set(actual) if recorded.get(k) != actual.get(k))[0]
        how = (
            "被删除"
            if rel not in actual
            else "是运行后新增的"
            if rel not in recorded
            else "被修改过"
        )
        return Problem(
            stage,
            "changed",
            f"{_label(stage)}的输出 {paths.root / rel} 与运行记录不一致（{how}），"
            "不能确定它与其他输出出自同一次运行。",
        )
    for up in UPSTREAM[stage]:
        if up in bad:
            continue  # the upstream problem is reported; rerunning from there fixes this one too
        if (stamp.get("upstream") or {}).get(up) != generations.get(up):
            return Problem(
                stage,
                "stale",
                f"{_label(stage)}的结果是用较早一次的「{LABELS[up]}」结果算出的，已过时"
                f"（之后又运行过 eqm {up}）。",
            )
    return None


def require_upstream(ctx, stage: str) -> dict[str, str | None]:
    """Stop unless every stage ``stage`` reads from, directly or not, has a complete, passing and
    current generation on disk; return the generation ids of its direct upstream stages.

    Call it at the top of ``run()``, before reading any input (after parsing params, so a typo in
    params.yaml is reported first).
    """
    paths = ctx.paths
    generations: dict[str, str] = {}
    problems: list[Problem] = []
    bad: set[str] = set()
    for s in ancestors(stage):
        problem = _inspect(paths, s, generations, bad)
        if problem is not None:
            problems.append(problem)
            bad.add(s)
    if problems:
        raise _refusal(paths, stage, problems)
    direct = {u: generations[u] for u in UPSTREAM[stage]}
    run = _ACTIVE.get()
    if run is not None and run.stage == stage:
        run.upstream = direct
    return direct


def _refusal(paths: Paths, stage: str, problems: list[Problem]) -> EqmError:
    head = (
        "报告未生成，reports/ 中原有的报告保持不变"
        if stage == "report"
        else f"{_label(stage)}没有运行，它上一次的输出保持不变"
    )
    lines = [f"{head}：它要读取的前面环节的结果不可用，为避免把不同批次的结果混在一起，本环节没有读取"
             "也没有写出任何文件。"]  # fmt: skip
    lines += [f"· {p.text}" for p in problems]
    first = problems[0]
    if first.kind == "failed" and first.stage == "validate":
        page = paths.validation_pages / "validation_all.html"
        hint = f"请先打开校验页 {page}，处理其中列出的严重问题，再运行 eqm run。"
    elif first.kind == "failed":
        hint = f"请先解决{_label(first.stage)}上一次报告的问题，再运行 eqm run。"
    else:
        chain = STAGES[STAGES.index(first.stage) : STAGES.index(stage) + 1]
        hint = (
            "请运行 eqm run（按顺序重新运行全部环节），或依次运行 "
            + "、".join(f"eqm {s}" for s in chain)
            + "。"
        )
    return EqmError("\n".join(lines), hint=hint)


# ------------------------------------------------------------------------------------------------
# Read-only targets, full disks, permissions
# ------------------------------------------------------------------------------------------------


def _writable(path: Path) -> bool:
    # The mode bits too: for root os.access() is always true, yet a folder made read-only on purpose
    # must not be replaced.
    try:
        return bool(path.stat().st_mode & 0o222) and os.access(path, os.W_OK)
    except FileNotFoundError:
        return True


def read_only_part(target: Path) -> Path | None:
    """The first part of ``target`` that cannot be replaced: the target itself, anything inside it
    (a folder is replaced whole), or the folder that holds it (or would, once created)."""
    target = Path(target)
    if target.is_dir() and not target.is_symlink():
        for dirpath, _dirs, files in os.walk(target):
            for p in (Path(dirpath), *(Path(dirpath) / f for f in files)):
                if not _writable(p):
                    return p
    elif target.exists() and not _writable(target):
        return target
    parent = target.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    return None if _writable(parent) else parent


def refuse_read_only(*targets: Path) -> None:
    """Stop before writing when an output (or the folder it goes in) is read-only."""
    for target in targets:
        bad = read_only_part(target)
        if bad is not None:
            raise EqmError(
                f"输出位置是只读的：{bad}。eqm 不会替换只读的文件或文件夹，本次没有写出任何文件。",
                hint=f"如需重新生成，请先取消只读（如 chmod -R u+w {bad}，或在文件属性中取消"
                "「只读」）或改正权限；如果是有意保护上一次的结果，请先把它复制到别处。",
            )


def public_path(filename: str | os.PathLike | None) -> str | None:
    """The path a user knows: a temporary ``.name.XXXXXXXX.tmp`` part shown as the ``name`` it
    becomes."""
    if filename is None:
        return None
    parts = []
    for part in Path(os.fsdecode(filename)).parts:
        m = TMP_NAME.match(part)
        parts.append(m["name"] if m else part)
    return str(Path(*parts))


def user_error(exc: BaseException, root: Path | None = None) -> EqmError | None:
    """A full disk, an exceeded quota or a permission error anywhere in ``exc`` (or what caused it)
    as an EqmError naming the path; None for any other error."""
    seen: set[int] = set()
    e: BaseException | None = exc
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if isinstance(e, OSError) and e.errno in _DISK_FULL | _NO_PERMISSION:
            where = public_path(e.filename) or (f"项目目录 {root} 中的输出" if root else "输出文件")
            after = "未完成的环节没有留下写了一半的文件；在它重新运行成功之前，后面的环节不会使用它的输出。"
            if e.errno in _DISK_FULL:
                quota = "（或超出磁盘配额）" if e.errno == errno.EDQUOT else ""
                return EqmError(
                    f"磁盘空间不足{quota}，无法写入 {where}。{after}",
                    hint="请清理该磁盘（删除不需要的文件，或把项目目录移到空间充足的磁盘）后重新运行。",
                )
            ro = "（文件系统是只读的）" if e.errno == errno.EROFS else ""
            return EqmError(
                f"没有权限读写 {where}{ro}。{after}",
                hint="请检查该文件或文件夹的权限（是否只读、是否属于其他用户、是否被其他程序占用），"
                "改正后重新运行。",
            )
        e = e.__cause__ or e.__context__
    return None


# ------------------------------------------------------------------------------------------------
# One writer per project root; clean up after killed runs
# ------------------------------------------------------------------------------------------------


def _try_lock(fd: int) -> bool:
    if fcntl is not None:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True
    import msvcrt  # pragma: no cover - Windows: lock one byte past the PID text

    os.lseek(fd, 1 << 20, os.SEEK_SET)
    try:
        msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
    except OSError:
        return False
    return True


@contextlib.contextmanager
def project_lock(paths: Paths) -> Iterator[None]:
    """Hold the project root's lock (``data/.eqm.lock``, the holder's PID inside) while a command
    writes; a second writing command on the same root stops at once. The operating system releases
    the lock when the process ends, however it ends."""
    path = paths.lock_file
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        if not _try_lock(fd):
            os.lseek(fd, 0, os.SEEK_SET)
            holder = os.read(fd, 32).decode("ascii", "replace").strip()
            pid = f"（PID {holder}）" if holder.isdigit() else ""
            raise EqmError(
                f"另一个 eqm 进程{pid}正在此项目目录运行：{paths.root}。两个进程同时写同一批输出会"
                "互相覆盖，本次没有运行。",
                hint="请等它结束后再运行。锁在那个进程结束时自动释放，不需要删除任何文件。",
            )
        os.ftruncate(fd, 0)
        os.lseek(fd, 0, os.SEEK_SET)
        os.write(fd, f"{os.getpid()}\n".encode("ascii"))
        _HELD_LOCKS.add(fd)
        yield
    finally:
        _HELD_LOCKS.discard(fd)
        os.close(fd)


# Lock descriptors this process holds. A forked child (the report's worker processes) inherits
# them, and a flock lasts while any descriptor of it is open: were the parent killed (OOM, kill -9),
# orphaned workers would keep the project locked. Children therefore close them at once, and ask
# Linux to end them when their parent ends (PR_SET_PDEATHSIG), so no orphan outlives a killed run.
_HELD_LOCKS: set[int] = set()
_PR_SET_PDEATHSIG = 1
_forking_parent: list[int] = []  # pid of the process about to fork


def _before_fork() -> None:
    _forking_parent[:] = [os.getpid()]


def _after_fork_in_child() -> None:
    if not _HELD_LOCKS:
        return
    for fd in list(_HELD_LOCKS):
        with contextlib.suppress(OSError):
            os.close(fd)
    _HELD_LOCKS.clear()
    _end_with_parent(_forking_parent[0] if _forking_parent else None)


def _end_with_parent(parent: int | None) -> None:
    """Linux only, best effort: SIGKILL this process when the thread that forked it ends."""
    import ctypes
    import signal

    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
        if parent is not None and os.getppid() != parent:  # it died before prctl took effect
            os._exit(1)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(before=_before_fork, after_in_child=_after_fork_in_child)


def _leftovers(parent: Path, names: set[str] | None) -> Iterator[tuple[Path, re.Match]]:
    try:
        entries = sorted(parent.iterdir())
    except FileNotFoundError:
        return
    for entry in entries:
        m = TMP_NAME.match(entry.name) or OLD_NAME.match(entry.name)
        if m and (names is None or m["name"] in names):
            yield entry, m


def recover(paths: Paths) -> None:
    """Undo what killed runs left (call holding :func:`project_lock`, before writing).

    Temporary files and folders ``.<name>.XXXXXXXX.tmp`` are removed; a folder ``.<name>.old``
    (the previous version of a folder being replaced whole) is put back when ``<name>`` is missing
    (the run was killed between the two renames of the swap) and removed otherwise. Looks in
    ``data/processed/`` (all of it is the pipeline's), and beside ``reports/`` and ``data/raw/``
    for those two names only.
    """
    spots: list[tuple[Path, set[str] | None]] = [
        (paths.reports.parent, {paths.reports.name}),
        (paths.raw.parent, {paths.raw.name}),
    ]
    for dirpath, dirnames, _files in os.walk(paths.processed):
        dirnames[:] = [d for d in dirnames if not (TMP_NAME.match(d) or OLD_NAME.match(d))]
        spots.append((Path(dirpath), None))
    for parent, names in spots:
        for entry, m in _leftovers(parent, names):
            if m.re is TMP_NAME:
                if entry.is_dir() and not entry.is_symlink():
                    shutil.rmtree(entry)
                else:
                    entry.unlink()
                log.warning("已删除上次被中断的运行留下的临时文件：%s", entry)
                continue
            target = entry.with_name(m["name"])
            if not entry.is_dir() or entry.is_symlink():
                continue
            if target.exists():
                shutil.rmtree(entry)
                log.warning("已删除上次运行替换前的旧文件夹：%s", entry)
            else:
                os.replace(entry, target)
                log.warning(
                    "上次运行在替换 %s 时被中断：已恢复替换前的内容（其运行记录已失效，请重新运行）。",
                    target,
                )
