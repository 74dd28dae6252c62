"""A timeline PNG of one query: sampled frames, audio loudness, predicted windows, ground truth.

Drawn with matplotlib's object API on an Agg canvas (no pyplot, no global backend switch), so
it works headless and inside DataLoader-free scripts alike. Layout, sharing one time axis whose
labels only the bottom panel shows (so no panel covers the labels of the one above):

    [ strip of sampled frames, each labelled with its time            ]
    [ loudness (dB RMS of the soundtrack, 50 ms hops) or "no audio"   ]
    [ GT bars (green); predicted windows best first, shaded by score   ]
    [ each frame's relevance to the query (a model with a saliency head) ]
    seconds
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Optional

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from PIL import Image

from lavis.common.files import atomic_write_bytes
from lavis.datasets.audio_io import Waveform

FIGSIZE = (12.0, 5.0)  # inches; at DPI this gives a 1200 x 500 PNG
DPI = 100
MAX_THUMBNAILS = 10
THUMBNAIL_HEIGHT = 144  # pixels kept per strip frame (a slot of the strip is ~110 x 130 px)
MAX_DRAWN_WINDOWS = 5  # predicted windows drawn (best first); the JSON has them all
SILENCE_DB = -80.0  # loudness floor


def loudness_db(
    waveform: Optional[Waveform], duration: float, hop_s: float = 0.05
) -> Optional[tuple[np.ndarray, np.ndarray]]:
    """``(times [K], dB [K])``: RMS loudness of ``waveform`` in ``hop_s`` bins over ``[0,
    duration]`` on the video's clock (floored at ``SILENCE_DB``); None without audio."""
    if waveform is None or len(waveform.samples) == 0:
        return None
    hop = max(1, int(round(hop_s * waveform.sample_rate)))
    offset = int(round(-waveform.start * waveform.sample_rate))  # sample index of time 0
    count = max(1, int(np.ceil(duration / hop_s)))
    samples = np.zeros(count * hop, dtype=np.float32)
    lo, hi = max(offset, 0), min(offset + len(samples), len(waveform.samples))
    if hi > lo:
        samples[lo - offset : hi - offset] = waveform.samples[lo:hi]
    rms = np.sqrt(np.mean(samples.reshape(count, hop) ** 2, axis=1))
    db = np.maximum(20.0 * np.log10(np.maximum(rms, 1e-12)), SILENCE_DB)
    return (np.arange(count) + 0.5) * hop_s, db


