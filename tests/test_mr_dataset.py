import logging

import numpy as np
import pytest
import torch
from av_media import make_video
from torch.utils.data import DataLoader

from lavis.datasets.audio_features import AudioClipConfig
from lavis.datasets.collate import collate
from lavis.datasets.mr_dataset import MomentRetrievalDataset
from lavis.datasets.processors import (
    BlipVideoEvalProcessor,
    BlipVideoTrainProcessor,
    VideoEvalProcessorConfig,
    VideoTrainProcessorConfig,
)
from lavis.datasets.schema import MomentRecord
from lavis.datasets.video_inputs import VideoInputReader
from lavis.datasets.video_io import VideoDecodeError

T, S = 6, 32
AUDIO = AudioClipConfig(
    sampling_rate=16000,
    clip_len=0.5,
    n_mels=16,
    hop_length=160,
    fft_window_size=256,
    max_length_s=1,
    frequency_min=0.0,
    frequency_max=8000.0,
)
F = AUDIO.num_mel_frames  # 101


def record(qid, vid, duration=6.0, video_file=None):
    return MomentRecord(
        qid=qid,
        vid=vid,
        query=f"query {qid}",
        duration=duration,
        windows=[(1.0, 2.5)],
        video_file=video_file,
        kind="audio",
    )


