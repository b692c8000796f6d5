"""The report PDFs, typeset by Typst (the ``typst`` package, typst-py) from each report's view model.

Each PDF is compiled from the same view model as its HTML (:func:`views.county_view` /
:func:`views.summary_view`) and the same chart PNGs, handed to Typst as a JSON file, so nothing is
escaped into markup. The templates are ``templates/county.typ`` and ``templates/summary.typ``
(page, headings, tables and lights shared in ``templates/macros.typ``): A4, an outline as the
table of contents, "第 n 页 / 共 N 页" in the footer, the 内部资料 mark and the synthetic-data banner
on every page. The only font is the Noto Sans CJK SC file of :mod:`pipeline.report.fonts` (no system
or Typst-bundled font), and Typst embeds the subset it uses.

Typst replaced WeasyPrint (issue 13): on the demo round the 10 PDFs took 1.7 s of CPU instead of
16.4 s, with the same text, the same embedded font and a real PDF outline.
"""

from __future__ import annotations

import base64
import json
import logging
import math
import shutil
import tempfile
from pathlib import Path
from typing import Any

from pipeline.errors import EqmError

log = logging.getLogger(__name__)

TEMPLATES = Path(__file__).parent / "templates"
TYPST_FILES = ("macros.typ", "county.typ", "summary.typ")
# params.yaml report.page_size -> Typst's paper name (B5 is ISO B5, as in CSS)
PAPER = {"A4": "a4", "A3": "a3", "A5": "a5", "B5": "iso-b5", "letter": "us-letter"}


# Typst compiles on a pool of threads, which a forked child does not inherit: a child forked after
# this process has typeset a PDF would wait for them forever. :func:`forked_children_can_typeset`
# lets the report stage render in this process instead.
_typst_loaded = False


def forked_children_can_typeset() -> bool:
    """Whether a process forked now could run Typst (this process has not yet run it)."""
    return not _typst_loaded


def _plain(x: Any) -> Any:
    """The view model as JSON values: NaN / ±inf become null (JSON has neither)."""
    if isinstance(x, float):
        return None if math.isnan(x) or math.isinf(x) else x
    if isinstance(x, dict):
        return {str(k): _plain(val) for k, val in x.items()}
    if isinstance(x, (list, tuple)):
        return [_plain(val) for val in x]
    return x


def font_folder(font_path: Path, folder: Path) -> Path:
    """Put the report's font file (alone) into ``folder``: Typst takes fonts by folder, and the
    mplfonts folder also holds fonts the reports must not use (SimHei)."""
    link = Path(folder) / Path(font_path).name
    try:
        link.symlink_to(Path(font_path).resolve())
    except OSError:  # no symlinks (Windows without the privilege): copy the file
        shutil.copyfile(font_path, link)
    return Path(folder)


class TypstWriter:
    """One Typst font set (the fonts of ``font_dir`` only: no system or Typst-bundled font) reused
    for every PDF of the process. The same inputs give the same bytes (no creation date)."""

    def __init__(self, font_dir: Path, page_size: str = "A4"):
        global _typst_loaded
        import typst

        _typst_loaded = True
        self._typst = typst
        self.paper = PAPER[page_size]
        self.fonts = typst.Fonts(
            include_system_fonts=False, include_embedded_fonts=False, font_paths=[str(font_dir)]
        )

    def write(
        self,
        kind: str,
        view: dict,
        charts: dict[str, str | None],
        common: dict,
        flags: dict,
        target: Path,
    ) -> None:
        """``kind`` is ``"county"`` or ``"summary"``; ``charts`` the ``data:`` PNG URIs of the HTML."""
        with tempfile.TemporaryDirectory(prefix="eqm-typst-") as tmp:
            work = Path(tmp)
            for name in TYPST_FILES:
                shutil.copyfile(TEMPLATES / name, work / name)
            files: dict[str, str] = {}
            for key, uri in charts.items():
                if uri:
                    (work / f"{key}.png").write_bytes(base64.b64decode(uri.split(",", 1)[1]))
                    files[key] = f"{key}.png"
            common = {k: val for k, val in common.items() if k != "css"}
            data = {"v": view, "charts": files, "common": common, "flags": flags}
            data["paper"] = self.paper
            (work / "view.json").write_text(
                json.dumps(_plain(data), ensure_ascii=False, allow_nan=False, default=str),
                encoding="utf-8",
            )
            try:
                pdf, warnings = self._typst.Compiler(
                    root=str(work), font_paths=self.fonts, ignore_system_fonts=True
                ).compile_with_warnings(
                    input=str(work / f"{kind}.typ"),
                    sys_inputs={"data": "view.json"},
                    timestamp=0,  # no creation date: the same inputs give the same bytes
                )
            except self._typst.TypstError as exc:
                raise EqmError(
                    f"PDF 报告 {Path(target).name} 排版失败：{exc.message}",
                    hint="请将此消息告知维护人员；在 params.yaml 中设 report.build_pdf: false "
                    "可先只生成 HTML 报告。",
                ) from None
        for w in warnings:  # e.g. a character the font lacks (printed as an empty box)
            log.warning("PDF 报告 %s 排版提示（Typst）：%s", Path(target).name, w.message)
        Path(target).write_bytes(pdf)
