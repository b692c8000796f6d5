"""The ``eqm`` command line. It holds no logic: it builds a RunContext and calls stage ``run()``s.

``eqm demo-data`` writes the synthetic demo round into ``data/raw/``; ``eqm run`` runs every stage
in order; ``eqm ingest|validate|indicators|evidence|report`` runs one; ``eqm init DIR`` makes a new
round's folder, ``eqm templates`` its fill-in workbooks and ``eqm check FILE…`` checks a received
file without running the round (:mod:`pipeline.collect`; exit 1 when a file would not pass). Every command
takes ``--root DIR`` (default: the current directory; ``init`` takes the folder itself) and
``--quiet``. Exit codes: 0 success, 1 a problem the user can fix (the message says what and where;
also a full disk, a permission error, or another eqm command running on the same root), 2 an
internal error (traceback in the log file). ``demo-data``, ``run`` and the stage commands hold the
project root's lock and first undo what a killed run left (:mod:`pipeline.generations`).
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
import sys
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import typer

from pipeline import generations
from pipeline.config import make_context
from pipeline.errors import EqmError

# NumPy (madvise) and Arrow's allocator (mimalloc) ask Linux for transparent huge pages for large
# arrays. Where the kernel then compacts memory synchronously on a page fault (THP defrag
# "madvise", the kernel's default), a stage spends seconds in the kernel: `eqm indicators` on
# 1,000,000 students used 1.6-3.0 s of system time with them and 0.6-0.8 s without, the same user
# time (2 cores). Both libraries read these variables when first loaded, after this line (the CLI
# itself loads neither); a value set in the environment wins.
os.environ.setdefault("NUMPY_MADVISE_HUGEPAGE", "0")
os.environ.setdefault("MIMALLOC_ALLOW_THP", "0")

STAGES = ("ingest", "validate", "indicators", "evidence", "report")
STAGE_LABELS = {
    "demo": "生成演示数据",
    "ingest": "数据导入",
    "validate": "数据质量校验",
    "indicators": "指标计算",
    "evidence": "问题清单",
    "report": "报告生成",
}

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="eqm：南宁市义务教育质量监测数据处理流程（导入 → 校验 → 指标 → 问题清单 → 报告）。",
)

RootOpt = Annotated[
    Path,
    typer.Option("--root", help="项目根目录（含 params.yaml、data/、reports/），默认当前目录。"),
]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="只输出警告和错误（供脚本调用）。")]


def _setup_logging(quiet: bool) -> None:
    from rich.console import Console
    from rich.logging import RichHandler

    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    # Log to stderr; when redirected to a file, do not wrap long Chinese lines at 80 columns.
    console = Console(stderr=True, width=None if sys.stderr.isatty() else 160)
    handler = RichHandler(
        console=console, show_path=False, show_time=False, markup=False, rich_tracebacks=False
    )
    handler.setFormatter(logging.Formatter("%(message)s"))
    root.addHandler(handler)
    root.setLevel(logging.WARNING if quiet else logging.INFO)
    for noisy in ("great_expectations", "matplotlib", "PIL", "numexpr"):
        logging.getLogger(noisy).setLevel(logging.ERROR)


@contextlib.contextmanager
def _rich_progress(description: str, total: int):
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        transient=True,
    ) as progress:  # fmt: skip
        task = progress.add_task(description, total=total)
        yield lambda n=1: progress.advance(task, n)


def _run_stages(names: tuple[str, ...], root: Path, quiet: bool) -> None:
    _setup_logging(quiet)
    log = logging.getLogger("eqm")
    root = Path(root)
    with _exit_codes(root):
        ctx = make_context(root, quiet=quiet, progress=_rich_progress)
        # one writing command per project root; then undo what a killed run left behind
        with generations.project_lock(ctx.paths):
            generations.recover(ctx.paths)
            for name in names:
                module = importlib.import_module(f"pipeline.{name}")
                log.info("▶ %s（%s）", STAGE_LABELS[name], name)
                module.run(ctx)


@contextlib.contextmanager
def _exit_codes(root: Path) -> Iterator[None]:
    """Every command's exit rules: EqmError -> its message, exit 1; Ctrl-C -> 130; anything else
    -> one line and exit 2, the traceback in ``<root>/data/eqm.log``."""
    try:
        yield
    except EqmError as exc:
        typer.secho(f"错误：{exc}", fg=typer.colors.RED, err=True)
        raise typer.Exit(1) from None
    except KeyboardInterrupt:
        typer.secho("已中断；未完成的环节没有写出任何文件。", fg=typer.colors.YELLOW, err=True)
        raise typer.Exit(130) from None
    except Exception as exc:  # noqa: BLE001 - the last line of defence: no traceback to the user
        user = generations.user_error(exc, root.resolve())  # full disk, permissions: exit 1
        if user is not None:
            typer.secho(f"错误：{user}", fg=typer.colors.RED, err=True)
            raise typer.Exit(1) from None
        log_file = root.resolve() / "data" / "eqm.log"
        try:
            log_file.parent.mkdir(parents=True, exist_ok=True)
            with log_file.open("a", encoding="utf-8") as fh:
                fh.write(f"--- eqm {' '.join(sys.argv[1:])}\n{traceback.format_exc()}\n")
        except OSError:
            log_file = None
        typer.secho(
            f"内部错误（{type(exc).__name__}：{exc}）。未完成的环节没有写出任何文件。"
            + (f"\n详细信息已写入 {log_file}，请将该文件发给维护人员。" if log_file else ""),
            fg=typer.colors.RED,
            err=True,
        )
        raise typer.Exit(2) from None


@app.command("demo-data")
def demo_data(root: RootOpt = Path("."), quiet: QuietOpt = False) -> None:
    """生成合成演示数据（四个样本县、2020 与 2022 两轮）到 data/raw/。"""
    _run_stages(("demo",), root, quiet)


@app.command("run")
def run_all(root: RootOpt = Path("."), quiet: QuietOpt = False) -> None:
    """按顺序运行全部环节：导入、校验、指标、问题清单、报告。"""
    _run_stages(STAGES, root, quiet)


def _stage_command(name: str) -> None:
    def command(root: RootOpt = Path("."), quiet: QuietOpt = False) -> None:
        _run_stages((name,), root, quiet)

    command.__doc__ = f"只运行「{STAGE_LABELS[name]}」环节（{name}）。"
    app.command(name)(command)


for _name in STAGES:
    _stage_command(_name)


@app.command("init")
def init_command(
    directory: Annotated[
        Path, typer.Argument(help="新一轮的项目目录（不存在则新建；已有目录中不能有同名文件）。")
    ],
    year: Annotated[int | None, typer.Option("--year", help="本轮监测年份，如 2025。")] = None,
    counties: Annotated[
        str | None,
        typer.Option("--counties", help="本轮的区县代码或名称，逗号分隔，如 450107,450125。"),
    ] = None,
    quiet: QuietOpt = False,
) -> None:
    """新建一轮监测的项目目录：params.yaml（默认参数及注释）、data/raw/ 各表文件夹及说明、sources.yaml 示例、.gitignore。"""
    _setup_logging(quiet)
    with _exit_codes(Path(directory)):
        from pipeline.collect import init_round

        init_round(Path(directory), year=year, counties=counties)


@app.command("templates")
def templates_command(
    root: RootOpt = Path("."),
    out: Annotated[
        Path | None,
        typer.Option("--out", help="模板写到哪个文件夹（默认：项目目录下的 templates/）。"),
    ] = None,
    quiet: QuietOpt = False,
) -> None:
    """生成各表的 Excel 填写模板（填写说明、下拉列表、数值检查），发给区县填写。"""
    _setup_logging(quiet)
    with _exit_codes(Path(root)):
        from pipeline.collect import write_templates

        write_templates(make_context(root, quiet=quiet), out)


@app.command("check")
def check_command(
    files: Annotated[list[Path], typer.Argument(help="要检查的文件（可多个）。")],
    root: RootOpt = Path("."),
    out: Annotated[
        Path | None,
        typer.Option("--out", help="检查结果写到哪个文件夹（默认：项目目录下的 checks/）。"),
    ] = None,
    quiet: QuietOpt = False,
) -> None:
    """检查收到的文件（不运行整轮）：按导入和校验的规则找出问题，返回标注了问题单元格的工作簿和检查摘要；全部通过时退出码为 0。"""
    _setup_logging(quiet)
    with _exit_codes(Path(root)):
        from pipeline.collect.check import run as check_run

        check_run(make_context(root, quiet=quiet), files, out)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