@pytest.fixture(scope="module")
def video_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("videos")
    make_video(root / "square.mp4", num_frames=60, square_frames=[15, 35], tone=(2.0, 3.0))
    make_video(root / "mute.mp4", num_frames=60, with_audio=False)
    make_video(root / "short.mp4", num_frames=4, tone=(0.0, 0.4))
    (root / "corrupt.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(3000))
    (root / "empty.mp4").write_bytes(b"")
    return root


def dataset(video_root, records, train=False, strict=False):
    processor = (
        BlipVideoTrainProcessor(VideoTrainProcessorConfig(image_size=S))
        if train
        else BlipVideoEvalProcessor(VideoEvalProcessorConfig(image_size=S))
    )
    return MomentRetrievalDataset(
        records, video_root, processor, VideoInputReader(T, AUDIO), train=train, strict=strict
    )


def test_a_sample_has_the_batch_format_without_the_batch_dim(video_root):
    sample = dataset(video_root, [record("a", "square")])[0]
    assert sample["video"].shape == (T, 3, S, S) and sample["video"].dtype == torch.float32
    assert sample["frame_mask"].dtype == torch.bool and sample["frame_mask"].all()
    torch.testing.assert_close(sample["timestamps"], torch.tensor([0.5, 1.5, 2.5, 3.5, 4.5, 5.5]))
    assert sample["audio_features"].shape == (T, F, 16) and sample["audio_features"].dtype == torch.float32
    assert sample["audio_mask"].all()
    # The square (frames 15 and 35 = sampled frames 1 and 3) and the tone (2-3 s = clip 2).
    brightness = sample["video"][:, :, 5:19, 5:19].mean(dim=(1, 2, 3))  # the square at 32 px
    assert (brightness > 1.0).tolist() == [False, True, False, True, False, False]
    loudness = sample["audio_features"].amax(dim=(1, 2))
    assert loudness[2] > loudness[[0, 1, 3, 4, 5]].max() + 30  # dB
    assert (sample["query"], sample["qid"], sample["vid"], sample["kind"]) == ("query a", "a", "square", "audio")
    assert sample["duration"] == 6.0 and sample["windows"] == [(1.0, 2.5)]


def test_short_and_mute_videos_are_padded_and_masked(video_root):
    ds = dataset(video_root, [record("s", "short", duration=0.4), record("m", "mute")])
    short, mute = ds[0], ds[1]
    assert short["frame_mask"].tolist() == [True] * 4 + [False] * 2
    assert short["audio_mask"].tolist() == [True] * 4 + [False] * 2
    assert not short["video"][4:].any() and not short["timestamps"][4:].any()
    assert mute["frame_mask"].all() and not mute["audio_mask"].any()


def test_unreadable_videos_are_skipped_counted_and_named(video_root, caplog):
    records = [
        record("ok", "square"),
        record("gone", "missing"),
        record("bad", "corrupt"),
        record("zero", "empty"),
        record("short", "short"),
    ]
    ds = dataset(video_root, records)
    with caplog.at_level(logging.WARNING, logger="lavis.datasets.mr_dataset"):
        samples = [ds[i] for i in range(len(ds))]
    assert [s is None for s in samples] == [False, True, True, True, False]
    for name in ("missing.mp4", "corrupt.mp4", "empty.mp4"):
        assert name in caplog.text
    # Across DataLoader worker processes, the count arrives with the batches.
    loader = DataLoader(ds, batch_size=2, num_workers=2, collate_fn=ds.collater)
    batches = list(loader)
    assert sum(b["num_skipped"] for b in batches) == 3
    assert sorted(q for b in batches for q in b["qid"]) == ["ok", "short"]
    with pytest.raises(VideoDecodeError, match="corrupt.mp4"):
        dataset(video_root, records, strict=True)[2]


def test_batches_have_the_exact_shapes_and_dtypes(video_root):
    ds = dataset(video_root, [record("a", "square"), record("s", "short"), record("m", "mute")])
    batch = next(iter(DataLoader(ds, batch_size=3, collate_fn=ds.collater)))
    expected = {
        "video": ((3, T, 3, S, S), torch.float32),
        "frame_mask": ((3, T), torch.bool),
        "timestamps": ((3, T), torch.float32),
        "audio_features": ((3, T, F, 16), torch.float32),
        "audio_mask": ((3, T), torch.bool),
        "duration": ((3,), torch.float32),
    }
    for key, (shape, dtype) in expected.items():
        assert (tuple(batch[key].shape), batch[key].dtype) == (shape, dtype), key
    assert batch["qid"] == ["a", "s", "m"] and batch["num_skipped"] == 0
    assert batch["windows"] == [[(1.0, 2.5)]] * 3 and batch["query"][1] == "query s"


def test_collate_pads_mixed_lengths_and_survives_an_all_skipped_batch():
    def sample(t):
        return {
            "video": torch.ones(t, 3, 2, 2),
            "frame_mask": torch.ones(t, dtype=torch.bool),
            "timestamps": torch.arange(t, dtype=torch.float32),
            "audio_features": torch.ones(t, 3, 2),
            "audio_mask": torch.ones(t, dtype=torch.bool),
            "duration": 1.0,
            "query": "q",
            "qid": t,
            "vid": "v",
            "kind": None,
            "windows": [],
        }

    batch = collate([sample(2), None, sample(4)])
    assert batch["video"].shape == (2, 4, 3, 2, 2) and batch["num_skipped"] == 1
    assert batch["frame_mask"].tolist() == [[True, True, False, False], [True] * 4]
    empty = collate([None, None])
    assert empty["num_skipped"] == 2 and empty["qid"] == [] and "video" not in empty


def test_train_randomness_depends_on_seed_epoch_and_index_only(video_root):
    ds = dataset(video_root, [record("a", "square")], train=True)
    first, again = ds[0], ds[0]
    torch.testing.assert_close(first["video"], again["video"], atol=0, rtol=0)
    torch.testing.assert_close(first["timestamps"], again["timestamps"], atol=0, rtol=0)
    # Each sampled frame stays in its interval of the 60 frames (6 intervals of 1 s).
    times = first["timestamps"].numpy()
    assert np.all((times >= np.arange(6) - 1e-6) & (times < np.arange(6) + 1))
    seen = set()
    for epoch in range(6):
        ds.set_epoch(epoch)
        seen.add(tuple(ds[0]["timestamps"].tolist()))
    assert len(seen) > 1


def test_cache_decoded_reads_each_video_once(video_root, monkeypatch):
    calls = []
    real = VideoInputReader.read
    monkeypatch.setattr(VideoInputReader, "read", lambda self, *a, **k: calls.append(k) or real(self, *a, **k))
    processor = BlipVideoTrainProcessor(VideoTrainProcessorConfig(image_size=S))
    cached = MomentRetrievalDataset(
        [record("a", "square"), record("b", "square")],
        video_root,
        processor,
        VideoInputReader(T, AUDIO),
        train=True,
        cache_decoded=True,
    )
    first, second = cached[0], cached[1]
    assert len(calls) == 1 and calls[0]["train"] is False  # one decode, with the eval-style frame choice
    eval_sample = dataset(video_root, [record("a", "square")])[0]
    assert torch.equal(first["timestamps"], eval_sample["timestamps"])
    assert torch.equal(first["audio_features"], second["audio_features"])


def test_video_only_dataset_reads_no_audio(video_root, monkeypatch):
    import lavis.datasets.video_inputs as video_inputs

    monkeypatch.setattr(video_inputs, "read_audio", lambda *a, **k: pytest.fail("audio was read"))
    processor = BlipVideoEvalProcessor(VideoEvalProcessorConfig(image_size=S))
    ds = MomentRetrievalDataset(
        [record("a", "square")], video_root, processor, VideoInputReader(T, AUDIO, with_audio=False)
    )
    batch = collate([ds[0]])
    assert "audio_features" not in batch and "audio_mask" not in batch and batch["video"].shape[1] == T
