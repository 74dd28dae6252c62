import numpy as np
import pytest
import torch
from av_media import make_video

from lavis.common.config import load_experiment
from lavis.common.typed import ConfigError
from lavis.datasets.audio_features import AudioClipConfig
from lavis.datasets.collate import frame_tensors
from lavis.datasets.mr_dataset import MomentRetrievalDataset
from lavis.datasets.processors import BlipVideoEvalProcessor, VideoEvalProcessorConfig
from lavis.datasets.schema import MomentRecord
from lavis.datasets.temporal_crop import TemporalCropConfig, apply_crop, draw_crop, maybe_crop
from lavis.datasets.video_inputs import VideoInputReader

ALWAYS = TemporalCropConfig(prob=1.0, min_fraction=0.4)


def draws(windows, duration, cfg=ALWAYS, n=400, seed=0):
    rng = np.random.default_rng(seed)
    return [draw_crop(windows, duration, cfg, rng) for _ in range(n)]


@pytest.mark.parametrize(
    "windows,duration",
    [
        ([(6.0, 8.0)], 24.125),
        ([(0.0, 3.0)], 20.0),
        ([(2.5, 4.5), (10.0, 12.0)], 30.0),  # QVHighlights: every window stays inside the crop
        ([(20.0, 24.125)], 24.125),  # the moment runs to the video's end
    ],
)
def test_every_crop_holds_the_moment_on_whole_seconds_and_is_long_enough(windows, duration):
    crops = [c for c in draws(windows, duration) if c is not None]
    assert len(crops) > 300  # almost always a crop fits
    for c0, c1 in crops:
        assert c0 == int(c0) and (c1 == int(c1) or c1 == duration)
        assert 0 <= c0 <= min(s for s, _ in windows) and max(e for _, e in windows) <= c1 <= duration
        assert c1 - c0 >= ALWAYS.min_fraction * duration - 1e-9
    assert len(set(crops)) > 10  # the moment moves around, which is the point


def test_no_crop_when_off_or_when_none_fits():
    assert all(c is None for c in draws([(6.0, 8.0)], 24.0, TemporalCropConfig(prob=0.0)))
    # A moment at both ends of the video: the only crop is the whole video.
    assert {c for c in draws([(0.0, 20.0)], 20.0)} == {(0, 20.0)}
    # Unlabeled records and windows outside the video are left alone.
    assert draws([], 20.0, n=5) == [None] * 5
    assert draws([(18.0, 22.0)], 20.0, n=5) == [None] * 5


def test_prob_is_the_share_of_cropped_samples():
    cropped = sum(c is not None for c in draws([(6.0, 8.0)], 24.0, TemporalCropConfig(prob=0.3), n=4000))
    assert 0.27 < cropped / 4000 < 0.33


def sample(times, duration=10.0, windows=((3.0, 5.0),)):
    t = len(times)
    pixels = torch.arange(t, dtype=torch.float32).view(t, 1, 1, 1).expand(t, 3, 2, 2).clone()
    mel = torch.arange(t, dtype=torch.float32).view(t, 1, 1).expand(t, 4, 2).clone()
    tensors = frame_tensors(pixels, np.asarray(times), 8, mel, np.ones(t, dtype=bool))
    return {
        **tensors,
        "duration": duration,
        "windows": list(windows),
        "query": "q",
        "qid": "a",
        "vid": "v",
        "kind": None,
    }


def test_a_crop_keeps_the_frames_inside_and_shifts_times_windows_and_duration():
    original = sample([0.5, 1.5, 2.5, 3.5, 4.5, 5.5, 6.5])  # 7 frames, padded to 8
    cropped = apply_crop(original, (2, 6.0))
    assert cropped["frame_mask"].tolist() == [True] * 4 + [False] * 4
    torch.testing.assert_close(cropped["timestamps"], torch.tensor([0.5, 1.5, 2.5, 3.5, 0, 0, 0, 0]))
    assert cropped["video"][:, 0, 0, 0].tolist() == [2, 3, 4, 5, 0, 0, 0, 0]  # frames 2..5, in order
    assert cropped["audio_features"][:, 0, 0].tolist() == [2, 3, 4, 5, 0, 0, 0, 0]  # their clips
    assert cropped["audio_mask"].tolist() == [True] * 4 + [False] * 4
    assert cropped["duration"] == 4.0 and cropped["windows"] == [(1.0, 3.0)]
    assert original["duration"] == 10.0 and original["frame_mask"].sum() == 7  # not modified in place
    assert apply_crop(original, (8, 10.0)) is original  # no frame inside: unchanged


def test_maybe_crop_is_reproducible_from_the_generator():
    s = sample([0.5 + i for i in range(8)])
    a = maybe_crop(s, ALWAYS, np.random.default_rng([0, 3, 7]))
    b = maybe_crop(s, ALWAYS, np.random.default_rng([0, 3, 7]))
    assert (a["duration"], a["windows"]) == (b["duration"], b["windows"])
    assert torch.equal(a["video"], b["video"])


def test_the_train_split_of_a_dataset_crops_and_evaluation_does_not(tmp_path):
    make_video(tmp_path / "v.mp4", num_frames=100, square_frames=range(40, 50), tone=(4.0, 5.0))  # 10 s
    rec = MomentRecord(qid="a", vid="v", query="when?", duration=10.0, windows=[(4.0, 5.0)])
    audio = AudioClipConfig(
        sampling_rate=16000,
        clip_len=0.5,
        n_mels=16,
        hop_length=160,
        fft_window_size=256,
        max_length_s=1,
        frequency_min=0.0,
        frequency_max=8000.0,
    )
    processor = BlipVideoEvalProcessor(VideoEvalProcessorConfig(image_size=32))

    def build(train):
        return MomentRetrievalDataset(
            [rec],
            tmp_path,
            processor,
            VideoInputReader(10, audio),
            train=train,
            cache_decoded=True,
            temporal_crop=ALWAYS,
        )

    train = build(True)
    seen = set()
    for epoch in range(20):
        train.set_epoch(epoch)
        s = train[0]
        ((start, end),) = s["windows"]
        assert end - start == 1.0 and start >= 0 and end <= s["duration"] <= 10.0
        shown = s["timestamps"][s["frame_mask"]]
        assert shown.min() >= 0 and shown.max() < s["duration"]
        # The square is still on the frames of the moment, wherever the crop put it.
        inside = (shown >= start) & (shown < end)
        bright = s["video"][s["frame_mask"]][:, :, 5:19, 5:19].mean(dim=(1, 2, 3)) > 1.0
        assert bright.tolist() == inside.tolist()
        seen.add(start)
    assert len(seen) > 3
    ev = build(False)[0]
    assert ev["duration"] == 10.0 and ev["windows"] == [(4.0, 5.0)] and ev["frame_mask"].all()


def test_the_crop_is_a_validated_dataset_key():
    cfg = load_experiment("configs/experiments/synthetic/sms_tiny.yaml", [])
    assert cfg.datasets["synthetic_av"].temporal_crop.prob > 0  # the demo recipe uses it
    with pytest.raises((ConfigError, ValueError), match="temporal_crop.prob"):
        load_experiment("configs/experiments/synthetic/sms_tiny.yaml", ["datasets.synthetic_av.temporal_crop.prob=1.5"])
