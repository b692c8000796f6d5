"""The one Chinese font of every chart and PDF: Noto Sans CJK SC, shipped in the ``mplfonts`` package.

Reports must render on a machine with no CJK system font, so the font file is taken from the
installed ``mplfonts`` package (SIL Open Font License) and

* registered with matplotlib through ``font_manager.fontManager.addfont`` (``mplfonts init`` is
  never run: it rewrites matplotlib's own files; mplfonts' SimHei is not freely licensed and never
  used);
* embedded in every PDF through an ``@font-face`` rule that points at the local file. That rule lives
  only in the stylesheet handed to WeasyPrint, never in the HTML, so the HTML stays free of paths
  and URLs and a browser uses its own Chinese fonts.
"""

from __future__ import annotations

import functools
import importlib.resources
import logging
from pathlib import Path

from pipeline.errors import EqmError

log = logging.getLogger(__name__)

FAMILY = "Noto Sans CJK SC"  # the family name inside the font file (what matplotlib registers)
PDF_FAMILY = "EqmNotoSansCJK"  # the @font-face alias the PDF stylesheet uses


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


def pdf_font_css(path: Path) -> str:
    """``@font-face`` rule for WeasyPrint pointing at a local font file (PDF stylesheet only)."""
    uri = Path(path).resolve().as_uri()
    return f'@font-face {{ font-family: "{PDF_FAMILY}"; src: url("{uri}"); }}\n'


def fast_subsetting_available() -> bool:
    """Whether WeasyPrint can subset fonts with HarfBuzz (Debian's ``libharfbuzz-subset0``).

    Mirrors WeasyPrint 70's own test in ``weasyprint.pdf.fonts``. Without it WeasyPrint falls back
    to fontTools, which re-reads the 16 MB CJK font for every PDF (≈10 s each).
    """
    try:
        from weasyprint.text.ffi import harfbuzz, harfbuzz_subset
    except ImportError:  # pragma: no cover - depends on the system libraries
        return False
    return bool(harfbuzz_subset) and bool(harfbuzz.hb_version_atleast(4, 1, 0))


def subset_for(src: Path, texts: list[str], dest: Path) -> Path:
    """Write to ``dest`` a copy of the font ``src`` holding only the characters of ``texts``.

    Used once per run when HarfBuzz subsetting is unavailable: every PDF then embeds from this small
    font (a few hundred kB), so fontTools' per-PDF subsetting becomes cheap. Printable ASCII and the
    page-footer characters are always kept.
    """
    from fontTools import subset

    chars = (
        set().union(*(set(t) for t in texts)) | {chr(c) for c in range(32, 127)} | set("第页共／—…")
    )
    opts = subset.Options()
    opts.layout_features = ["*"]
    opts.name_IDs = ["*"]
    opts.notdef_outline = True
    opts.hinting = False
    font = subset.load_font(str(src), opts, lazy=True)
    sub = subset.Subsetter(opts)
    sub.populate(unicodes=sorted(ord(c) for c in chars))
    sub.subset(font)
    subset.save_font(font, str(dest), opts)
    return dest
