"""Pictures as small self-contained SVG files: the value class × churn band heat map of the run
page, and the lift chart of a backtest (its PNG is flows/charts.py's)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape

import pandas as pd

CLASSES = ("high", "secondary", "potential", "low")
BANDS = ("low", "medium", "high", "critical")
CELL_W, CELL_H, LEFT, TOP = 110, 46, 110, 60


def value_churn_svg(scored: pd.DataFrame, title: str) -> str:
    """Accounts per (value class, churn band); darker red = more accounts. Pure."""
    table = pd.crosstab(scored["value_class"], scored["churn_band"]).reindex(
        index=list(CLASSES), columns=list(BANDS), fill_value=0)
    peak = max(int(table.to_numpy().max()), 1)
    width, height = LEFT + CELL_W * len(BANDS) + 20, TOP + CELL_H * len(CLASSES) + 40
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             'font-family="sans-serif" font-size="13">',
             f'<text x="10" y="22" font-size="15" font-weight="bold">{escape(title)}</text>',
             f'<text x="{LEFT}" y="{TOP - 10}">churn band →</text>']
    for j, band in enumerate(BANDS):
        parts.append(f'<text x="{LEFT + j * CELL_W + CELL_W / 2}" y="{TOP + CELL_H * 4 + 20}" '
                     f'text-anchor="middle">{band}</text>')
    for i, value_class in enumerate(CLASSES):
        y = TOP + i * CELL_H
        parts.append(f'<text x="{LEFT - 8}" y="{y + CELL_H / 2 + 4}" text-anchor="end">'
                     f'{value_class}</text>')
        for j, band in enumerate(BANDS):
            n = int(table.loc[value_class, band])
            shade = int(255 - 200 * (n / peak) ** 0.5)
            x = LEFT + j * CELL_W
            parts.append(f'<rect x="{x}" y="{y}" width="{CELL_W - 2}" height="{CELL_H - 2}" '
                         f'fill="rgb(255,{shade},{shade})" stroke="#999"/>')
            parts.append(f'<text x="{x + CELL_W / 2}" y="{y + CELL_H / 2 + 5}" '
                         f'text-anchor="middle">{n:,}</text>')
    parts.append("</svg>")
    return "\n".join(parts)


LIFT_W, LIFT_H, LIFT_LEFT, LIFT_TOP = 560, 320, 60, 50
COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b")


def lift_chart_svg(curves: Mapping[str, Sequence[Sequence[float]]], title: str) -> str:
    """Lift over random (y) in the riskiest share of accounts (x, 0..100 %), one line per
    method, and the line of a random ranking (lift 1). Pure."""
    peak = max([1.0, *(lift for points in curves.values() for _, lift in points)])
    top = float(int(peak) + 1)
    width, height = LIFT_LEFT + LIFT_W + 200, LIFT_TOP + LIFT_H + 50

    def x(share: float) -> float:
        return round(LIFT_LEFT + share * LIFT_W, 1)

    def y(lift: float) -> float:
        return round(LIFT_TOP + LIFT_H * (1 - lift / top), 1)

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             'font-family="sans-serif" font-size="12">',
             f'<text x="10" y="22" font-size="15" font-weight="bold">{escape(title)}</text>',
             f'<rect x="{LIFT_LEFT}" y="{LIFT_TOP}" width="{LIFT_W}" height="{LIFT_H}" '
             'fill="none" stroke="#999"/>']
    for tick in range(int(top) + 1):
        parts.append(f'<text x="{LIFT_LEFT - 8}" y="{y(tick) + 4}" text-anchor="end">'
                     f'{tick}</text>')
    for share in (0.0, 0.2, 0.4, 0.6, 0.8, 1.0):
        parts.append(f'<text x="{x(share)}" y="{LIFT_TOP + LIFT_H + 18}" '
                     f'text-anchor="middle">{share:.0%}</text>')
    parts += [f'<text x="{LIFT_LEFT + LIFT_W / 2}" y="{LIFT_TOP + LIFT_H + 38}" '
              'text-anchor="middle">accounts taken, riskiest first</text>',
              f'<text x="16" y="{LIFT_TOP + LIFT_H / 2}" transform="rotate(-90 16 '
              f'{LIFT_TOP + LIFT_H / 2})" text-anchor="middle">lift over random</text>',
              f'<line x1="{x(0)}" y1="{y(1)}" x2="{x(1)}" y2="{y(1)}" stroke="#777" '
              'stroke-dasharray="4 4"/>']
    for i, (method, points) in enumerate(curves.items()):
        colour = COLOURS[i % len(COLOURS)]
        path = " ".join(f"{x(share)},{y(lift)}" for share, lift in points)
        parts.append(f'<polyline class="method" fill="none" stroke="{colour}" stroke-width="2" '
                     f'points="{path}"><title>{escape(method)}</title></polyline>')
        legend_y = LIFT_TOP + 14 + 18 * i
        parts += [f'<line x1="{LIFT_LEFT + LIFT_W + 14}" y1="{legend_y - 4}" '
                  f'x2="{LIFT_LEFT + LIFT_W + 34}" y2="{legend_y - 4}" stroke="{colour}" '
                  'stroke-width="2"/>',
                  f'<text x="{LIFT_LEFT + LIFT_W + 40}" y="{legend_y}">{escape(method)}</text>']
    legend_y = LIFT_TOP + 14 + 18 * len(curves)
    parts += [f'<line x1="{LIFT_LEFT + LIFT_W + 14}" y1="{legend_y - 4}" '
              f'x2="{LIFT_LEFT + LIFT_W + 34}" y2="{legend_y - 4}" stroke="#777" '
              'stroke-dasharray="4 4"/>',
              f'<text x="{LIFT_LEFT + LIFT_W + 40}" y="{legend_y}">random</text>', "</svg>"]
    return "\n".join(parts)
