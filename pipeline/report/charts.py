"""The report's few charts, drawn with matplotlib and returned as inline ``data:`` PNG URIs.

Charts receive numbers already chosen and formatted for display by :mod:`pipeline.report.views`
(suppressed cells arrive as ``None`` and are simply not drawn); nothing here computes a statistic.
Printed in grey they stay readable: series differ in lightness *and* marker shape, stacked level
bars also carry hatches. PNGs are written without a timestamp or software tag so reruns are
byte-identical.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from matplotlib import image as mpl_image
from matplotlib import rc_context
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.font_manager import FontProperties
from matplotlib.patches import Patch

Point = tuple[float, float | None, float | None]  # estimate, ci_low, ci_high


@dataclass(frozen=True)
class Series:
    key: str
    label: str
    color: str
    marker: str = "o"
    filled: bool = True
    hatch: str = ""


@dataclass(frozen=True)
class ChartStyle:
    family: str
    dpi: int
    width_in: float
    ink: str = "#222222"  # axes, reference lines, hatch edges


def _rc(style: ChartStyle) -> dict:
    return {
        "font.family": [style.family, "DejaVu Sans"],
        "font.size": 8,
        "axes.unicode_minus": False,
        "axes.edgecolor": "#777777",
        "axes.linewidth": 0.6,
        "xtick.color": style.ink,
        "ytick.color": style.ink,
        "hatch.linewidth": 0.6,
        "hatch.color": style.ink,
    }


def _to_uri(fig: Figure, dpi: int) -> str:
    """The figure as a PNG ``data:`` URI, drawn once.

    ``fig.savefig`` draws a constrained-layout figure twice (a layout pass, then the raster pass);
    one ``canvas.draw()`` lays out and rasterises in a single pass, and the PNG is encoded exactly
    as savefig's Agg ``print_png`` does (same bytes on the demo round's 52 charts, ~20 % faster).
    """
    canvas = FigureCanvasAgg(fig)
    fig.dpi = dpi
    canvas.draw()
    buf = io.BytesIO()
    mpl_image.imsave(
        buf, canvas.buffer_rgba(), format="png", origin="upper", dpi=dpi,
        metadata={"Software": None},
    )  # fmt: skip
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _label_margins(fig: Figure, ylabels: Sequence[str]) -> None:
    """Margins of a one-axes chart with tick labels on the left, an x label below and a one-row
    legend above, from the widest label (what constrained layout would find, without its layout
    pass: constrained layout draws the figure to measure it, about half of a chart's time)."""
    renderer = FigureCanvasAgg(fig).get_renderer()
    prop = FontProperties(size=8)  # tick labels (rc font.size), family from the rc context
    widest = max(
        (renderer.get_text_width_height_descent(s, prop, ismath=False)[0] for s in ylabels),
        default=0.0,
    )
    w_in, h_in = fig.get_size_inches()
    left = widest / fig.dpi + 0.16  # tick (3.5 pt) + pad (3.5 pt) + edge
    bottom, top, right = 0.44, 0.30, 0.14  # x tick labels + x label; legend row; last x tick
    fig.subplots_adjust(
        left=left / w_in, right=1 - right / w_in, bottom=bottom / h_in, top=1 - top / h_in
    )


def dot_chart(
    rows: Sequence[tuple[str, Mapping[str, Point | None]]],
    series: Sequence[Series],
    style: ChartStyle,
    *,
    xlabel: str,
    ref: float | None = None,
    ref_label: str | None = None,
    xlim: tuple[float, float] | None = None,
) -> str | None:
    """Horizontal dot chart: one line per row label, one marker (with CI whiskers when given) per
    series; ``xlim`` fixes the axis (e.g. 0–100 for percentages)."""
    if not rows or not any(p for _, pts in rows for p in pts.values()):
        return None
    with rc_context(_rc(style)):
        # compact enough that a chart of 25 rows still shares its page with text (a page holding
        # a single figure reads badly); the cap keeps a long chart within two thirds of A4
        per_row = {1: 0.21, 2: 0.25}.get(len(series), 0.29)
        height = 0.8 + per_row * len(rows)
        fig = Figure(figsize=(style.width_in, min(height, 6.4)))
        _label_margins(fig, [label for label, _ in rows])
        ax = fig.add_subplot()
        n = len(series)
        step = 0.7 / max(n, 1)
        for i, s in enumerate(series):
            offset = (i - (n - 1) / 2) * step
            ys, xs, lo_err, hi_err = [], [], [], []
            for r, (_, pts) in enumerate(rows):
                p = pts.get(s.key)
                if p is None or p[0] is None:
                    continue
                est, lo, hi = p
                ys.append(len(rows) - 1 - r + offset)
                xs.append(est)
                lo_err.append(est - lo if lo is not None else 0.0)
                hi_err.append(hi - est if hi is not None else 0.0)
            if not xs:
                continue
            ax.errorbar(
                xs, ys, xerr=[lo_err, hi_err], fmt=s.marker, color=s.color, ecolor=s.color,
                elinewidth=1.1, capsize=2, markersize=5,
                markerfacecolor=s.color if s.filled else "white", markeredgecolor=s.color,
                label=s.label,
            )  # fmt: skip
        if ref is not None:
            ax.axvline(ref, color=style.ink, linestyle="--", linewidth=0.9, label=ref_label)
        ax.set_yticks(range(len(rows)), [label for label, _ in reversed(rows)])
        ax.set_ylim(-0.6, len(rows) - 0.4)
        if xlim is not None:
            ax.set_xlim(*xlim)
        ax.set_xlabel(xlabel)
        ax.grid(axis="x", color="#dddddd", linewidth=0.5)
        ax.set_axisbelow(True)
        ax.legend(
            loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=len(series) + 1, frameon=False
        )
        return _to_uri(fig, style.dpi)


def stacked_levels(
    rows: Sequence[tuple[str, Sequence[float] | None]],
    levels: Sequence[Series],
    style: ChartStyle,
    *,
    xlabel: str,
) -> str | None:
    """Horizontal 100 % stacked bars of the level shares Ⅰ–Ⅳ (one bar per row label)."""
    rows = [(label, shares) for label, shares in rows if shares is not None]
    if not rows:
        return None
    with rc_context(_rc(style)):
        fig = Figure(figsize=(style.width_in, 0.9 + 0.26 * len(rows)))
        _label_margins(fig, [label for label, _ in rows])
        ax = fig.add_subplot()
        ys = list(range(len(rows) - 1, -1, -1))
        left = [0.0] * len(rows)
        for j, s in enumerate(levels):
            widths = [shares[j] for _, shares in rows]
            ax.barh(ys, widths, left=left, color=s.color, hatch=s.hatch, edgecolor=style.ink,
                    linewidth=0.4, height=0.7, label=s.label)  # fmt: skip
            left = [a + b for a, b in zip(left, widths, strict=True)]
        ax.set_yticks(ys, [label for label, _ in rows])
        ax.set_xlim(0, 100)
        ax.set_xlabel(xlabel)
        ax.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=len(levels), frameon=False)
        return _to_uri(fig, style.dpi)


