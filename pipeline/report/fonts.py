"""The one Chinese font of every chart and PDF: Noto Sans CJK SC, shipped in the ``mplfonts`` package.

Reports must render on a machine with no CJK system font, so the font file is taken from the
installed ``mplfonts`` package (SIL Open Font License) and

* registered with matplotlib through ``font_manager.fontManager.addfont`` (``mplfonts init`` is
  never run: it rewrites matplotlib's own files; mplfonts' SimHei is not freely licensed and never
  used);
* the only font Typst may use for the PDFs (:mod:`pipeline.report.pdf`), which embed the subset of
  it they use. The HTML names the family only, so it stays free of paths and URLs and a browser
  uses its own Chinese fonts.
"""

from __future__ import annotations

import functools
import importlib.resources
import logging
from pathlib import Path

from pipeline.errors import EqmError

log = logging.getLogger(__name__)

FAMILY = "Noto Sans CJK SC"  # the family name inside the font file (matplotlib, Typst templates)


def font_file(name: str) -> Path:
    """Path of the font file ``name`` inside the installed mplfonts package."""
    try:
        base = importlib.resources.files("mplfonts") / "fonts"
    except ModuleNotFoundError:
        base = None
    path = Path(str(base / name)) if base is not None else None
    if path is None or not path.is_file():
        raise EqmError(
            f"找不到报告所需的中文字体文件 {name}（应随 mplfonts 软件包安装）。",
            hint="请运行 make install 重新安装依赖；或检查 params.yaml 中 report.font_file 的拼写。",
        )
    return path


@functools.cache
def use_in_matplotlib(name: str) -> str:
    """Register the font with matplotlib (once per process) and make it the default family.

    Returns the family name. The rcParams changes are confined to the chart module's
    ``rc_context``; registering the file is harmless to other users of matplotlib.
    """
    from matplotlib import font_manager

    path = font_file(name)
    font_manager.fontManager.addfont(str(path))
    family = font_manager.FontProperties(fname=str(path)).get_name()
    log.debug("matplotlib 字体：%s（%s）", family, path)
    return family
