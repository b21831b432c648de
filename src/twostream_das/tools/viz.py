"""Barcode plots of frame labels: ground truth (when known), RGB, FLOW and fused predictions.

Uses matplotlib's Agg canvas directly (no pyplot, no global backend switch), so it works on
headless machines and never opens a window.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure
from matplotlib.patches import Patch

BARCODE_WIDTH_IN: float = 10.0  # figure width, inches
ROW_HEIGHT_IN: float = 0.45  # height of one barcode row, inches
LEGEND_HEIGHT_IN: float = 0.22  # height per legend row, inches
LEGEND_COLUMNS: int = 4
DPI: int = 120


def class_colors(num_classes: int) -> np.ndarray:
    """One RGBA colour per class, stable across plots.

    tab20's ten strong colours first, then its ten light ones, then tab20b and tab20c, so that
    neighbouring class ids get clearly different colours.
    """
    from matplotlib import colormaps

    tab20 = colormaps["tab20"](np.arange(20))  # (20, 4), strong/light pairs
    palette = np.concatenate(
        [tab20[0::2], tab20[1::2]] + [colormaps[n](np.arange(20)) for n in ("tab20b", "tab20c")]
    )  # (60, 4)
    return palette[np.arange(num_classes) % len(palette)]


def plot_barcodes(
    rows: Mapping[str, np.ndarray],
    class_names: Sequence[str],
    path: str | Path,
    title: str | None = None,
    fps: float | None = None,
) -> Path:
    """Draw one barcode row per entry of ``rows`` (in order) and save a PNG.

    Args:
        rows: row name (e.g. ``"GT"``, ``"RGB"``, ``"FLOW"``, ``"fused"``) -> labels ``(T,)`` int
            class ids; all rows the same length.
        class_names: name of every class id; the legend names the classes that occur.
        path: output ``.png``.
        title: figure title (e.g. the video name).
        fps: when given, the x axis is in seconds, else in frames.
    """
    if not rows:
        raise ValueError("plot_barcodes needs at least one row")
    lengths = {name: len(labels) for name, labels in rows.items()}
    if len(set(lengths.values())) != 1:
        raise ValueError(f"barcode rows differ in length: {lengths}")
    num_frames = next(iter(lengths.values()))
    colors = class_colors(len(class_names))
    cmap = ListedColormap(colors)
    present = sorted({int(c) for labels in rows.values() for c in np.unique(labels)})
    legend_rows = -(-len(present) // LEGEND_COLUMNS)
    height = ROW_HEIGHT_IN * len(rows) + LEGEND_HEIGHT_IN * legend_rows + 0.9
    fig = Figure(figsize=(BARCODE_WIDTH_IN, height), dpi=DPI)
    FigureCanvasAgg(fig)
    axes = fig.subplots(len(rows), 1, sharex=True, squeeze=False)[:, 0]
    extent_end = num_frames / fps if fps else num_frames
    for ax, (name, labels) in zip(axes, rows.items(), strict=True):
        ax.imshow(
            np.asarray(labels, dtype=np.int64)[None, :],  # (1, T)
            aspect="auto",
            interpolation="nearest",
            cmap=cmap,
            vmin=-0.5,
            vmax=len(class_names) - 0.5,
            extent=(0, extent_end, 0, 1),
        )
        ax.set_yticks([])
        ax.set_ylabel(name, rotation=0, ha="right", va="center")
    axes[-1].set_xlabel("time (s)" if fps else "frame")
    if title:
        fig.suptitle(title)
    handles = [Patch(color=colors[c], label=class_names[c]) for c in present]
    fig.legend(
        handles=handles,
        loc="lower center",
        ncol=LEGEND_COLUMNS,
        fontsize="small",
        frameon=False,
    )
    bottom = (LEGEND_HEIGHT_IN * legend_rows + 0.45) / height
    top = 0.88 if title else 0.95
    fig.subplots_adjust(left=0.1, right=0.98, top=top, bottom=bottom, hspace=0.15)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    return path
