"""Charts drawn on the server as SVG (no script, no CDN): a line per variant over days.

Every text in the SVG is escaped here (format_html); the numbers are formatted floats."""

import datetime
from collections.abc import Callable, Sequence

from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe

WIDTH, HEIGHT = 560, 180
LEFT, RIGHT, TOP, BOTTOM = 56, 12, 24, 28
# Base in the admin's blue, candidate in orange: told apart without colour too (dashes).
STYLES = {"base": ("#417690", ""), "candidate": ("#d9822b", "6 3")}


def line_chart(
    *,
    title: str,
    series: dict[str, Sequence[tuple[datetime.date, float | None]]],
    value_label: Callable[[float], str],
    chart_id: str,
) -> SafeString:
    """An SVG line chart: one line per variant, days on x, values on y (None: a gap)."""
    days = sorted({day for points in series.values() for day, _ in points})
    values = [v for points in series.values() for _, v in points if v is not None]
    top = max(values, default=0) or 1
    first, last = (days[0], days[-1]) if days else (None, None)
    span = max((last - first).days, 1) if days else 1
    plot_width, plot_height = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def x(day) -> float:
        return LEFT + plot_width * ((day - first).days / span if span else 0)

    def y(value) -> float:
        return TOP + plot_height * (1 - value / top)

    lines = []
    for variant, points in series.items():
        colour, dashes = STYLES.get(variant, ("#666", ""))
        coordinates = " ".join(f"{x(day):.1f},{y(v):.1f}" for day, v in points if v is not None)
        if coordinates:
            lines.append(
                format_html(
                    '<polyline class="series-{}" fill="none" stroke="{}" stroke-width="2" '
                    'stroke-dasharray="{}" points="{}"><title>{}</title></polyline>',
                    variant,
                    colour,
                    dashes,
                    coordinates,
                    variant,
                )
            )
    legend = format_html_join(
        "",
        '<text x="{}" y="14" fill="{}" font-size="12">— {}</text>',
        ((LEFT + 110 * index, STYLES.get(v, ("#666",))[0], v) for index, v in enumerate(series)),
    )
    axes = format_html(
        '<line x1="{l}" y1="{t}" x2="{l}" y2="{b}" stroke="#999"/>'
        '<line x1="{l}" y1="{b}" x2="{r}" y2="{b}" stroke="#999"/>'
        '<text x="{tx}" y="{ty}" font-size="11" text-anchor="end">{top}</text>'
        '<text x="{tx}" y="{b}" font-size="11" text-anchor="end">0</text>'
        '<text x="{l}" y="{dy}" font-size="11">{first}</text>'
        '<text x="{r}" y="{dy}" font-size="11" text-anchor="end">{last}</text>'
        '<text x="{r}" y="14" font-size="12" font-weight="bold" text-anchor="end">{title}</text>',
        l=LEFT,
        r=WIDTH - RIGHT,
        t=TOP,
        b=HEIGHT - BOTTOM,
        tx=LEFT - 4,
        ty=TOP + 8,
        top=value_label(top),
        dy=HEIGHT - 8,
        first=first.isoformat() if first else "",
        last=last.isoformat() if last else "",
        title=title,
    )
    return format_html(
        '<svg id="{}" class="outcome-chart" role="img" aria-label="{}" width="{}" height="{}" '
        'viewBox="0 0 {} {}" xmlns="http://www.w3.org/2000/svg"><title>{}</title>{}{}{}</svg>',
        chart_id,
        title,
        WIDTH,
        HEIGHT,
        WIDTH,
        HEIGHT,
        title,
        axes,
        legend,
        mark_safe("".join(lines)),  # noqa: S308  (each made by format_html)
    )