def bar_panels(
    panels: Sequence[tuple[str, Sequence[str], Mapping[str, Sequence[float | None]], float | None]],
    series: Sequence[Series],
    style: ChartStyle,
    *,
    ylabel: str,
    ref_label: str | None = None,
) -> str | None:
    """Side-by-side panels of grouped vertical bars; each panel may carry a dashed reference line.

    ``panels``: (title, category labels, {series key: values}, reference value or None).
    """
    panels = [p for p in panels if p[1]]
    if not panels:
        return None
    with rc_context(_rc(style)):
        fig = Figure(figsize=(style.width_in, 2.6))
        # fixed margins (inches) instead of a constrained-layout pass: y tick labels and the
        # rotated y label on the left, one row of category labels below, the panel titles and the
        # legend row above (the panels share y, so only the first carries tick labels)
        w_in, h_in = fig.get_size_inches()
        fig.subplots_adjust(
            left=0.62 / w_in, right=1 - 0.08 / w_in, bottom=0.32 / h_in, top=1 - 0.62 / h_in,
            wspace=0.06,
        )  # fmt: skip
        axes = fig.subplots(1, len(panels), sharey=True, squeeze=False)[0]
        n = len(series)
        width = 0.8 / max(n, 1)
        for ax, (title, cats, values, ref) in zip(axes, panels, strict=True):
            for i, s in enumerate(series):
                vals = values.get(s.key, [])
                xs = [k + (i - (n - 1) / 2) * width for k, v in enumerate(vals) if v is not None]
                hs = [v for v in vals if v is not None]
                ax.bar(xs, hs, width=width * 0.95, color=s.color, hatch=s.hatch,
                       edgecolor=style.ink, linewidth=0.4, label=s.label)  # fmt: skip
            if ref is not None:
                ax.axhline(ref, color=style.ink, linestyle="--", linewidth=0.9, label=ref_label)
            ax.set_xticks(range(len(cats)), cats)
            ax.set_title(title, fontsize=9)
            ax.grid(axis="y", color="#dddddd", linewidth=0.5)
            ax.set_axisbelow(True)
        axes[0].set_ylabel(ylabel)
        handles = [
            Patch(facecolor=s.color, hatch=s.hatch, edgecolor=style.ink, label=s.label)
            for s in series
        ]
        extra = [h for h in axes[0].get_legend_handles_labels()[0] if h.get_label() == ref_label]
        fig.legend(
            handles=handles + extra[:1], loc="upper center", bbox_to_anchor=(0.5, 1.0),
            ncol=n + 1, frameon=False,
        )  # fmt: skip
        return _to_uri(fig, style.dpi)
