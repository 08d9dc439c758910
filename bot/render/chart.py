"""The score preview as a PNG bar chart, readable on a 6-inch phone screen.

Horizontal bars (group names are long Vietnamese phrases), each filled to the share of its own
group's max — a 520-point group and an 80-point group stay equally readable — with the points
written beside it; the total, index and band in the title. Drawn on a bare matplotlib Figure
(Agg); DejaVu Sans, shipped with matplotlib, has every Vietnamese letter.
"""

from __future__ import annotations

import io
import textwrap
from collections.abc import Callable
from decimal import Decimal

from flows.model import Chart

PHONE_SIZE = (7.2, 9.0)  # inches at 150 dpi: 1080 × 1350 px, a phone screen's width
BAR = "#1f6fb2"
TRACK = "#dfe6ee"


def render_chart(chart: Chart, title: str, number: Callable[[Decimal], str]) -> bytes:
    # imported here: matplotlib costs about 60 MB and 0.2 s at start, and most processes never draw
    from matplotlib.figure import Figure  # a bare Figure draws with Agg: no display, no pyplot state

    fig = Figure(figsize=PHONE_SIZE, dpi=150)
    ax = fig.add_subplot()
    labels = ["\n".join(textwrap.wrap(b.label, 26)) for b in chart.bars][::-1]
    bars = chart.bars[::-1]
    shares = [100 * float(b.score) / float(b.max) if b.max else 0.0 for b in bars]
    positions = range(len(bars))
    ax.barh(positions, [100.0] * len(bars), color=TRACK, height=0.62)  # every group's track is its own max
    ax.barh(positions, shares, color=BAR, height=0.62)
    for y, b in zip(positions, bars, strict=True):
        ax.text(101, y, f" {number(b.score)}/{number(b.max)}", va="center", fontsize=13)
    ax.set_yticks(list(positions), labels, fontsize=13)
    ax.set_xlim(0, 135)
    ax.xaxis.set_visible(False)
    for side in ("top", "right", "bottom"):
        ax.spines[side].set_visible(False)
    fig.suptitle("\n".join(textwrap.wrap(title, 40)), fontsize=15, fontweight="bold")
    fig.tight_layout(rect=(0, 0, 1, 0.95))
    out = io.BytesIO()
    fig.savefig(out, format="png")
    return out.getvalue()
