"""Small trend charts as PNG images, drawn with numpy alone (no plotting library). Pure.

The weekly management email attaches them inline (CID) and the run page shows them in a Prefect
markdown artifact (a data URI): a PNG is what every mail client and the Prefect UI display. The
picture carries lines, grid and the numbers on its axes (a built-in digit font); titles and
legends, in the reader's language, are the HTML's around it.
"""

from __future__ import annotations

import base64
import datetime as dt
import struct
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np

__all__ = ["COLOURS", "Line", "data_uri", "line_chart_png", "png_size", "trend_charts"]

WIDTH, HEIGHT = 640, 260
LEFT, RIGHT, TOP, BOTTOM = 78, 16, 14, 30
COLOURS = {"blue": (31, 119, 180), "red": (214, 39, 40), "green": (44, 160, 44),
           "orange": (255, 127, 14), "grey": (120, 120, 120)}
_GRID = (225, 225, 225)
_AXIS = (90, 90, 90)
_TEXT = (60, 60, 60)

# 3 x 5 pixel glyphs (rows top to bottom, 3 bits each): what axis labels need.
_GLYPHS = {
    "0": (7, 5, 5, 5, 7), "1": (2, 6, 2, 2, 7), "2": (7, 1, 7, 4, 7), "3": (7, 1, 7, 1, 7),
    "4": (5, 5, 7, 1, 1), "5": (7, 4, 7, 1, 7), "6": (7, 4, 7, 5, 7), "7": (7, 1, 1, 1, 1),
    "8": (7, 5, 7, 5, 7), "9": (7, 5, 7, 1, 7), ".": (0, 0, 0, 0, 2), ",": (0, 0, 0, 2, 4),
    "-": (0, 0, 7, 0, 0), "%": (5, 1, 2, 4, 5), " ": (0, 0, 0, 0, 0), "k": (4, 5, 6, 5, 5),
    "M": (5, 7, 7, 5, 5), ":": (0, 2, 0, 2, 0), "/": (1, 1, 2, 4, 4),
}
_SCALE = 2  # each glyph pixel is 2 x 2


@dataclass(frozen=True)
class Line:
    """One series: its values (None where missing), colour (a COLOURS key) and whether dashed
    (a ceiling)."""

    values: Sequence[float | None]
    colour: str = "blue"
    dashed: bool = False


