"""Server-rendered SVG charts for the admin (no JavaScript, nothing fetched from the internet).

Pure: takes plain values, returns markup; ``now`` is a parameter.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from django.utils.html import escape

Point = tuple[datetime, int]  # (time, cumulative shares)

WIDTH, HEIGHT = 640, 240
LEFT, RIGHT, TOP, BOTTOM = 56, 16, 16, 40


def cumulative(events: Sequence[Point]) -> list[Point]:
    """(time, shares) events -> (time, running total), in time order."""
    total, out = 0, []
    for at, qty in sorted(events, key=lambda e: e[0]):
        total += qty
        out.append((at, total))
    return out


def _steps(points: Sequence[Point], start: datetime, end: datetime) -> list[Point]:
    """A staircase: the total holds until the next event, then jumps."""
    out: list[Point] = [(start, 0)]
    for at, total in points:
        out.append((at, out[-1][1]))
        out.append((at, total))
    out.append((end, out[-1][1]))
    return out


def progress_svg(
    *, planned: Sequence[Point], filled: Sequence[Point], total: int, now: datetime
) -> str:
    """Planned vs filled cumulative quantity of a TWAP plan over time, as inline SVG.

    ``planned`` and ``filled`` are (time, shares) events; the x axis runs from the first to the
    last of them and ``now`` (a dashed line while the plan is still running).
    """
    times = [t for t, _ in planned] + [t for t, _ in filled] + [now]
    start, end = min(times), max(times)
    span = max((end - start).total_seconds(), 1.0)
    top = max(total, 1)

    def x(at: datetime) -> float:
        return LEFT + (at - start).total_seconds() / span * (WIDTH - LEFT - RIGHT)

    def y(qty: int) -> float:
        return HEIGHT - BOTTOM - qty / top * (HEIGHT - TOP - BOTTOM)

    def line(points: Sequence[Point], css: str, label: str) -> str:
        coords = " ".join(f"{x(t):.1f},{y(q):.1f}" for t, q in _steps(points, start, end))
        return (
            f'<polyline class="{css}" points="{coords}" fill="none">'
            f"<title>{escape(label)}</title></polyline>"
        )

    plan_line = cumulative(planned)
    fill_line = cumulative(filled)
    filled_total = fill_line[-1][1] if fill_line else 0
    axis_y, axis_x = HEIGHT - BOTTOM, LEFT
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="twap-chart" width="{WIDTH}" '
        f'height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-label="Planned vs filled cumulative quantity">',
        "<style>.planned{stroke:#79aec8;stroke-width:2;stroke-dasharray:4 3}"
        ".filled{stroke:#417690;stroke-width:2.5}.axis{stroke:#999}.now{stroke:#ba2121;"
        "stroke-dasharray:2 3}text{font:11px sans-serif;fill:#666}</style>",
        f'<line class="axis" x1="{axis_x}" y1="{TOP}" x2="{axis_x}" y2="{axis_y}"/>',
        f'<line class="axis" x1="{axis_x}" y1="{axis_y}" x2="{WIDTH - RIGHT}" y2="{axis_y}"/>',
        f'<text x="{axis_x - 6}" y="{y(top) + 4:.1f}" text-anchor="end">{top}</text>',
        f'<text x="{axis_x - 6}" y="{axis_y + 4}" text-anchor="end">0</text>',
        f'<text x="{axis_x}" y="{HEIGHT - 22}">{start:%H:%M:%S}</text>',
        f'<text x="{WIDTH - RIGHT}" y="{HEIGHT - 22}" text-anchor="end">{end:%H:%M:%S} UTC</text>',
        line(plan_line, "planned", f"planned: {total} shares"),
        line(fill_line, "filled", f"filled: {filled_total} shares"),
    ]
    if start < now < end or now == end:
        parts.append(
            f'<line class="now" x1="{x(now):.1f}" y1="{TOP}" x2="{x(now):.1f}" y2="{axis_y}">'
            "<title>now</title></line>"
        )
    parts.append(
        f'<text x="{LEFT + 8}" y="{HEIGHT - 6}">- - planned {total}   &#8212; filled '
        f"{filled_total}</text>"
    )
    parts.append("</svg>")
    return "".join(parts)
