"""A small flowing-layout PDF writer on matplotlib (already a dependency): headings, paragraphs,
wrapped tables that continue on the next page with their header, figures, and "page i of n".

Text is embedded as TrueType (pdf.fonttype 42) so it can be searched and copied from the PDF.
"""

from __future__ import annotations

import io
import textwrap
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

import matplotlib
import numpy as np
from matplotlib.backends.backend_pdf import PdfPages
from matplotlib.figure import Figure

from ..data.io import atomic_path

PAGE_W, PAGE_H = 8.27, 11.69  # A4 portrait, inches
LEFT, RIGHT, TOP, BOTTOM = 0.07, 0.93, 0.93, 0.06
CHAR_EM = 0.56  # mean glyph width of DejaVu Sans, in em, for wrapping


def _line_h(size: float) -> float:
    return size * 1.38 / 72 / PAGE_H


def _chars(width_frac: float, size: float) -> int:
    return max(4, int(width_frac * PAGE_W * 72 / (CHAR_EM * size)))


def wrap(text, width_frac: float, size: float) -> list[str]:
    lines = []
    for part in str(text).split("\n"):
        lines += textwrap.wrap(part, _chars(width_frac, size), break_long_words=True,
                               break_on_hyphens=False) or [""]
    return lines


def fmt(value) -> str:
    """Numbers to 4 significant digits, None/NaN as an em dash, lists joined."""
    if value is None:
        return "\u2014"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (float, np.floating)):
        if np.isnan(value):
            return "\u2014"
        if np.isinf(value):
            return "\u221e" if value > 0 else "-\u221e"
        return f"{value:.4g}"
    if isinstance(value, (list, tuple)):
        return ", ".join(fmt(v) for v in value)
    return str(value)


