"""Long videos without a trained model: frame sampling inside a time span, the chunk / clock /
NMS arithmetic, and the whole windowed path on a real long video with a fake model that finds a
bright square."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from av_media import SQUARE, make_video

from lavis.common.windows import temporal_iou
from lavis.datasets.audio_features import AudioClipConfig
from lavis.datasets.processors import BlipVideoEvalProcessor, VideoEvalProcessorConfig
from lavis.datasets.video_inputs import VideoInputReader
from lavis.datasets.video_io import VideoDecodeError, read_frames
from lavis.inference.long_video import (
    STRETCH,
    Chunk,
    chunk_spans,
    merge_chunk_windows,
    non_maximum_suppression,
    to_video_clock,
)
from lavis.inference.predictor import PredictConfig, Predictor
from lavis.inference.video import VideoReader
from lavis.models.blip2_mr.answer import ScoredWindows

AUDIO = AudioClipConfig(
    sampling_rate=16000,
    clip_len=1.0,
    n_mels=32,
    hop_length=512,
    fft_window_size=512,
    max_length_s=1,
    frequency_max=8000.0,
)


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return make_video(tmp_path_factory.mktemp("span") / "clip.mp4", num_frames=60, fps=10, gop=12)


@pytest.mark.parametrize("backend", ["pyav", "decord"])
def test_read_frames_samples_inside_a_span_with_the_datasets_rule(clip, backend):
    if backend == "decord":
        pytest.importorskip("decord")
    got = read_frames(clip, 4, backend, span=(2.0, 4.0))  # frames 20..39: intervals of 5, middles
    assert got.indices.tolist() == [22, 27, 32, 37]
    np.testing.assert_allclose(got.timestamps, [2.2, 2.7, 3.2, 3.7], atol=1e-4)  # still the file's clock
    whole = read_frames(clip, 4, backend, span=(0.0, 100.0))
    assert whole.indices.tolist() == read_frames(clip, 4, backend).indices.tolist()
    with pytest.raises(VideoDecodeError, match=r"no video frame in \[7.000, 9.000\)"):
        read_frames(clip, 4, backend, span=(7.0, 9.0))
    with pytest.raises(ValueError, match="start < end"):
        read_frames(clip, 4, backend, span=(3.0, 3.0))


def test_chunks_cover_the_video_at_the_span_with_the_overlap():
    assert chunk_spans(8.0, 10.0) == [Chunk(0.0, 8.0)]  # fits: the whole video, as trained
    chunks = chunk_spans(35.0, 10.0, 0.5)
    assert [c.start for c in chunks] == [0, 5, 10, 15, 20, 25] and chunks[-1].end == 35.0
    assert [c.start for c in chunk_spans(31.0, 10.0, 0.5)] == [0, 5, 10, 15, 20, 21]  # last one ends at the end
    assert [c.start for c in chunk_spans(31.0, 10.0, 0.0)] == [0, 10, 20, 21]
    ten_minutes = chunk_spans(600.0, 30.0, 0.5)
    assert len(ten_minutes) == 39 and all(c.length == 30.0 for c in ten_minutes) and ten_minutes[-1].end == 600.0
    with pytest.raises(ValueError, match="overlap"):
        chunk_spans(35.0, 10.0, 1.0)


def test_the_last_chunk_ends_the_grid_instead_of_repeating_it():
    # The 60.06 s video at a 30 s span: no near-copy 30.06-60.06 after 30-60.
    assert chunk_spans(60.06, 30.0) == [Chunk(0, 30), Chunk(15, 45), Chunk(30, 60.06)]
    assert chunk_spans(31.4, 30.0) == [Chunk(0, 31.4)]  # within 5 % of the span: one chunk
    # Further from the grid than STRETCH: one more chunk of the span, ending at the end.
    assert chunk_spans(64.0, 30.0) == [Chunk(0, 30), Chunk(15, 45), Chunk(30, 60), Chunk(34, 64)]
    for duration in np.arange(30.0, 200.0, 0.37):
        chunks = chunk_spans(float(duration), 30.0, 0.5)
        assert chunks[0].start == 0 and chunks[-1].end == pytest.approx(duration)
        assert all(b.start - a.start <= 15.0 + 1e-6 for a, b in zip(chunks, chunks[1:]))  # at least the overlap
        assert all(30.0 - 1e-6 <= c.length <= 30.0 * (1 + STRETCH) + 1e-6 for c in chunks[1:])
        # No two chunks nearly the same (the near-duplicate had IoU 0.996): starts >= STRETCH * span apart.
        bound = (1 - STRETCH) / (1 + STRETCH)  # 0.905
        assert all(temporal_iou((a.start, a.end), (b.start, b.end)) <= bound for a, b in zip(chunks, chunks[1:]))
        assert all(round(c.start, 6) == c.start for c in chunks)  # no 14.549999999999999


def test_a_local_window_maps_to_the_video_clock_and_nms_keeps_the_better_duplicate():
    assert to_video_clock([[2.0, 4.0, 0.9]], Chunk(20.0, 30.0)) == [[22.0, 24.0, 0.9]]
    assert to_video_clock([[8.0, 12.0, 0.5], [11.0, 12.0, 0.4]], Chunk(20.0, 30.0)) == [[28.0, 30.0, 0.5]]
    kept = non_maximum_suppression([[0, 1, 0.3], [22.2, 24, 0.5], [22, 24, 0.9]], iou_threshold=0.5)
    assert kept == [[22, 24, 0.9], [0, 1, 0.3]]
    # The same moment seen by two overlapping chunks (local [7, 9] in [20, 30], [2, 4] in [25, 35]).
    merged = merge_chunk_windows([[[7, 9, 0.8], [0, 1, 0.1]], [[2, 4, 0.7]]], [Chunk(20, 30), Chunk(25, 35)], 0.5, 10)
    assert merged == [[27, 29, 0.8], [20, 21, 0.1]]
    assert merge_chunk_windows([[[7, 9, 0.8]]] * 3, [Chunk(20, 30)] * 3, 0.5, max_windows=1) == [[27, 29, 0.8]]


def test_nms_drops_a_window_whose_iou_equals_the_threshold():
    # Whole-second windows make an IoU of exactly 0.5 common: [10, 16] and [12, 18] share 4 of 8 s.
    assert non_maximum_suppression([[10, 16, 0.9], [12, 18, 0.8]], iou_threshold=0.5) == [[10, 16, 0.9]]
    assert non_maximum_suppression([[0, 4, 0.9], [0, 2, 0.8]], iou_threshold=0.5) == [[0, 4, 0.9]]
    # Just below the threshold both stay.
    assert non_maximum_suppression([[0, 10, 0.9], [0, 4.9, 0.8]], iou_threshold=0.5) == [[0, 10, 0.9], [0, 4.9, 0.8]]


class SquareFinder:
    """Stands in for the model: a window around the frames that show the bright square (score
    0.9), else a decoy at the chunk's first second (0.2). Its "towers" give each frame the
    square's brightness; it checks what the model is shown."""

    frozen_key = "square"

    def __init__(self):
        self.durations = []

    def encode_frozen(self, batch):
        square = batch["video"][:, :, :, SQUARE[0], SQUARE[1]].mean(dim=(2, 3, 4))  # [B, T]
        return {"qformer_tokens": square[:, :, None, None], "audio_embeds": torch.zeros(*square.shape, 1)}

    def predict(self, batch):
        out = []
        assert batch["feature_key"] == [self.frozen_key] * len(batch["query"])
        for b in range(len(batch["query"])):
            real = batch["frame_mask"][b]
            times = batch["timestamps"][b][real]
            duration = float(batch["duration"][b])
            assert float(times.min()) >= 0 and float(times.max()) < duration  # chunk-relative times
            self.durations.append(duration)
            square = batch["qformer_tokens"][b][real].flatten()  # [t]
            lit = times[square > 0.5]
            if len(lit):
                window = [float(lit.min()) - 0.5, float(lit.max()) + 0.5, 0.9]
            else:
                window = [0.0, 1.0, 0.2]
            out.append(ScoredWindows([window], False, [f"[[{window[0]:g}, {window[1]:g}]]"]))
        return out


