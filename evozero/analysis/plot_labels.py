"""Placing a handful of text labels on an axes so they overlap little (greedy search).

Each label is tried at a list of offsets around its anchor point and kept where it
overlaps least with the axes frame, the lines and markers already drawn, the labels placed
before it and their connectors. Used by :mod:`evozero.analysis.plots` for the labelled
discoveries of a single-run figure; what the labels say is left to that module.
"""
from __future__ import annotations

from typing import Any

import numpy as np
from matplotlib.text import Text

# Candidate text offsets in points from the anchor (dx, dy, ha, va): below-right first,
# where a rising best line usually leaves room, then the other sides, further out.
_OFFSETS = [(dx * r, dy * r, "left" if dx > 0 else "right", "top" if dy < 0 else "bottom")
            for r in (1.0, 2.0, 3.2, 4.6, 6.5)
            for dx, dy in ((14, -18), (14, 18), (-14, -18), (-14, 18), (30, -4), (-30, -4))]


def place_labels(axes: Any, labels: list[tuple[float, float, str]]) -> None:
    """Annotate (x, y, text) points, each at the candidate offset that overlaps least.

    Overlap is measured in display space against the labels already placed, the lines
    and markers drawn so far and the axes frame (a greedy search; a handful of labels).
    """
    figure = axes.figure
    axes.autoscale_view()
    axes.set_xlim(axes.get_xlim())   # freeze the limits so display positions stay put
    axes.set_ylim(axes.get_ylim())
    renderer = figure.canvas.get_renderer()
    frame = axes.get_window_extent(renderer)
    obstacles = _line_points(axes)
    placed: list[Any] = []
    arrows: list[tuple[Any, Any]] = []
    style = {"textcoords": "offset points", "fontsize": 6.5, "family": "monospace",
             "zorder": 5, "annotation_clip": False,
             "bbox": {"boxstyle": "round,pad=0.25", "fc": "white", "ec": "0.7",
                      "alpha": 0.9, "lw": 0.5},
             "arrowprops": {"arrowstyle": "-", "color": "0.45", "lw": 0.6,
                            "shrinkA": 0, "shrinkB": 3}}
    for x, y, text in labels:
        best = None
        for order, (dx, dy, ha, va) in enumerate(_OFFSETS):
            note = axes.annotate(text, (x, y), xytext=(dx, dy), ha=ha, va=va, **style)
            note.update_positions(renderer)
            # The text and its frame only: Annotation's own extent includes the arrow.
            box = Text.get_window_extent(note, renderer).padded(4)
            outside = (max(0.0, frame.x0 - box.x0) + max(0.0, box.x1 - frame.x1)
                       + max(0.0, frame.y0 - box.y0) + max(0.0, box.y1 - frame.y1))
            hits = 0
            if obstacles.size:
                hits = int(np.sum((obstacles[:, 0] >= box.x0) & (obstacles[:, 0] <= box.x1)
                                  & (obstacles[:, 1] >= box.y0) & (obstacles[:, 1] <= box.y1)))
            crossing = sum(_overlap(box, other) for other in placed)
            anchor = axes.transData.transform((x, y))
            # The connector runs from the anchor to the nearest point of the box.
            end = (min(max(anchor[0], box.x0), box.x1), min(max(anchor[1], box.y0), box.y1))
            tangles = sum(_crosses(anchor, end, a, b) for a, b in arrows)
            tangles += sum(_segment_in_box(anchor, end, other) for other in placed)
            score = outside * 1000 + crossing * 10 + tangles * 40 + hits + order * 2.0
            if best is None or score < best[0]:
                if best is not None:
                    best[1].remove()
                best = (score, note, box, (anchor, end))
            else:
                note.remove()
        if best is not None:
            placed.append(best[2])
            arrows.append(best[3])


def _crosses(p: Any, q: Any, a: Any, b: Any) -> bool:
    """Whether segments pq and ab cross (touching at an end does not count)."""
    def side(o: Any, u: Any, v: Any) -> float:
        return (u[0] - o[0]) * (v[1] - o[1]) - (u[1] - o[1]) * (v[0] - o[0])
    d1, d2 = side(a, b, p), side(a, b, q)
    d3, d4 = side(p, q, a), side(p, q, b)
    return d1 * d2 < 0 and d3 * d4 < 0


def _segment_in_box(p: Any, q: Any, box: Any) -> bool:
    """Whether the segment pq passes through ``box`` (sampled)."""
    t = np.linspace(0.05, 0.95, 12)[:, None]
    points = np.asarray(p) + t * (np.asarray(q) - np.asarray(p))
    return bool(np.any((points[:, 0] > box.x0) & (points[:, 0] < box.x1)
                       & (points[:, 1] > box.y0) & (points[:, 1] < box.y1)))


def _overlap(a: Any, b: Any) -> float:
    """Overlapping area of two display boxes, in square points (roughly)."""
    width = min(a.x1, b.x1) - max(a.x0, b.x0)
    height = min(a.y1, b.y1) - max(a.y0, b.y0)
    return max(0.0, width) * max(0.0, height) / 10.0


def _line_points(axes: Any) -> np.ndarray:
    """Display coordinates of points along every line drawn on ``axes`` (every ~3 px)."""
    chunks = []
    for line in axes.get_lines():
        data = np.asarray(line.get_xydata(), dtype=float)
        data = data[np.all(np.isfinite(data), axis=1)]
        if len(data) > 1 and line.get_drawstyle() == "steps-post":
            corners = np.column_stack([data[1:, 0], data[:-1, 1]])
            data = np.insert(data, np.arange(1, len(data)), corners, axis=0)
        vertices = line.get_transform().transform(data) if len(data) else data.reshape(0, 2)
        if line.get_linestyle() in ("None", "none", "", " ") or len(vertices) < 2:
            chunks.append(vertices)
            continue
        for a, b in zip(vertices[:-1], vertices[1:]):
            steps = max(1, int(np.hypot(*(b - a)) / 3))
            t = np.linspace(0.0, 1.0, steps + 1)[:, None]
            chunks.append(a + t * (b - a))
    return np.concatenate(chunks) if chunks else np.zeros((0, 2))