class Report:
    """Pages built top to bottom with a cursor; `new_page` when something does not fit."""

    def __init__(self, title: str, footer: str):
        self.title, self.footer = title, footer
        self.pages: list[Figure] = []
        self.fig = None
        self.y = TOP

    def new_page(self):
        self.fig = Figure(figsize=(PAGE_W, PAGE_H))
        self.pages.append(self.fig)
        self.fig.text(LEFT, 0.965, self.title, fontsize=8, color="0.4")
        self.fig.add_artist(matplotlib.lines.Line2D([LEFT, RIGHT], [0.958, 0.958], color="0.7", lw=0.5))
        self.y = TOP

    def _room(self, h: float):
        if self.fig is None or self.y - h < BOTTOM:
            self.new_page()

    def space(self, h: float = 0.01):
        self.y -= h

    def title_block(self, title: str, subtitle: str = ""):
        self._room(0.08)
        self.fig.text(LEFT, self.y, title, fontsize=18, weight="bold", va="top")
        self.y -= 0.035
        if subtitle:
            self.paragraph(subtitle, size=10, color="0.25")
        self.space(0.01)

    def heading(self, text: str, size: float = 13):
        self._room(_line_h(size) * 1.6 + _line_h(9) * 3)  # keep a heading with what follows
        self.space(_line_h(size) * 0.5)
        self.fig.text(LEFT, self.y, text, fontsize=size, weight="bold", va="top", color="#1f3a5f")
        self.y -= _line_h(size) * 1.3

    def paragraph(self, text: str, size: float = 9, color="black", indent: float = 0.0):
        for line in wrap(text, RIGHT - LEFT - indent, size):
            self._room(_line_h(size))
            self.fig.text(LEFT + indent, self.y, line, fontsize=size, va="top", color=color)
            self.y -= _line_h(size)
        self.space(_line_h(size) * 0.4)

    def table(self, header: list[str] | None, rows: list[list], widths: list[float] | None = None, size: float = 8,
              bold_first: bool = False, highlight=None):
        """Rows of cells wrapped to column `widths` (fractions of the text width, default equal).

        `highlight(row_index) -> bool` marks rows (e.g. changed parameters) with a tinted background.
        """
        total = RIGHT - LEFT
        ncol = len(header) if header else len(rows[0]) if rows else 1
        widths = widths or [1 / ncol] * ncol
        xs = LEFT + total * np.concatenate([[0], np.cumsum(widths)[:-1]])
        lh = _line_h(size)

        def cells(row, bold=False):
            return [wrap(fmt(c), (w * total - 0.012) * (0.88 if bold else 1.0), size) for c, w in zip(row, widths)]

        def draw(wrapped, bold, shade):
            h = max(len(c) for c in wrapped) * lh + lh * 0.35
            self._room(h + (lh * 1.5 if not bold else 0))
            if shade:
                self.fig.add_artist(matplotlib.patches.Rectangle((LEFT, self.y - h + lh * 0.15), total, h,
                                                                 color=shade, lw=0, zorder=-1))
            for x, lines, j in zip(xs, wrapped, range(len(wrapped))):
                w = "bold" if bold or (bold_first and j == 0) else "normal"
                self.fig.text(x + 0.004, self.y, "\n".join(lines), fontsize=size, va="top", weight=w,
                              linespacing=1.25)
            self.y -= h
            return h

        def draw_header():
            if header:
                draw(cells(header, bold=True), True, "#dde4ee")

        self._room(lh * 3)
        draw_header()
        for i, row in enumerate(rows):
            wrapped = cells(row)
            h = max(len(c) for c in wrapped) * lh + lh * 0.35
            if self.y - h < BOTTOM:
                self.new_page()
                draw_header()
            shade = "#fff2cc" if highlight and highlight(i) else ("#f4f4f4" if i % 2 else None)
            draw(wrapped, False, shade)
        self.space(lh * 0.8)

    def key_values(self, pairs, size: float = 8.5, widths=(0.28, 0.72)):
        if pairs:
            self.table(None, [[k, v] for k, v in pairs], list(widths), size=size, bold_first=True)

    def figure(self, fig_or_png, max_h: float = 0.4, caption: str = ""):
        """A matplotlib Figure (rendered at 150 dpi) or a PNG file, scaled to the text width."""
        from matplotlib.image import imread

        if isinstance(fig_or_png, Figure):
            buf = io.BytesIO()
            fig_or_png.savefig(buf, format="png", dpi=150)
            buf.seek(0)
            img = imread(buf, format="png")
        else:
            img = imread(str(fig_or_png))
        aspect = img.shape[0] / img.shape[1]
        w = RIGHT - LEFT
        h = w * PAGE_W * aspect / PAGE_H
        if h > max_h:
            w, h = w * max_h / h, max_h
        cap_h = _line_h(8) * (len(wrap(caption, RIGHT - LEFT, 8)) + 0.5) if caption else 0
        self._room(h + cap_h)
        ax = self.fig.add_axes((LEFT + (RIGHT - LEFT - w) / 2, self.y - h, w, h))
        ax.imshow(img, interpolation="antialiased")
        ax.set_axis_off()
        self.y -= h + 0.008
        if caption:
            self.paragraph(caption, size=8, color="0.3")

    def save(self, pdf: PdfPages):
        n = len(self.pages)
        for i, fig in enumerate(self.pages, 1):
            fig.text(LEFT, 0.03, self.footer, fontsize=7, color="0.45")
            fig.text(RIGHT, 0.03, f"page {i} of {n}", fontsize=7, color="0.45", ha="right")
            pdf.savefig(fig)


@contextmanager
def report(path: str | Path, title: str, footer: str):
    """Yield a `Report`; the PDF is written atomically when the block ends without error."""
    path = Path(path)
    rep = Report(title, footer)
    yield rep
    with matplotlib.rc_context({"pdf.fonttype": 42, "font.family": "DejaVu Sans"}), atomic_path(path) as tmp:
        with PdfPages(tmp, metadata={"Title": title, "Creator": "dl4mic",
                                     "CreationDate": datetime.now(timezone.utc)}) as pdf:
            rep.save(pdf)


def now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
