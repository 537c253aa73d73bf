"""The value class × churn band picture for the run page: a small self-contained SVG heat map."""

from __future__ import annotations

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
