"""What every evozero figure shares: a private Agg figure, its resolution and colours, the
median-and-band curve of several runs, and writing the image.

Figures are :class:`~matplotlib.figure.Figure` objects on their own Agg canvas (no pyplot,
no global state), so plotting is safe in threads, tests and headless servers. What a
figure shows is left to :mod:`evozero.analysis.plots` (program runs) and
:mod:`evozero.nas.reports.plots` (NAS runs).
"""
from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from evozero.errors import EvozeroError
from evozero.runs.files import atomic_write_bytes

DPI = 120
#: Qualitative colours (matplotlib's tab10), taken explicitly instead of from rcParams.
COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
          "#7f7f7f", "#bcbd22", "#17becf")


def series_color(index: int) -> str:
    """The ``index``-th colour, cycling through COLORS."""
    return COLORS[index % len(COLORS)]


def new_figure(size: tuple[float, float], **margins: float) -> Figure:
    """A figure of ``size`` inches at DPI on its own Agg canvas, with fixed ``margins``
    (``left``, ``right``, ``bottom``, ``top``, ``wspace``: see ``subplots_adjust``).

    Fixed margins rather than a layout engine: text placed in display space must not move
    when the figure is saved.
    """
    figure = Figure(figsize=size, dpi=DPI)
    figure.subplots_adjust(**margins)
    FigureCanvasAgg(figure)
    return figure


def save_figure(figure: Figure, output: str | Path) -> Path:
    """Write ``figure`` to ``output`` (folders created); a clear error if it cannot."""
    output = Path(output)
    buffer = io.BytesIO()
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
        # Into memory first, then replaced whole: a stopped plot leaves no half a PNG.
        figure.savefig(buffer, dpi=DPI, format=output.suffix[1:] or "png")
        atomic_write_bytes(output, buffer.getvalue())
    except (OSError, ValueError) as error:
        raise EvozeroError(f"{output}: cannot write the plot ({error})") from None
    return output


def draw_median_band(axes: Any, x: np.ndarray, values: np.ndarray, color: str,
                     label: str) -> tuple[Any, ...]:
    """Step line of the median of ``values`` (one row per run, NaN where a run says
    nothing) over ``x``, with a band: interquartile with 4+ runs, min-max otherwise.

    ``label`` gets ", median of N runs, <band> band" appended when there are several runs.
    Returns the legend handle: the line, or (band, line) so one legend entry shows both.
    """
    runs = values.shape[0]
    with np.errstate(all="ignore"):
        median = np.nanmedian(values, axis=0)
        if runs >= 4:
            low, high = np.nanpercentile(values, [25, 75], axis=0)
            band = "IQR"
        else:
            low, high = np.nanmin(values, axis=0), np.nanmax(values, axis=0)
            band = "min–max"
    if runs == 1:
        (line,) = axes.step(x, median, where="post", color=color, linewidth=1.8, label=label)
        return (line,)
    fill = axes.fill_between(x, low, high, step="post", color=color, alpha=0.2, linewidth=0)
    (line,) = axes.step(x, median, where="post", color=color, linewidth=1.8,
                        label=f"{label}: median of {runs} runs, {band} band")
    return (fill, line)
