"""The timeline PNG's layout: its panels share one time axis and none covers the labels of the
panel above it (each panel used to hide the tick labels of the one above)."""

import numpy as np
import pytest

from lavis.inference.timeline import MAX_THUMBNAILS, THUMBNAIL_HEIGHT, thumbnails, timeline_figure


@pytest.mark.parametrize("relevance", [None, [[t, 0.5 + 0.4 * np.sin(t)] for t in np.arange(0.5, 60, 3.0)]])
def test_no_panel_covers_the_labels_of_the_one_above(relevance):
    rng = np.random.default_rng(0)
    fig = timeline_figure(
        60.0,
        [[12.0, 20.0, 0.8], [40.0, 44.0, 0.3]],
        gt=[[11.0, 19.0]],
        frames=rng.integers(0, 255, (20, 90, 160, 3), dtype=np.uint8),
        frame_times=np.linspace(1.5, 58.5, 20, dtype=np.float32),
        loudness=(np.arange(0.025, 60, 0.05), rng.uniform(-60, -10, 1200)),
        relevance=relevance,
        title="when does the dog bark?",
    )
    renderer = fig.canvas.get_renderer()
    fig.draw(renderer)
    axes = fig.axes
    assert len(axes) == (4 if relevance else 3)
    for upper, lower in zip(axes, axes[1:]):
        drawn = upper.get_tightbbox(renderer)  # the panel with its tick labels and axis labels
        assert drawn.y0 >= lower.get_window_extent(renderer).y1 - 0.5, "a panel covers the labels above it"
    assert all(ax.get_xlim() == (0.0, 60.0) for ax in axes)  # one time axis
    bottom = axes[-1]
    assert bottom.get_xlabel() == "seconds" and any(t.get_text() for t in bottom.get_xticklabels())


def test_the_strip_keeps_at_most_ten_small_thumbnails():
    frames = np.zeros((20, 720, 1280, 3), dtype=np.uint8)
    small, times = thumbnails(frames, np.arange(20, dtype=np.float32))
    assert small.shape == (MAX_THUMBNAILS, THUMBNAIL_HEIGHT, 256, 3) and times.tolist()[:3] == [0.0, 2.0, 4.0]
    few, _ = thumbnails(np.zeros((3, 64, 64, 3), dtype=np.uint8), np.arange(3.0))
    assert few.shape == (3, 64, 64, 3)  # small frames stay as they are
