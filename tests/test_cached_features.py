"""Cached frozen features: mr_data.cache_features writes them, a dataset with use_cached_features
reads them, and the tiny model gives the same loss from them as from the videos."""

import dataclasses
import json

import pytest
import torch

from lavis.common.config import load_experiment
from lavis.common.registry import registry
from lavis.datasets.collate import collate
from lavis.datasets.dataset_config import SplitPaths
from lavis.datasets.feature_cache import FeatureCache, FeatureCacheError
from lavis.datasets.temporal_crop import TemporalCropConfig
from lavis.datasets.video_io import VideoDecodeError
from lavis.models.blip2_mr.model import Blip2MR
from lavis.runners.evaluation import make_loader
from mr_data.cache_features import main as cache_main
from mr_data.synthetic import generate_dataset
from mr_data.synthetic_plan import SyntheticSpec

SPEC = SyntheticSpec(
    min_duration=6.0, max_duration=8.0, max_event_len=3, max_events=2, val_fraction=0.25, test_fraction=0.25
)
EXPERIMENT = """
model:
  arch: blip2_mr
  model_type: tiny
  freeze_vit: true
  freeze_vit_ln: true
  freeze_qformer: true
  freeze_audio: true
datasets:
  synthetic_av:
    root: {root}
    num_frames: 4
    vis_processor:
      train: {{name: blip2_video_train, image_size: 64}}
      eval: {{name: blip_video_eval, image_size: 64}}
    audio: {{sampling_rate: 16000, clip_len: 1.5, n_mels: 32, hop_length: 320, fft_window_size: 512,
            max_length_s: 2, frequency_max: 8000.0}}
    cached_features_dir: {cache}
run:
  device: cpu
  amp: off
  seed: 7
  batch_size_eval: 4
  num_workers: 0
"""


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("synthetic")
    generate_dataset(root, num_videos=6, seed=3, spec=SPEC, workers=1)
    return root


def write_experiment(tmp_path, root, cache="features"):
    path = tmp_path / "exp.yaml"
    path.write_text(EXPERIMENT.format(root=root, cache=tmp_path / cache))
    return path


def run_cache(exp, *args):
    assert cache_main(["--cfg-path", str(exp), "--no-progress", *args]) == 0


def datasets_of(exp, split, cached, **changes):
    cfg = load_experiment(exp)
    ds_cfg = cfg.datasets["synthetic_av"]
    only = SplitPaths(**{s: getattr(ds_cfg.annotations, s) if s == split else None for s in ("train", "val", "test")})
    ds_cfg = dataclasses.replace(ds_cfg, annotations=only, use_cached_features=cached, **changes)
    return registry.get("builder", "synthetic_av")(ds_cfg).build_datasets()[split]


def seeded_model(exp, *options):
    cfg = load_experiment(exp, list(options))
    torch.manual_seed(cfg.run.seed)  # the same random weights as the cache command's model
    return Blip2MR.from_config(cfg.model)


def whole(dataset):
    return collate([dataset[i] for i in range(len(dataset))])


def test_cached_and_live_give_the_same_loss_and_predictions(data_root, tmp_path, capsys):
    exp = write_experiment(tmp_path, data_root)
    run_cache(exp, "--split", "test", "--dtype", "float32")
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    live, cached = datasets_of(exp, "test", False), datasets_of(exp, "test", True)
    model = seeded_model(exp)
    assert summary["frozen_key"] == model.frozen_key and summary["failed"] == 0
    live_batch, cached_batch = whole(live), whole(cached)
    assert "video" not in cached_batch and "audio_features" not in cached_batch
    assert cached_batch["qformer_tokens"].shape == (len(cached), 4, 4, 64)

    live_loss, cached_loss = model(live_batch)["loss"], model(cached_batch)["loss"]
    assert torch.equal(live_loss, cached_loss)  # fp32 on CPU: exactly the same numbers
    cached_loss.backward()
    assert all(p.grad is not None for p in model.fusion.parameters())  # the fusion still trains
    model.eval()
    assert [p.windows for p in model.predict(live_batch)] == [p.windows for p in model.predict(cached_batch)]

    # bf16 storage: the same loss within bf16 rounding of the features.
    run_cache(exp, "--split", "test", "--dtype", "bfloat16", "--out", str(tmp_path / "bf16"))
    bf16 = whole(datasets_of(exp, "test", True, cached_features_dir=str(tmp_path / "bf16")))
    assert bf16["qformer_tokens"].dtype == torch.bfloat16
    model.train()
    torch.testing.assert_close(model(bf16)["loss"], live_loss, rtol=2e-2, atol=0)


