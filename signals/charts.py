"""An old-vs-new scatter of a shadow validation's scores as inline SVG, in the manner of
``orders/charts.py`` (server-rendered, no JavaScript, nothing fetched). Pure: numbers in,
markup out.

Each axis is scaled to its own model's range: a candidate that only rescales the serving
model's outputs lies on the diagonal, one that negates them on the other diagonal.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

from django.utils.html import escape

WIDTH, HEIGHT = 420, 420
LEFT, RIGHT, TOP, BOTTOM = 64, 16, 16, 48
MAX_POINTS = 2000


def _scale(
    values: Sequence[float], low_px: float, high_px: float
) -> tuple[Callable[[float], float], float, float]:
    finite = [v for v in values if math.isfinite(v)]
    low, high = (min(finite), max(finite)) if finite else (0.0, 1.0)
    span = (high - low) or 1.0

    def to_px(value: float) -> float:
        return low_px + (value - low) / span * (high_px - low_px)

    return to_px, low, high


def scatter_svg(
    *, old: Sequence[float], new: Sequence[float], labels: Sequence[str], title: str
) -> str:
    """``old`` on x, ``new`` on y, one dot per sample row (``labels`` as tooltips)."""
    points = [
        (o, n, label)
        for o, n, label in zip(old, new, labels, strict=True)
        if math.isfinite(o) and math.isfinite(n)
    ][:MAX_POINTS]
    x, x_low, x_high = _scale([p[0] for p in points], LEFT, WIDTH - RIGHT)
    y, y_low, y_high = _scale([p[1] for p in points], HEIGHT - BOTTOM, TOP)
    axis_y = HEIGHT - BOTTOM
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="shadow-scatter" width="{WIDTH}" '
        f'height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-label="{escape(title)}">',
        "<style>.dot{fill:#417690;fill-opacity:.6}.axis{stroke:#999}.diag{stroke:#ccc;"
        "stroke-dasharray:4 3}text{font:11px sans-serif;fill:#666}</style>",
        f'<line class="axis" x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{axis_y}"/>',
        f'<line class="axis" x1="{LEFT}" y1="{axis_y}" x2="{WIDTH - RIGHT}" y2="{axis_y}"/>',
        f'<line class="diag" x1="{LEFT}" y1="{axis_y}" x2="{WIDTH - RIGHT}" y2="{TOP}"/>',
        f'<text x="{LEFT - 4}" y="{TOP + 10}" text-anchor="end">{y_high:.3g}</text>',
        f'<text x="{LEFT - 4}" y="{axis_y}" text-anchor="end">{y_low:.3g}</text>',
        f'<text x="{LEFT}" y="{axis_y + 14}">{x_low:.3g}</text>',
        f'<text x="{WIDTH - RIGHT}" y="{axis_y + 14}" text-anchor="end">{x_high:.3g}</text>',
        f'<text x="{(LEFT + WIDTH - RIGHT) / 2:.0f}" y="{HEIGHT - 12}" text-anchor="middle">'
        f"serving model (old)</text>",
        f'<text x="14" y="{(TOP + axis_y) / 2:.0f}" text-anchor="middle" '
        f'transform="rotate(-90 14 {(TOP + axis_y) / 2:.0f})">candidate (new)</text>',
    ]
    for o, n, label in points:
        parts.append(
            f'<circle class="dot" cx="{x(o):.1f}" cy="{y(n):.1f}" r="3">'
            f"<title>{escape(label)}: old {o:.4g}, new {n:.4g}</title></circle>"
        )
    parts.append("</svg>")
    return "".join(parts)
