"""Long videos at their extremes: the longest video of each real annotation file of the new
benchmarks (UnAV-100 60 s, ActivityNet Captions 745.5 s, TACoS up to 1,402.2 s) goes through the
dataset of its shipped experiment (60 frames, 2 s clips; UnAV-100: 25 frames, 1.7 s clips),
on a generated video of that duration at 16 px, 1 fps: the frames are the sampled ones and show
the second their timestamp says, the windows and duration are the annotation's, the audio clips
hold the sound around their frame up to the video's end, and every window has a frame whose
saliency target marks it. The prompt of such a video holds every frame's timestamp, as the
reference layout and the built-in tokenizer write numbers past 200.

The real files are read from ``../shared/data`` (skipped when absent) through the converters a
user runs. The generated videos carry PCM sound: AAC would cost ~4 s of encoding per 20 minutes
(the AAC path of long videos trains in tests/test_shipped_configs.py, at 200-400 s).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pytest
import torch
from av_media import CLOCK_TONES, clock_second, make_clock_video
from helpers.t5_tokenizer import write_t5_tokenizer

from lavis.common.config import REPO_ROOT, load_experiment
from lavis.datasets.frame_sampling import sample_frame_indices
from lavis.datasets.processors import CLIP_MEAN, CLIP_STD
from lavis.datasets.schema import MomentRecord, load_annotations
from lavis.models.blip2_mr.prompt import FRAME, PromptBuilder
from lavis.models.blip2_mr.text_config import PromptConfig
from lavis.models.blip2_mr.tokenizer import BuiltinTokenizer, PretrainedTokenizer
from mr_data.convert import convert_file
from mr_data.event_database import convert_event_database

SHARED = REPO_ROOT.parent / "shared" / "data"
SAMPLE_RATE = 8000  # of the generated sound


@dataclass(frozen=True)
class RealFile:
    path: str  # under ../shared/data
    benchmark: str  # the experiment folder and dataset name
    longest: float  # its longest video, seconds (the brief's figures)


REAL_FILES = [
    RealFile("unav100/unav100_annotations.json", "unav100", 60.0),
    RealFile("activitynet_captions/mrblip/val.json", "anet", 745.5),
    RealFile("activitynet_captions/mrblip/test.json", "anet", 745.5),
    RealFile("activitynet_captions/lighthouse/activitynet_val_release.jsonl", "anet", 745.5),
    RealFile("tacos/tacos_train_release.jsonl", "tacos", 1402.2),
    RealFile("tacos/tacos_val_release.jsonl", "tacos", 928.2),
    RealFile("tacos/tacos_test_release.jsonl", "tacos", 778.6),
]


def converted(real: RealFile, out: Path) -> list[MomentRecord]:
    """The file's records as the benchmark's converter writes them."""
    source = SHARED / real.path
    if not source.is_file():
        pytest.skip(f"real annotation file not found: {source}")
    if real.benchmark == "unav100":
        subsets = ("train", "validation", "test")
        return [r for s in subsets for r in convert_event_database(source, "unav100", s, out / f"{s}.jsonl")["all"]]
    convert_file(source, out / "all.jsonl", skip_bad=True)  # the reference's test.json: 3 bad windows
    return load_annotations(out / "all.jsonl")


def longest_video(records: list[MomentRecord]) -> list[MomentRecord]:
    """The records of the longest video: the query whose window ends last, and the shortest window."""
    duration = max(r.duration for r in records)
    mine = [r for r in records if r.duration == duration]
    last = max(mine, key=lambda r: max(e for _, e in r.windows))
    shortest = min(mine, key=lambda r: min(e - s for s, e in r.windows))
    return [last] if shortest is last else [last, shortest]


def shown_seconds(video: torch.Tensor) -> list[int]:
    """The second each processed frame ``[T, 3, H, W]`` shows (the clock's colour, un-normalized)."""
    mean, std = torch.tensor(CLIP_MEAN).view(1, 3), torch.tensor(CLIP_STD).view(1, 3)
    rgb = (video.mean(dim=(2, 3)) * std + mean) * 255.0
    return [clock_second(px) for px in rgb.numpy()]


def pure_tones(clip_len: float) -> np.ndarray:
    """``[len(CLOCK_TONES), L]``: a clip of each tone alone, at the generated sound's rate."""
    t = np.arange(int(round(clip_len * SAMPLE_RATE))) / SAMPLE_RATE
    return np.stack([0.5 * np.sin(2 * np.pi * f * t) for f in CLOCK_TONES]).astype(np.float32)


def loudest_bins(log_mel: torch.Tensor) -> list[int]:
    """The mel bin with the most energy over time, per clip of ``[t, F, n_mels]``."""
    return log_mel.mean(dim=1).argmax(dim=-1).tolist()


def expected_targets(windows, times: np.ndarray) -> np.ndarray:
    """Saliency targets by the rule of lavis/datasets/saliency_targets.py (no clip scores here)."""
    targets = np.zeros(len(times))
    for start, end in windows:
        inside = (times >= start) & (times <= end)
        targets[inside] = 1.0
        if not inside.any():
            targets[np.argmin(np.abs(times - (start + end) / 2))] = 1.0
    return targets


@pytest.mark.parametrize("real", REAL_FILES, ids=lambda f: f.path)
def test_the_longest_video_of_each_real_file_through_the_dataset(real, tmp_path):
    records = converted(real, tmp_path / "converted")
    assert max(r.duration for r in records) == pytest.approx(real.longest, abs=0.05)
    picked = longest_video(records)
    duration = picked[0].duration
    seconds = int(round(duration))  # frames at 0, 1, ... seconds-1
    make_clock_video(tmp_path / "data" / "videos" / "longest.mov", duration, SAMPLE_RATE)
    picked = [replace(r, video_file="longest.mov") for r in picked]
    # The shipped experiment's dataset (frames per video, clip length, frame size), its sound read
    # at the generated track's 8 kHz: resampling 23 minutes to 48 kHz costs ~2 s per read.
    experiment = load_experiment(
        REPO_ROOT / f"configs/experiments/{real.benchmark}/sms.yaml",
        [
            f"datasets.{real.benchmark}.audio.sampling_rate={SAMPLE_RATE}",
            f"datasets.{real.benchmark}.audio.frequency_max=4000",
        ],
    )
    cfg = replace(experiment.datasets[real.benchmark], root=str(tmp_path / "data"))
    num_frames = cfg.num_frames
    tone_bins = loudest_bins(cfg.reader().log_mel(pure_tones(cfg.audio.clip_len)))
    assert len(set(tone_bins)) == len(CLOCK_TONES)  # each second's tone has its own mel bin

    for train in (False, True):
        dataset = cfg.live_dataset(picked, train=train)
        for index, record in enumerate(picked if not train else picked[:1]):
            sample = dataset[index]
            times = sample["timestamps"].numpy().astype(np.float64)
            # Frames: the sampled ones (eval: the middle of T equal intervals; train: one in each),
            # each showing the second its timestamp says, up to the video's last interval.
            assert sample["video"].shape == (num_frames, 3, 224, 224) and bool(sample["frame_mask"].all())
            if train:
                bounds = np.arange(num_frames + 1) * seconds // num_frames
                assert ((times >= bounds[:-1]) & (times < bounds[1:])).all()
            else:
                assert times.tolist() == sample_frame_indices(seconds, num_frames, train=False).tolist()
            assert shown_seconds(sample["video"]) == times.astype(int).tolist()
            assert times[-1] >= seconds - seconds / num_frames
            # Windows and duration: the annotation's, inside the video.
            assert sample["windows"] == [tuple(w) for w in record.windows] and sample["duration"] == duration
            assert all(0 <= s < e <= duration for s, e in record.windows)
            # Audio: every clip lies in the track and is the sound around its frame (its
            # second's tone), to the end of a 23-minute track.
            assert bool(sample["audio_mask"].all())
            heard = loudest_bins(sample["audio_features"])
            assert heard == [tone_bins[int(t) % len(CLOCK_TONES)] for t in times]
            # Saliency: 1 at every frame inside a window, and a window between two frames marks
            # the frame nearest its centre; 0 elsewhere.
            targets = sample["saliency_targets"].numpy()
            assert targets.tolist() == expected_targets(record.windows, times).tolist()
            assert all(targets[np.argmin(np.abs(times - (s + e) / 2))] == 1.0 for s, e in record.windows)


@pytest.fixture(scope="module")
def t5_tokenizer(tmp_path_factory) -> PretrainedTokenizer:
    return PretrainedTokenizer(write_t5_tokenizer(tmp_path_factory.mktemp("t5") / "tokenizer"))


@pytest.mark.parametrize("duration", [60.0, 745.5, 1402.2])
def test_the_prompt_of_the_longest_videos_holds_every_timestamp(duration, t5_tokenizer):
    """At full size (60 frames x 32 tokens), in the reference layout (a Flan-T5-style tokenizer)
    and the plain one (the built-in tokenizer): numbers past 200 are written as the tokenizer
    splits them, the same in any batch, and no timestamp is lost."""
    times = sample_frame_indices(int(round(duration)), 60, train=False).astype(float)
    tokens_per_frame, query = 32, "the person opens the door"
    reference = PromptBuilder(PromptConfig(layout="reference"), t5_tokenizer)
    sample = reference.encoder_sample(times.tolist(), duration, query, tokens_per_frame)
    numbers = reference.reference_numbers
    assert sample.ids.count(FRAME) == 60 * tokens_per_frame
    for t, ids in zip(times, sample.timestamp_ids):
        value = int(round(t))  # half to even, as the reference rounds; whole seconds here
        # The reference replaces split numbers below 200 only; past 200 a number is its pieces.
        written = numbers.replacements.get(value, value)
        assert t5_tokenizer.decode(ids).strip() == str(written) and (value < 200 or written == value)
    head = [i for t in sample.timestamp_ids for i in [FRAME] * tokens_per_frame + t]
    tail = [numbers.separator_id, *numbers.ids(int(round(duration))), numbers.sentinel_id]
    assert sample.ids == head + tail + reference.prompt_ids(query)
    assert len(reference.prompt_ids(query)) <= reference.cfg.max_text_tokens

    # The built-in tokenizer writes each integer up to max_number as one token and longer ones
    # digit by digit; in the plain layout the encoder and the target spell a number alike.
    for max_number, pieces in ((300, None), (int(duration) + 1, 1)):
        plain = PromptBuilder(PromptConfig(layout="plain"), BuiltinTokenizer(max_number=max_number))
        sample = plain.encoder_sample(times.tolist(), duration, query, tokens_per_frame)
        assert [plain.tokenizer.decode(ids) for ids in sample.timestamp_ids] == [str(int(t)) for t in times]
        if pieces is not None:
            assert all(len(ids) == pieces for ids in sample.timestamp_ids)
        window = (times[-3], times[-1])
        target = plain.tokenizer.decode(plain.target_ids([window], duration))
        assert target == f"[[{int(window[0])}, {int(window[1])}]]"