def test_a_long_video_is_predicted_chunk_by_chunk_and_merged_on_its_own_clock(tmp_path, monkeypatch):
    import lavis.datasets.video_inputs as video_inputs

    opened = []  # the video is opened and indexed once, its audio decoded once, for all 6 chunks
    for name in ("open_video", "read_audio"):
        real = getattr(video_inputs, name)
        monkeypatch.setattr(video_inputs, name, lambda *a, _real=real, _name=name: opened.append(_name) or _real(*a))
    # 35 s at 4 fps; the square shows from 27 s to 29 s (frames 108-115), near the end.
    video = make_video(tmp_path / "long.mp4", num_frames=140, fps=4, square_frames=range(108, 116), gop=8)
    reader = VideoReader(VideoInputReader(10, AUDIO), BlipVideoEvalProcessor(VideoEvalProcessorConfig(image_size=64)))
    model = SquareFinder()
    predictor = Predictor(
        model, reader, span=10.0, settings=PredictConfig(span=10.0, batch_size=4), info={"run": "fake"}, max_windows=10
    )
    [result] = predictor.predict(video, ["when is the square shown?"], gt=[[[27.0, 29.0]]], timeline_dir=tmp_path)

    assert result["duration"] == pytest.approx(35.0, abs=0.01) and result["span"] == 10.0
    assert [(c["start"], c["end"]) for c in result["chunks"]] == [(s, s + 10.0) for s in (0, 5, 10, 15, 20, 25)]
    assert model.durations == [10.0] * 6  # each chunk is shown as a 10 s video of its own
    assert opened == ["open_video", "read_audio"]
    # Chunks [20, 30] and [25, 35] both find the square (local [7, 9] and [2, 4]); NMS keeps one.
    assert result["windows"][0] == pytest.approx([27.0, 29.0, 0.9])
    assert sorted(w[0] for w in result["windows"][1:]) == [0, 5, 10, 15]  # the other chunks' decoys
    assert result["iou"] == pytest.approx(1.0)
    assert [c["text"] for c in result["chunks"][4:]] == ["[[7, 9]]", "[[2, 4]]"]  # on each chunk's own clock
    assert "text" not in result
    assert result["audio"] is True
    assert json.loads(json.dumps(result)) == result  # plain JSON types only
    assert Path(result["timeline"]).name == "long_q0.png" and Path(result["timeline"]).stat().st_size > 10_000
