"""Readers and writers shared by the stages.

Outputs are written atomically and all-or-nothing per stage: a stage opens an :class:`Outputs`
transaction, writes every file into it (each goes to a temporary file beside its target), and only
when the stage body finishes without error are the files renamed into place. A failed run therefore
leaves the previous outputs untouched. Parquet and JSON are written byte-stably (sorted keys, no
timestamps, no pandas index) so reruns on the same input give identical files, as DVC expects.
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


class Outputs:
    """All-or-nothing set of output files for one stage run. Use :func:`outputs`."""

    def __init__(self) -> None:
        self._pending: list[tuple[Path, Path]] = []  # (tmp, target)
        self._dirs: list[tuple[Path, Path]] = []  # (tmp dir, target dir) replaced whole

    def path(self, target: Path) -> Path:
        """A temporary path to write ``target`` to; renamed into place on commit."""
        tmp = _tmp_beside(Path(target), Path(target).suffix)
        self._pending.append((tmp, Path(target)))
        return tmp

    def directory(self, target: Path) -> Path:
        """A fresh temporary directory that replaces ``target`` as a whole on commit."""
        target = Path(target)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
        self._dirs.append((tmp, target))
        return tmp

    def parquet(self, df: pd.DataFrame, target: Path) -> None:
        pq.write_table(table_to_bytes_stable(df), self.path(target), compression="zstd")

    def json(self, obj: Any, target: Path) -> None:
        self.path(target).write_text(dump_json(obj) + "\n", encoding="utf-8")

    def text(self, text: str, target: Path) -> None:
        self.path(target).write_text(text, encoding="utf-8")

    def _commit(self) -> None:
        for tmp, target in self._pending:
            os.replace(tmp, target)
        for tmp, target in self._dirs:
            old = None
            if target.exists():
                old = target.with_name(f".{target.name}.old")
                if old.exists():
                    shutil.rmtree(old)
                os.replace(target, old)
            os.replace(tmp, target)
            if old is not None:
                shutil.rmtree(old, ignore_errors=True)
        self._pending.clear()
        self._dirs.clear()

    def _rollback(self) -> None:
        for tmp, _ in self._pending:
            tmp.unlink(missing_ok=True)
        for tmp, _ in self._dirs:
            shutil.rmtree(tmp, ignore_errors=True)
        self._pending.clear()
        self._dirs.clear()


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
