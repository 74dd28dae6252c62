import logging

import numpy as np
import pytest
from av_media import make_video
from omegaconf import OmegaConf

from lavis.common.config import _preset_layer, load_experiment
from lavis.common.registry import registry
from lavis.common.typed import ConfigError, from_dict
from lavis.datasets.builders import SyntheticAVBuilder, SyntheticAVConfig
from lavis.datasets.schema import MomentRecord, save_annotations

SMALL_AUDIO = {
    "sampling_rate": 16000,
    "clip_len": 0.5,
    "n_mels": 16,
    "hop_length": 160,
    "fft_window_size": 256,
    "max_length_s": 1,
    "frequency_min": 0.0,
    "frequency_max": 8000.0,
}
SMALL = {
    "num_frames": 4,
    "audio": SMALL_AUDIO,
    "vis_processor": {
        "train": {"name": "blip2_video_train", "image_size": 16},
        "eval": {"name": "blip_video_eval", "image_size": 16},
    },
}
ENV = {"charades_sta": "SMS_CHARADES_ROOT", "qvh": "SMS_QVH_ROOT", "synthetic_av": "SMS_SYNTHETIC_ROOT"}


def config(**fields) -> SyntheticAVConfig:
    return from_dict(SyntheticAVConfig, {**SMALL, **fields}, "test")


@pytest.mark.parametrize("name", sorted(ENV))
def test_default_yaml_matches_the_typed_defaults_and_reads_the_env(name, monkeypatch):
    builder = registry.get("builder", name)
    monkeypatch.delenv(ENV[name], raising=False)
    source, body = _preset_layer(builder.DATASET_CONFIG_DICT["default"], "datasets", name)
    assert (
        from_dict(builder.config_class, OmegaConf.to_container(OmegaConf.create(body), resolve=True), source)
        == builder.config_class()
    )
    monkeypatch.setenv(ENV[name], "/data/elsewhere")
    assert OmegaConf.create(body).root == "/data/elsewhere"


@pytest.fixture
def layout(tmp_path):
    """root/{train,val,test}.jsonl + root/videos/ with one short video per split."""
    for split, vid in (("train", "a"), ("val", "b"), ("test", "c")):
        make_video(tmp_path / "videos" / f"{vid}.mp4", num_frames=20, tone=(0.5, 1.0))
        save_annotations(
            [MomentRecord(qid=f"{vid}0", vid=vid, query="q", duration=2.0, windows=[(0.5, 1.0)])],
            tmp_path / f"{split}.jsonl",
        )
    return tmp_path


def test_builds_each_split_with_its_processor_and_sampling(layout):
    datasets = SyntheticAVBuilder(config(root=str(layout), annotations={"val": None})).build_datasets()
    assert sorted(datasets) == ["test", "train"]
    assert datasets["train"].train and not datasets["test"].train
    assert type(datasets["train"].processor).__name__ == "BlipVideoTrainProcessor"
    assert type(datasets["test"].processor).__name__ == "BlipVideoEvalProcessor"
    sample = datasets["test"][0]
    assert sample["video"].shape == (4, 3, 16, 16) and sample["audio_features"].shape == (4, 101, 16)
    assert sample["audio_mask"].all() and sample["qid"] == "c0"


def test_missing_folder_files_and_annotations_fail_at_build_time(layout, caplog):
    with pytest.raises(FileNotFoundError, match="video folder not found"):
        SyntheticAVBuilder(config(root=str(layout / "nowhere"))).build_datasets()
    extra = [MomentRecord(qid=i, vid=f"gone{i}", query="q", duration=2.0, windows=[(0.0, 1.0)]) for i in range(7)]
    save_annotations(extra, layout / "train.jsonl")
    with pytest.raises(FileNotFoundError, match=r"train: 7 of 7 videos missing .*gone0.mp4.* and 2 more"):
        SyntheticAVBuilder(config(root=str(layout))).build_datasets()
    with caplog.at_level(logging.WARNING, logger="lavis.datasets.builders"):
        datasets = SyntheticAVBuilder(config(root=str(layout), allow_missing_videos=True)).build_datasets()
    assert "7 of 7 videos missing" in caplog.text
    assert datasets["train"][0] is None  # skipped when loaded, counted by the collate
    with pytest.raises(ValueError, match="annotation file not found"):
        SyntheticAVBuilder(
            config(root=str(layout), allow_missing_videos=True, annotations={"test": "nope.jsonl"})
        ).build_datasets()


def test_bad_processor_or_unknown_key_fails_when_the_config_loads():
    with pytest.raises(ConfigError, match="registered processors"):
        config(vis_processor={"train": {"name": "blip2_image_train"}})
    with pytest.raises(ConfigError, match="valid keys"):
        config(num_frame=8)


