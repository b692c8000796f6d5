"""Readers and writers shared by the stages.

Outputs are all-or-nothing per stage: a stage opens an :class:`Outputs` transaction, writes every
file into it (each goes to a temporary file beside its target, a folder to a temporary folder), and
only when the stage body finishes without error are they renamed into place. A failed run therefore
leaves the previous outputs untouched. The renames themselves happen one by one: a run killed among
them leaves old and new files side by side, which is why the stage's stamp is removed before the
first rename and written after the last (:mod:`pipeline.generations`), and a later stage refuses
outputs without a valid stamp. A read-only target is refused before anything is written. Parquet
and JSON are written byte-stably (sorted keys, no timestamps, no pandas index) so reruns on the same
input give identical files, as DVC expects.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from pipeline import generations
from pipeline.errors import EqmError

log = logging.getLogger(__name__)


def _tmp_beside(target: Path, suffix: str = "") -> Path:
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(
        prefix=f".{target.name}.", suffix=suffix + ".tmp", dir=target.parent
    )
    os.close(fd)
    return Path(name)


def table_to_bytes_stable(df: pd.DataFrame) -> pa.Table:
    table = pa.Table.from_pandas(df, preserve_index=False)
    # Drop pandas' metadata blob (it embeds library versions) so reruns are byte-identical.
    return table.replace_schema_metadata({})


def write_parquet(df: pd.DataFrame, path: Path) -> None:
    """Byte-stable parquet (zstd) at ``path``; for files inside an :meth:`Outputs.directory`."""
    pq.write_table(table_to_bytes_stable(df), path, compression="zstd")


class Outputs:
    """All-or-nothing set of output files for one stage run. Use :func:`outputs`."""

    def __init__(self) -> None:
        self._pending: list[tuple[Path, Path]] = []  # (tmp, target)
        self._dirs: list[tuple[Path, Path]] = []  # (tmp dir, target dir) replaced whole

    def path(self, target: Path) -> Path:
        """A temporary path to write ``target`` to; renamed into place on commit."""
        generations.refuse_read_only(Path(target))
        tmp = _tmp_beside(Path(target), Path(target).suffix)
        self._pending.append((tmp, Path(target)))
        return tmp

    def directory(self, target: Path) -> Path:
        """A fresh temporary directory that replaces ``target`` as a whole on commit."""
        target = Path(target)
        generations.refuse_read_only(target)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
        self._dirs.append((tmp, target))
        return tmp

    def parquet(self, df: pd.DataFrame, target: Path) -> None:
        with _naming(target):
            pq.write_table(table_to_bytes_stable(df), self.path(target), compression="zstd")

    def json(self, obj: Any, target: Path) -> None:
        with _naming(target):
            self.path(target).write_text(dump_json(obj) + "\n", encoding="utf-8")

    def text(self, text: str, target: Path) -> None:
        with _naming(target):
            self.path(target).write_text(text, encoding="utf-8")

    def _commit(self) -> None:
        """Rename every file, then swap every folder (``target`` -> ``.target.old``, temporary ->
        ``target``, old removed). A kill between the two renames of a swap leaves ``.target.old``,
        which :func:`pipeline.generations.recover` puts back. If a rename fails, the files not yet
        renamed are removed and a half-done swap is undone before the error propagates."""
        generations.commit_starting()  # the stage's stamp goes before the first rename
        try:
            while self._pending:
                tmp, target = self._pending[0]
                os.replace(tmp, target)
                self._pending.pop(0)
            while self._dirs:
                tmp, target = self._dirs[0]
                old = None
                if target.exists():
                    old = target.with_name(f".{target.name}.old")
                    if old.exists():
                        shutil.rmtree(old)
                    os.replace(target, old)
                try:
                    os.replace(tmp, target)
                except BaseException:
                    if old is not None and not target.exists():
                        os.replace(old, target)
                    raise
                self._dirs.pop(0)
                if old is not None:
                    shutil.rmtree(old, ignore_errors=True)
        except BaseException:
            self._rollback()
            raise

    def _rollback(self) -> None:
        for tmp, _ in self._pending:
            tmp.unlink(missing_ok=True)
        for tmp, _ in self._dirs:
            shutil.rmtree(tmp, ignore_errors=True)
        self._pending.clear()
        self._dirs.clear()


@contextlib.contextmanager
def _naming(target: Path) -> Iterator[None]:
    """Name the target in an OS error that names no file (pyarrow's does not), so a full disk is
    reported with the path the user knows."""
    try:
        yield
    except OSError as exc:
        if exc.filename is None and exc.errno is not None:
            raise OSError(exc.errno, exc.strerror or str(exc), str(target)) from exc
        raise


@contextlib.contextmanager
def outputs() -> Iterator[Outputs]:
    """``with outputs() as out: out.parquet(df, path) ...`` — commit on success, roll back on error."""
    out = Outputs()
    try:
        yield out
    except BaseException:
        out._rollback()
        raise
    out._commit()


def dump_json(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False, sort_keys=True, indent=2, default=_json_default)


def _json_default(o: Any) -> Any:
    if hasattr(o, "item"):  # numpy scalars
        return o.item()
    if isinstance(o, Path):
        return o.as_posix()
    if isinstance(o, pd.Timestamp):
        return o.isoformat()
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def read_parquet(path: Path, what: str | None = None) -> pd.DataFrame:
    """Read a processed table; a missing file is a clear error naming the stage to run first."""
    path = Path(path)
    if not path.is_file():
        raise EqmError(
            f"找不到{what or '上一环节的输出'}：{path}",
            hint="请先运行前面的环节（eqm run 会按顺序运行全部环节）。",
        )
    return pd.read_parquet(path)


def read_json(path: Path, what: str | None = None) -> Any:
    path = Path(path)
    if not path.is_file():
        raise EqmError(
            f"找不到{what or '上一环节的输出'}：{path}",
            hint="请先运行前面的环节（eqm run 会按顺序运行全部环节）。",
        )
    return json.loads(path.read_text(encoding="utf-8"))