def test_jittered_views_resume_and_corruption(data_root, tmp_path, capsys):
    exp = write_experiment(tmp_path, data_root)
    args = ["--split", "train", "--jitter", "2", "--shard-size", "1", "--dtype", "float32"]
    run_cache(exp, *args)
    cache_dir = tmp_path / "features" / "train"
    cache = FeatureCache(cache_dir)
    vids = sorted(cache.rows)
    assert cache.meta.views == 3 and len(cache.meta.shards) == len(vids) >= 2
    views = [cache.read(vids[0], v) for v in range(3)]
    assert not torch.equal(views[0]["qformer_tokens"], views[1]["qformer_tokens"])  # other frames/crops
    assert torch.equal(views[0]["timestamps"], cache.read(vids[0], 0)["timestamps"])

    train = datasets_of(exp, "train", True)
    picked = set()
    for epoch in range(6):
        train.set_epoch(epoch)
        picked.update(tuple(train[i]["timestamps"].tolist()) for i in range(len(train)))
    assert len(picked) > len({r.vid for r in train.records})  # training sees several views

    # The temporal crop works on cached features too: fewer tokens, shifted times and windows.
    cropping = datasets_of(exp, "train", True, temporal_crop=TemporalCropConfig(prob=1.0, min_fraction=0.3))
    cropped = [cropping[i] for i in range(len(cropping))]
    assert any(s["duration"] < r.duration for s, r in zip(cropped, cropping.records))
    for s, r in zip(cropped, cropping.records):
        shift = r.windows[0][0] - s["windows"][0][0]
        assert shift == int(shift) >= 0 and s["duration"] <= r.duration - shift + 1e-6
        assert s["qformer_tokens"][~s["frame_mask"]].abs().sum() == 0  # re-padded with zeros
        assert s["timestamps"][s["frame_mask"]].max() < s["duration"]

    # Persistent DataLoader workers see each new epoch (shared memory), as the main process does.
    sampler = list(range(len(train)))
    loader = make_loader(train, sampler, len(train), num_workers=1, pin_memory=False, persistent_workers=True)
    for epoch in (0, 1, 2):
        train.set_epoch(epoch)
        expected = [train[i]["timestamps"] for i in sampler]
        assert all(torch.equal(a, b) for a, b in zip(next(iter(loader))["timestamps"], expected))

    capsys.readouterr()
    run_cache(exp, *args)  # everything is there: nothing is recomputed
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["shards_written"] == 0

    shard = cache_dir / cache.meta.shards[1].file
    data = bytearray(shard.read_bytes())
    data[-5] ^= 0xFF
    shard.write_bytes(bytes(data))
    with pytest.raises(FeatureCacheError, match=shard.name):
        FeatureCache(cache_dir)
    run_cache(exp, *args)  # the corrupt shard is recomputed, the others kept
    rerun = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert (rerun["shards_written"], rerun["shards_kept"]) == (1, len(vids) - 1)
    recomputed = FeatureCache(cache_dir).read(vids[1], 2)["qformer_tokens"]
    assert torch.equal(recomputed, cache.read(vids[1], 2)["qformer_tokens"])


def test_the_model_refuses_features_it_did_not_make(data_root, tmp_path):
    exp = write_experiment(tmp_path, data_root)
    run_cache(exp, "--split", "val")
    batch = whole(datasets_of(exp, "val", True))
    torch.manual_seed(123)
    other = Blip2MR.from_config(load_experiment(exp).model)
    with pytest.raises(ValueError, match="recompute them"):
        other(batch)
    trainable_qformer = seeded_model(exp, "model.freeze_qformer=false")
    with pytest.raises(ValueError, match="freeze_qformer: false"):
        trainable_qformer(batch)
    with pytest.raises(ValueError, match="other dataset settings.*num_frames"):
        datasets_of(exp, "val", True, num_frames=5)
    with pytest.raises(FeatureCacheError, match="no index.json.*--split test"):
        datasets_of(exp, "test", True)
    assert cache_main(["--cfg-path", str(exp), "--split", "val", "--options", "model.freeze_vit_ln=false"]) == 2


def test_unreadable_videos_are_listed_and_skipped(data_root, tmp_path, capsys):
    root = tmp_path / "data"
    root.mkdir()
    for name in ("train.jsonl", "val.jsonl", "test.jsonl"):
        (root / name).write_bytes((data_root / name).read_bytes())
    (root / "videos").mkdir()
    for video in (data_root / "videos").iterdir():
        (root / "videos" / video.name).write_bytes(video.read_bytes())
    exp = write_experiment(tmp_path, root)
    records = datasets_of(exp, "test", False).records
    (root / "videos" / f"{records[0].vid}.mp4").write_bytes(b"not a video")

    run_cache(exp, "--split", "test")
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["failed"] == 1
    batch = whole(datasets_of(exp, "test", True))
    skipped = [r for r in records if r.vid == records[0].vid]
    assert batch["num_skipped"] == len(skipped) and records[0].qid not in batch["qid"]
    assert len(batch["qid"]) == len(records) - len(skipped) > 0
    strict = datasets_of(exp, "test", True, strict=True)
    with pytest.raises(VideoDecodeError, match=records[0].vid):
        strict[0]
