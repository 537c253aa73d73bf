"""Charts as PNG images, drawn by matplotlib (Agg: no display, no pyplot state). Pure: values
in, PNG bytes out.

The weekly management email attaches the trend charts inline (CID) and the run page shows them
in a Prefect markdown artifact (a data URI): a PNG is what every mail client and the Prefect UI
display. ``kamflow backtest`` draws its lift chart here too. Axis numbers are on the picture;
titles and legends in the reader's language are the HTML's around it (the lift chart, for ops,
carries its own English legend). Output is deterministic: the same values give the same bytes.
"""

from __future__ import annotations

import base64
import datetime as dt
import io
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

__all__ = ["COLOURS", "Line", "data_uri", "lift_chart_png", "line_chart_png", "png_size",
           "trend_charts"]

WIDTH, HEIGHT = 640, 260
COLOURS = {"blue": "#1f77b4", "red": "#d62728", "green": "#2ca02c", "orange": "#ff7f0e",
           "grey": "#787878", "purple": "#9467bd", "brown": "#8c564b"}
_DPI = 100


@dataclass(frozen=True)
class Line:
    """One series: its values (None where missing), colour (a COLOURS key), whether dashed (a
    ceiling), its x positions (default 0, 1, 2 ...) and its legend label (none: no legend)."""

    values: Sequence[float | None]
    colour: str = "blue"
    dashed: bool = False
    x: Sequence[float] | None = None
    label: str | None = None


def line_chart_png(lines: Sequence[Line], x_labels: Sequence[str] = (),
                   y_format: str = "percent", width: int = WIDTH, height: int = HEIGHT,
                   title: str | None = None, x_title: str | None = None,
                   y_title: str | None = None, x_format: str | None = None) -> bytes:
    """A line chart of ``lines`` as PNG bytes, ``width`` x ``height`` pixels. ``x_labels``
    name the points 0, 1, 2 ... (thinned to what fits); ``y_format`` (and ``x_format`` for
    numeric x): ``percent`` (shares shown as %), ``number`` (CNY: 12k, 1.5M) or ``plain``."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter, MaxNLocator

    figure = Figure(figsize=(width / _DPI, height / _DPI), dpi=_DPI)
    axes = figure.add_subplot()
    top = 0.0
    for line in lines:
        xs = list(line.x) if line.x is not None else list(range(len(line.values)))
        points = [(x, v) for x, v in zip(xs, line.values, strict=False) if v is not None]
        if not points:
            continue
        top = max(top, *(v for _, v in points))
        axes.plot(*zip(*points, strict=True), color=COLOURS.get(line.colour, line.colour),
                  linestyle="--" if line.dashed else "-", linewidth=2,
                  marker="o" if len(points) <= 40 else None, markersize=3, label=line.label)
    axes.set_ylim(0, top * 1.1 if top > 0 else 1.0)
    axes.yaxis.set_major_formatter(FuncFormatter(lambda v, _: _label(v, y_format)))
    axes.yaxis.set_major_locator(MaxNLocator(5))
    if x_labels:
        step = max(1, -(-len(x_labels) * 60 // width))  # labels that fit
        axes.set_xticks(range(0, len(x_labels), step),
                        [str(x_labels[i]) for i in range(0, len(x_labels), step)])
    elif x_format:
        axes.xaxis.set_major_formatter(FuncFormatter(lambda v, _: _label(v, x_format)))
    axes.grid(True, color="#e1e1e1")
    axes.set_axisbelow(True)
    for side in ("top", "right"):
        axes.spines[side].set_visible(False)
    if title:
        axes.set_title(title, fontsize=11, loc="left")
    if x_title:
        axes.set_xlabel(x_title)
    if y_title:
        axes.set_ylabel(y_title)
    if any(line.label for line in lines):
        axes.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False, fontsize=9)
    figure.tight_layout()
    return _png(figure)


def lift_chart_png(curves: Mapping[str, Sequence[Sequence[float]]], title: str,
                   width: int = 850, height: int = 430) -> bytes:
    """Lift over random (y) in the riskiest share of accounts (x), one line per method in
    COLOURS' order, and a random ranking's lift of 1 (dashed): the backtest's lift chart."""
    palette = ("blue", "orange", "green", "red", "purple", "brown")  # the SVG's order
    lines = [Line([lift for _, lift in points], palette[i % len(palette)],
                  x=[share for share, _ in points], label=method.replace("_", " "))
             for i, (method, points) in enumerate(curves.items())]
    lines.append(Line([1.0, 1.0], "grey", dashed=True, x=[0.0, 1.0], label="random"))
    return line_chart_png(lines, y_format="plain", x_format="percent", width=width,
                          height=height, title=title, x_title="accounts taken, riskiest first",
                          y_title="lift over random")


def trend_charts(trend: Sequence[Mapping[str, Any]], timezone: str,
                 current: Mapping[str, Any]) -> dict[str, bytes]:
    """The two charts as PNG, keyed like CHART_CIDS: trailing-12-month churn against its
    ceiling, and value at risk, over the runs in ``trend`` (oldest first; run_figures). With
    no run yet, ``current`` (this week's trailing-12-month figures) is the one point."""
    zone = ZoneInfo(timezone)
    points = list(trend) or [{"at": dt.datetime.fromisoformat(current["to"]),
                              "churn_rate_12m": current["churn rate"],
                              "churn_ceiling_12m": current["churn ceiling"],
                              "value_at_risk": current["value at risk"]}]

    def local(at: dt.datetime) -> dt.datetime:  # SQLite gives naive UTC
        return (at if at.tzinfo else at.replace(tzinfo=dt.UTC)).astimezone(zone)

    labels = [f"{local(p['at']):%m-%d}" for p in points]
    return {
        "churn": line_chart_png([
            Line([p["churn_rate_12m"] for p in points], "blue"),
            Line([p["churn_ceiling_12m"] for p in points], "red", dashed=True)], labels),
        "value_at_risk": line_chart_png([
            Line([p.get("value_at_risk") for p in points], "green")], labels,
            y_format="number"),
    }


def data_uri(png: bytes) -> str:
    """The PNG as a ``data:`` URI (for a markdown artifact's image)."""
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def png_size(png: bytes) -> tuple[int, int]:
    """(width, height) read from a PNG's header."""
    width, height = struct.unpack(">II", png[16:24])
    return width, height


def _png(figure: Any) -> bytes:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(figure)
    out = io.BytesIO()
    # no Software tag: the same chart is the same bytes whatever matplotlib's version
    figure.savefig(out, format="png", dpi=_DPI, metadata={"Software": None})
    return out.getvalue()


def _label(value: float, style: str) -> str:
    """An axis number: a share as % (with the decimals small shares need), CNY as 12k/1.5M."""
    if style == "percent":  # three significant digits: 12.5%, 0.25%, 0.0019%
        percent = value * 100
        return "0%" if abs(percent) < 1e-9 else f"{float(f'{percent:.3g}'):g}%"
    if style == "number":
        size = abs(value)
        for unit, scale in (("M", 1e6), ("k", 1e3)):
            if size >= scale:
                return f"{float(f'{value / scale:.3g}'):g}{unit}"
        return f"{value:.0f}"
    return f"{value:g}"
