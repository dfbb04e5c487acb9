"""Figure helpers shared by the attacks and the reports (so they live below both).

Figures are built on :class:`matplotlib.figure.Figure` directly, never through
pyplot, so they render headless, in threads and in CI without a display, and
nothing leaks into a global figure registry.
"""

from __future__ import annotations

import io
import os
from collections.abc import Sequence

import torch
from matplotlib.figure import Figure

from .atomic import write_atomic

PAPER_RC = {"font.size": 8, "axes.titlesize": 8, "axes.labelsize": 8}


def image_grid_figure(
    rows: Sequence[torch.Tensor],
    row_labels: Sequence[str],
    *,
    column_titles: Sequence[str] | None = None,
    title: str = "",
    caption: str = "",
    cell_inches: float = 0.9,
) -> Figure:
    """A grid of grey or RGB images: ``rows[r][c]`` is one ``[C, H, W]`` image in [0, 1].

    Values outside [0, 1] (a metamer may leave the pixel range) are clipped for
    display only.  ``caption`` is a line under the grid that explains the column
    titles (what "D" and "o" stand for).
    """
    n_rows, n_cols = len(rows), max(len(r) for r in rows)
    extra = 0.3 if caption else 0.0
    # Room above the grid for the title and column titles of more than one line.
    lines = max((t.count("\n") + 1 for t in column_titles or ()), default=1)
    top = 0.1 * (lines - 1)
    height = cell_inches * n_rows + 0.5 + extra + top
    fig = Figure(figsize=(cell_inches * n_cols + 0.9, height), dpi=150)
    axes = fig.subplots(n_rows, n_cols, squeeze=False)
    for r, row in enumerate(rows):
        for c in range(n_cols):
            ax = axes[r][c]
            ax.set_xticks([])
            ax.set_yticks([])
            for spine in ax.spines.values():
                spine.set_visible(False)
            if c >= len(row):
                continue
            image = row[c].detach().float().clamp(0, 1).cpu()
            if image.shape[0] == 1:
                ax.imshow(image[0].numpy(), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
            else:
                ax.imshow(image.permute(1, 2, 0).numpy(), interpolation="nearest")
            if column_titles is not None and r == 0 and c < len(column_titles):
                ax.set_title(column_titles[c], fontsize=6)
        axes[r][0].set_ylabel(row_labels[r], fontsize=7, rotation=0, ha="right", va="center")
    if title:
        fig.suptitle(title, fontsize=9)
    if caption:
        fig.text(0.5, 0.01, caption, ha="center", va="bottom", fontsize=6, wrap=True)
    bottom = (extra + 0.05) / height if caption else None
    fig.subplots_adjust(
        wspace=0.05, hspace=0.25, bottom=bottom, top=1 - (0.45 + top) / height if top else None
    )
    return fig


def save_png(fig: Figure, path: str | os.PathLike) -> None:
    """Write ``fig`` as a PNG atomically (a killed run leaves no half-written image)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", bbox_inches="tight")
    write_atomic(path, lambda f: f.write(buffer.getvalue()))