def line_chart_png(lines: Sequence[Line], x_labels: Sequence[str],
                   y_format: str = "percent", width: int = WIDTH,
                   height: int = HEIGHT) -> bytes:
    """A line chart of ``lines`` over ``len(x_labels)`` points as PNG bytes. ``y_format``:
    ``percent`` (shares shown as %) or ``number`` (CNY: 12k, 1.5M). Deterministic."""
    image = np.full((height, width, 3), 255, dtype=np.uint8)
    n = max(len(x_labels), max((len(line.values) for line in lines), default=0), 1)
    values = [v for line in lines for v in line.values if v is not None]
    top = max(values, default=0.0)
    top = _nice(top if top > 0 else 1.0)
    plot_w, plot_h = width - LEFT - RIGHT, height - TOP - BOTTOM

    def x_of(i: float) -> float:
        return LEFT + (plot_w * i / (n - 1) if n > 1 else plot_w / 2)

    def y_of(v: float) -> float:
        return TOP + plot_h * (1 - v / top)

    for k in range(5):  # grid lines and their labels
        v = top * k / 4
        y = round(y_of(v))
        image[y, LEFT:width - RIGHT] = _GRID
        label = _label(v, y_format, top)
        _text(image, label, LEFT - 6 - _text_width(label), y - 5)
    image[TOP:TOP + plot_h + 1, LEFT] = _AXIS
    image[TOP + plot_h, LEFT:width - RIGHT] = _AXIS
    step = max(1, int(np.ceil(len(x_labels) * 40 / plot_w)))  # labels that fit
    for i in range(0, len(x_labels), step):
        label = str(x_labels[i])
        x = round(x_of(i))
        image[TOP + plot_h:TOP + plot_h + 4, x] = _AXIS
        _text(image, label, min(max(x - _text_width(label) // 2, 0),
                                width - _text_width(label)), TOP + plot_h + 8)
    for line in lines:
        colour = COLOURS[line.colour]
        points = [(x_of(i), y_of(v)) for i, v in enumerate(line.values) if v is not None]
        if len(points) == 1:
            _dot(image, points[0], colour, 3)
        for a, b in zip(points, points[1:], strict=False):
            _segment(image, a, b, colour, line.dashed)
        for point in points if len(points) <= 40 else ():
            _dot(image, point, colour, 2)
    return _png(image)


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


def _nice(value: float) -> float:
    """The smallest 1, 2, 2.5 or 5 x 10^k at or above ``value`` (the axis' top)."""
    exponent = np.floor(np.log10(value))
    for step in (1.0, 2.0, 2.5, 5.0, 10.0):
        if step * 10 ** exponent >= value * 1.0000001:
            return float(step * 10 ** exponent)
    return float(10 ** (exponent + 1))


def _label(value: float, y_format: str, top: float) -> str:
    """A tick's label, with as many decimals as a quarter of the axis needs."""
    def digits(step: float) -> int:
        return int(min(max(0.0, 1 - np.floor(np.log10(step))), 4)) if step > 0 else 0

    if y_format == "percent":
        return f"{100 * value:.{digits(100 * top / 4)}f}%"
    if top >= 4e6:
        return f"{value / 1e6:.{digits(top / 4e6)}f}M"
    if top >= 4e3:
        return f"{value / 1e3:.{digits(top / 4e3)}f}k"
    return f"{value:.{digits(top / 4)}f}"


def _text_width(text: str) -> int:
    return len(text) * 4 * _SCALE


def _text(image: np.ndarray, text: str, x: int, y: int) -> None:
    for i, char in enumerate(text):
        rows = _GLYPHS.get(char, _GLYPHS[" "])
        for r, bits in enumerate(rows):
            for c in range(3):
                if bits & (4 >> c):
                    top, left = y + r * _SCALE, x + (i * 4 + c) * _SCALE
                    if 0 <= top and top + _SCALE <= image.shape[0] and 0 <= left \
                            and left + _SCALE <= image.shape[1]:
                        image[top:top + _SCALE, left:left + _SCALE] = _TEXT


def _segment(image: np.ndarray, a: tuple[float, float], b: tuple[float, float],
             colour: tuple[int, int, int], dashed: bool) -> None:
    steps = int(max(abs(b[0] - a[0]), abs(b[1] - a[1])) * 2) + 2
    t = np.linspace(0.0, 1.0, steps)
    xs = a[0] + (b[0] - a[0]) * t
    ys = a[1] + (b[1] - a[1]) * t
    if dashed:  # 6 px on, 6 px off along the line
        length = np.hypot(xs - a[0], ys - a[1])
        keep = (length // 6) % 2 == 0
        xs, ys = xs[keep], ys[keep]
    for dx in (-1, 0, 1):
        for dy in (-1, 0, 1):
            px = np.clip(np.round(xs).astype(int) + dx, 0, image.shape[1] - 1)
            py = np.clip(np.round(ys).astype(int) + dy, 0, image.shape[0] - 1)
            image[py, px] = colour


def _dot(image: np.ndarray, point: tuple[float, float], colour: tuple[int, int, int],
         radius: int) -> None:
    x, y = round(point[0]), round(point[1])
    image[max(y - radius, 0):y + radius + 1, max(x - radius, 0):x + radius + 1] = colour


def _png(image: np.ndarray) -> bytes:
    """An RGB array as PNG bytes (8-bit truecolour, no filter, zlib level 9)."""
    height, width, _ = image.shape
    raw = np.concatenate([np.zeros((height, 1), dtype=np.uint8),
                          image.reshape(height, width * 3)], axis=1).tobytes()

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))
