"""One weights format: what training writes (``checkpoint_*.pt``) and what ``python -m lavis.export``
writes (``model.safetensors``) load through ``model.weights.finetuned`` and ``lavis.load_model``,
checked by one key check; an exported folder predicts exactly what its run does (no network)."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import save_file

from lavis import load_model
from lavis.common.config import load_experiment
from lavis.common.trained_state import WeightsMismatchError, trained_names
from lavis.common.weights_file import CheckpointError, read_training_checkpoint
from lavis.datasets.schema import load_annotations
from lavis.export import export_run, main
from lavis.models import build_model


@pytest.fixture(scope="module")
def exported(tiny_run, tmp_path_factory):
    out = tmp_path_factory.mktemp("export") / "model"
    assert main(["--run-dir", str(tiny_run.run_dir), "--out", str(out)]) == 0
    return out


def _trained(model, cfg_path) -> dict[str, torch.Tensor]:
    """The loaded model's tensors that training trains (named by a model built for training: a
    loaded predictor's model trains nothing)."""
    names = trained_names(build_model(load_experiment(cfg_path).model))
    inner = getattr(model, "model", model)
    return {k: v for k, v in inner.state_dict().items() if k in names}


def test_the_folder_is_self_contained(tiny_run, exported):
    assert sorted(p.name for p in exported.iterdir()) == [
        "README.md",
        "config.yaml",
        "model.safetensors",
        "run_info.json",
    ]
    card = (exported / "README.md").read_text()
    assert card.startswith("---\nlibrary_name: sms-lavis\n")  # Hub model-card front matter
    test = json.loads((tiny_run.run_dir / "metrics_test.json").read_text())["brief"]
    assert "| metric | test | val |" in card and f"| R1@0.5 | {test['R1@0.5']:.2f} |" in card
    cfg = load_experiment(exported / "config.yaml")
    assert cfg.model.weights.finetuned is None  # the exported weights replace the run's start


def test_load_model_of_the_folder_predicts_what_the_run_does(tiny_run, exported):
    records = load_annotations(tiny_run.data / "test.jsonl")
    video, queries = tiny_run.data / "videos" / records[0].video_file, [r.query for r in records[:2]]
    from_run, from_export = load_model(tiny_run.run_dir), load_model(exported)
    run_state = _trained(from_run.model, tiny_run.run_dir / "config.yaml")
    export_state = _trained(from_export.model, exported / "config.yaml")
    assert run_state.keys() == export_state.keys() and len(run_state) > 0
    for key, value in run_state.items():
        assert torch.equal(value, export_state[key]), key
    a, b = from_run.predict(video, queries), from_export.predict(video, queries)
    for x, y in zip(a, b):
        assert x.pop("model")["step"] == y.pop("model")["step"]
        assert x.pop("timing")["index"] == y.pop("timing")["index"] == "computed"
        assert x == y


@pytest.mark.parametrize("which", ["checkpoint_best.pt", "step", "model.safetensors"])
def test_finetuned_accepts_what_training_and_export_write(tiny_run, exported, which):
    if which == "step":  # a step checkpoint also holds optimizer and RNG (numpy) states
        path = next(tiny_run.run_dir.glob("checkpoint_step*.pt"))
    else:
        path = (exported if which == "model.safetensors" else tiny_run.run_dir) / which
    source = path if which == "step" else tiny_run.run_dir / "checkpoint_best.pt"
    trained = read_training_checkpoint(source)["model"]
    model = build_model(load_experiment(exported / "config.yaml", [f"model.weights.finetuned={path}"]).model)
    state = model.state_dict()
    for key, value in trained.items():
        assert torch.equal(state[key], value), key


def test_one_key_check_names_every_key_on_every_path(tiny_run, exported, tmp_path):
    state = read_training_checkpoint(tiny_run.run_dir / "checkpoint_best.pt")["model"]
    dropped = sorted(state)[0]
    bad = {k: v for k, v in state.items() if k != dropped} | {"not_a_module.weight": torch.zeros(1)}
    save_file(bad, str(tmp_path / "bad.safetensors"), metadata={"blip2_mr": "trainable"})
    torch.save({"model": bad}, tmp_path / "checkpoint_bad.pt")
    for path in (tmp_path / "bad.safetensors", tmp_path / "checkpoint_bad.pt"):
        with pytest.raises(WeightsMismatchError) as err:  # model.weights.finetuned
            build_model(load_experiment(exported / "config.yaml", [f"model.weights.finetuned={path}"]).model)
        assert f"missing (1): {dropped}" in str(err.value) and "unexpected (1): not_a_module.weight" in str(err.value)
    with pytest.raises(
        WeightsMismatchError,
        match=r"checkpoint_bad.pt does not fit the model: missing \(1\).*; unexpected \(1\): not_a_module.weight",
    ):
        load_model(cfg_path=exported / "config.yaml", checkpoint=tmp_path / "checkpoint_bad.pt")


def test_a_corrupt_checkpoint_is_named(tiny_run, exported, tmp_path):
    data = bytearray((tiny_run.run_dir / "checkpoint_best.pt").read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte inside a tensor's bytes
    (tmp_path / "checkpoint_flipped.pt").write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="checkpoint_flipped.pt: corrupt"):
        build_model(
            load_experiment(
                exported / "config.yaml", [f"model.weights.finetuned={tmp_path / 'checkpoint_flipped.pt'}"]
            ).model
        )


def test_export_refuses_a_non_empty_folder_and_a_non_run(tiny_run, exported, tmp_path, capsys):
    assert main(["--run-dir", str(tiny_run.run_dir), "--out", str(exported)]) == 2
    assert "not an empty folder" in capsys.readouterr().err
    assert main(["--run-dir", str(tmp_path), "--out", str(tmp_path / "x")]) == 2
    assert "no config.yaml" in capsys.readouterr().err
    with pytest.raises(CheckpointError, match="checkpoint not found: .*missing.pt"):
        export_run(tiny_run.run_dir, tmp_path / "y", checkpoint=tmp_path / "missing.pt")