def thumbnails(frames: np.ndarray, times: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The strip's frames out of uint8 ``frames [t, H, W, 3]`` at ``times [t]``: at most
    ``MAX_THUMBNAILS``, evenly picked, at most ``THUMBNAIL_HEIGHT`` pixels high (what the video
    index keeps of a video for its timelines)."""
    if len(frames) == 0:
        return frames, times
    picks = np.unique(np.linspace(0, len(frames) - 1, min(MAX_THUMBNAILS, len(frames))).round().astype(int))
    height, width = frames.shape[1:3]
    if height <= THUMBNAIL_HEIGHT:
        return frames[picks], times[picks]
    size = (max(1, round(width * THUMBNAIL_HEIGHT / height)), THUMBNAIL_HEIGHT)
    small = [np.asarray(Image.fromarray(frames[i]).resize(size, Image.Resampling.BILINEAR)) for i in picks]
    return np.stack(small), times[picks]


def _strip(ax, duration: float, frames: Optional[np.ndarray], times: Optional[np.ndarray]) -> None:
    ax.set_ylim(0, 1)
    ax.set_yticks([])
    if frames is None or len(frames) == 0:
        ax.text(duration / 2, 0.5, "frames unavailable", ha="center", va="center", color="grey")
        return
    labels = times is not None
    frames, times = thumbnails(frames, times if labels else np.zeros(len(frames), dtype=np.float32))
    slot = duration / len(frames)
    for k, (frame, time) in enumerate(zip(frames, times)):
        x0, x1 = k * slot, (k + 1) * slot
        ax.imshow(frame, extent=(x0 + 0.02 * slot, x1 - 0.02 * slot, 0.0, 1.0), aspect="auto")
        ax.text(
            (x0 + x1) / 2,
            0.02,
            f"{time:.1f}s" if labels else "",
            ha="center",
            va="bottom",
            fontsize=7,
            color="white",
            bbox={"facecolor": "black", "alpha": 0.5, "pad": 1, "linewidth": 0},
        )


def _loudness(ax, duration: float, loudness: Optional[tuple[np.ndarray, np.ndarray]], missing: str) -> None:
    ax.tick_params(labelsize=7)
    if loudness is None:
        ax.set_ylim(0, 1)
        ax.set_yticks([])
        ax.text(duration / 2, 0.5, missing, ha="center", va="center", color="grey")
        return
    times, db = loudness
    ax.fill_between(times, db, SILENCE_DB, color="tab:blue", alpha=0.6, linewidth=0)
    ax.set_ylim(SILENCE_DB, max(float(db.max()) + 3.0, SILENCE_DB + 10.0))
    ax.set_ylabel("dB", fontsize=8)


def _windows(ax, duration: float, windows: Sequence[Sequence[float]], gt: Optional[Sequence[Sequence[float]]]) -> None:
    rows: list[tuple[str, Optional[Sequence[float]]]] = [("GT", None)] if gt else []
    rows += [(f"#{k + 1}", w) for k, w in enumerate(windows[:MAX_DRAWN_WINDOWS])] or [("pred", [])]
    for y, (_label, window) in enumerate(rows):
        if window is None:
            ax.broken_barh([(s, e - s) for s, e in gt], (y - 0.35, 0.7), color="tab:green")
        elif not window:
            ax.text(duration / 2, y, "no window predicted", ha="center", va="center", color="grey")
        else:
            start, end, score = window
            shade = 0.25 + 0.75 * min(max(float(score), 0.0), 1.0)
            ax.broken_barh([(start, end - start)], (y - 0.35, 0.7), color="tab:orange", alpha=shade)
            ax.text(end, y, f" {score:.2f}", va="center", fontsize=8)
    ax.set_yticks(range(len(rows)), [label for label, _ in rows], fontsize=8)
    ax.set_ylim(len(rows) - 0.5, -0.5)  # best first, top down


def timeline_figure(
    duration: float,
    windows: Sequence[Sequence[float]],
    *,
    gt: Optional[Sequence[Sequence[float]]] = None,
    frames: Optional[np.ndarray] = None,
    frame_times: Optional[np.ndarray] = None,
    loudness: Optional[tuple[np.ndarray, np.ndarray]] = None,
    relevance: Optional[Sequence[Sequence[float]]] = None,
    title: str = "",
    no_audio_text: str = "no audio stream",
) -> Figure:
    """The timeline as a matplotlib ``Figure`` (``FIGSIZE`` at ``DPI``; ``draw_timeline`` writes it).
    Its panels share one time axis, labelled under the bottom panel only.

    ``windows``: ``[start, end, score]`` best first (seconds); ``gt``: ``[start, end]``;
    ``frames``: uint8 ``[t, H, W, 3]`` with ``frame_times`` ``[t]`` seconds (at most
    ``MAX_THUMBNAILS`` of them are drawn); ``loudness``: the output of ``loudness_db`` (None draws
    ``no_audio_text``); ``relevance``: ``[time, 0..1]`` per frame, drawn as a curve under the
    windows (None: no such row).
    """
    fig = Figure(figsize=FIGSIZE, dpi=DPI)
    FigureCanvasAgg(fig)
    ratios = (1.3, 0.9, 1.4) + ((0.8,) if relevance else ())
    grid = fig.add_gridspec(len(ratios), 1, height_ratios=ratios, hspace=0.12)
    axes = [fig.add_subplot(grid[0])]
    axes += [fig.add_subplot(grid[k], sharex=axes[0]) for k in range(1, len(ratios))]
    _strip(axes[0], duration, frames, frame_times)
    _loudness(axes[1], duration, loudness, no_audio_text)
    _windows(axes[2], duration, list(windows), gt)
    if relevance:
        _relevance(axes[3], np.asarray(relevance, dtype=np.float64))
    axes[0].set_xlim(0, duration)  # shared by all; after imshow, which resets the limits
    for ax in axes[:-1]:
        ax.tick_params(axis="x", labelbottom=False)
    axes[-1].tick_params(axis="x", labelsize=7)
    axes[-1].set_xlabel("seconds", fontsize=8)
    if title:
        title = title.encode("utf-8", "replace").decode("utf-8")  # bytes that were not UTF-8 show as '?'
        fig.suptitle(title if len(title) <= 140 else title[:137] + "...", fontsize=10)
    fig.subplots_adjust(left=0.05, right=0.95, top=0.91, bottom=0.1)
    return fig


def draw_timeline(path: str | Path, duration: float, windows: Sequence[Sequence[float]], **panels: Any) -> Path:
    """Write ``timeline_figure(duration, windows, **panels)`` as a PNG (``FIGSIZE`` x ``DPI``
    pixels) at ``path`` and return it."""
    fig = timeline_figure(duration, windows, **panels)
    png = io.BytesIO()
    fig.savefig(png, dpi=DPI, format="png")
    return atomic_write_bytes(path, png.getvalue())  # a full disk: an OSError naming the file


def _relevance(ax, relevance: np.ndarray) -> None:
    """``relevance [t, 2]`` (time, 0..1) as a filled curve."""
    ax.fill_between(relevance[:, 0], relevance[:, 1], 0.0, color="tab:purple", alpha=0.5, linewidth=0)
    ax.plot(relevance[:, 0], relevance[:, 1], color="tab:purple", linewidth=1.0)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("relevance", fontsize=8)
    ax.tick_params(labelsize=7)