def test_an_experiment_yaml_layers_env_preset_yaml_and_options(layout, tmp_path, monkeypatch):
    arch = registry.names("model")[0]  # any model: this test is about the datasets section
    model_type = sorted(registry.get("model", arch).PRETRAINED_MODEL_CONFIG_DICT)[0]
    experiment = tmp_path / "exp.yaml"
    experiment.write_text(
        f"model: {{arch: {arch}, model_type: {model_type}}}\n"
        "datasets:\n  synthetic_av:\n    num_frames: 8\n    seed: ${run.seed}\n"
        "    vis_processor: {train: {name: blip2_video_train, min_scale: 0.25}}\n"
        "run: {seed: 7}\n"
    )
    monkeypatch.setenv("SMS_SYNTHETIC_ROOT", str(layout))
    cfg = load_experiment(experiment, ["datasets.synthetic_av.audio.clip_len=1.0"]).datasets["synthetic_av"]
    assert (cfg.root, cfg.num_frames, cfg.seed, cfg.audio.clip_len) == (str(layout), 8, 7, 1.0)
    assert cfg.vis_processor.train == {"name": "blip2_video_train", "image_size": 224, "min_scale": 0.25}
    assert cfg.vis_processor.eval == {"name": "blip_video_eval", "image_size": 224}
    assert sorted(SyntheticAVBuilder(cfg).build_datasets()) == ["test", "train", "val"]
    with pytest.raises(ConfigError, match="unknown processor 'nope'"):
        load_experiment(experiment, ["datasets.synthetic_av.vis_processor.eval.name=nope"])


def test_real_qvhighlights_annotations_build_and_count_missing_videos(shared_data, tmp_path):
    (tmp_path / "videos").mkdir()
    ann = str(shared_data / "qvhighlights" / "highlight_val_release.jsonl")
    cfg = from_dict(
        registry.get("builder", "qvh").config_class,
        {
            **SMALL,
            "root": str(tmp_path),
            "allow_missing_videos": True,
            "annotations": {"train": None, "val": ann, "test": None},
        },
        "test",
    )
    val = registry.get("builder", "qvh")(cfg).build_datasets()["val"]
    assert len(val) == 1550 and len({r.qid for r in val.records}) == 1550
    assert all(isinstance(s, float) for r in val.records for w in r.windows for s in w)


def _event_contrast(dataset, record_index):
    """(inside, outside) of the record's window: frame deviation from the background (visual)
    and clip loudness (audio), for frames/clips wholly inside vs away from every window."""
    sample = dataset[record_index]
    mine = dataset.records[record_index]
    others = [w for r in dataset.records if r.vid == mine.vid for w in r.windows]
    t = sample["timestamps"].numpy()
    half = dataset.reader.audio.clip_len / 2
    inside = np.array([any(s + half <= x <= e - half for s, e in mine.windows) for x in t])
    away = np.array([all(x < s - half or x > e + half for s, e in others) for x in t])
    video = sample["video"].numpy()
    background = np.median(video[away], axis=0)
    changed = (np.abs(video - background).max(axis=1) > 0.5).mean(axis=(1, 2))  # fraction of pixels
    loudness = sample["audio_features"].numpy().max(axis=(1, 2))  # peak dB of each clip
    return (changed[inside].min(), changed[away].max()), (loudness[inside].min(), loudness[away].max())


@pytest.fixture(scope="module")
def synthetic_root(tmp_path_factory):
    synthetic = pytest.importorskip("mr_data.synthetic")
    root = tmp_path_factory.mktemp("synthetic_av")
    spec = synthetic.SyntheticSpec(min_duration=10, max_duration=12, min_events=2, max_events=2)
    synthetic.generate_dataset(root, num_videos=6, seed=3, spec=spec, workers=1)
    return root


@pytest.mark.parametrize("backend", ["pyav", "decord"])
def test_synthetic_events_land_in_their_annotated_windows(synthetic_root, backend):
    if backend == "decord":
        pytest.importorskip("decord")
    eval_32 = {"name": "blip_video_eval", "image_size": 32}
    cfg = config(
        root=str(synthetic_root),
        num_frames=24,
        video_backend=backend,
        audio={**SMALL_AUDIO, "clip_len": 0.4},
        vis_processor={"train": eval_32, "eval": eval_32},
    )
    checked = set()
    for dataset in SyntheticAVBuilder(cfg).build_datasets().values():
        for i, record in enumerate(dataset.records):
            (v_in, v_out), (a_in, a_out) = _event_contrast(dataset, i)
            seen, heard = v_in > 0.03 and v_out < 0.01, a_in > a_out + 10.0  # pixels, dB
            assert (seen, heard) == (record.kind != "audio", record.kind != "visual"), (record, v_in, a_in, a_out)
            checked.add(record.kind)
    assert checked == {"visual", "audio", "audio_visual"}
