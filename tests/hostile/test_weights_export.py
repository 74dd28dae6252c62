"""Weights and configs that changed are never used without a word (issue 20, class 2): exported
weights carry checksums checked on load, an exported or given config must be the one that
trained the weights, and an export is a folder one would publish."""

import random
import stat
from pathlib import Path

import pytest
import yaml

from hostile.context import Case, assert_one_error_line, exported, flipped
from lavis import evaluate as evaluate_cli
from lavis import export, load_model, predict
from lavis.common.run_dir import NotARunError


def _video(c) -> str:
    return str(sorted((c.data / "videos").iterdir())[0])


def _predict_with(folder: Path, c) -> list[str]:
    return ["--run-dir", str(folder), "--video", _video(c), "--query", "q", "--out", str(c.tmp / "out")]


def _damaged(c, damage) -> Path:
    folder = exported(c)
    weights = folder / "model.safetensors"
    data = bytearray(weights.read_bytes())
    weights.chmod(0o644)
    weights.write_bytes(bytes(damage(data)))
    return folder


def _flip_tensor_bytes(data: bytearray) -> bytearray:
    rng = random.Random(0)
    start = 8 + int.from_bytes(data[:8], "little")
    for _ in range(4):
        data[rng.randrange(start, len(data))] ^= 1 << rng.randrange(8)
    return data


def _loose_weights(c, damage) -> Path:
    """The export's weights file alone (no card beside it), damaged."""
    folder = _damaged(c, damage)
    alone = c.tmp / "alone"
    alone.mkdir()
    (alone / "w.safetensors").write_bytes((folder / "model.safetensors").read_bytes())
    return alone / "w.safetensors"


def _edited(path: Path, old: str, new: str) -> Path:
    path.chmod(0o644)
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))
    return path


def _card_digest_replaced(c) -> Path:
    card = exported(c) / "README.md"
    digest = yaml.safe_load(card.read_text().split("---")[1])["weights_sha256"]["model.safetensors"]
    return _edited(card, digest, "0" * 64).parent


def _other_config(c) -> Path:
    return _edited(Path(c.file("other.yaml", (c.run / "config.yaml").read_text())), "position: early", "position: late")


CASES: list[Case] = [
    (
        "predict_export_cut",
        predict.main,
        lambda c: _predict_with(_damaged(c, lambda d: d[:-1000]), c),
        "corrupt weights file",
    ),
    (
        "predict_export_flipped",
        predict.main,
        lambda c: _predict_with(_damaged(c, _flip_tensor_bytes), c),
        "corrupt weights file",
    ),
    (
        "predict_export_header_cut",
        predict.main,
        lambda c: _predict_with(_damaged(c, lambda d: d[:40]), c),
        "corrupt weights file",
    ),
    (
        "predict_export_card_digest_edited",
        predict.main,
        lambda c: _predict_with(_card_digest_replaced(c), c),
        "not the one its folder's card records",
    ),
    (
        "predict_export_config_edited",
        predict.main,
        lambda c: _predict_with(_edited(exported(c) / "config.yaml", "position: early", "position: late").parent, c),
        "model.fusion.position: 'early' -> 'late'",
    ),
    (
        "predict_export_prompt_edited",
        predict.main,
        lambda c: _predict_with(
            _edited(exported(c) / "config.yaml", "max_text_tokens: 200", "max_text_tokens: 20").parent, c
        ),
        "model.prompt.max_text_tokens: 200 -> 20",
    ),
    (
        "predict_loose_safetensors_flipped",
        predict.main,
        lambda c: [
            "--cfg-path",
            str(c.run / "config.yaml"),
            "--checkpoint",
            str(_loose_weights(c, _flip_tensor_bytes)),
            "--video",
            _video(c),
            "--query",
            "q",
        ],
        "checksum mismatch",
    ),
    (
        "predict_loose_safetensors_cut",
        predict.main,
        lambda c: [
            "--cfg-path",
            str(c.run / "config.yaml"),
            "--checkpoint",
            str(_loose_weights(c, lambda d: d[:-7])),
            "--video",
            _video(c),
            "--query",
            "q",
        ],
        "corrupt weights file (cut",
    ),
    (
        "predict_checkpoint_of_another_model",
        predict.main,
        lambda c: [
            "--cfg-path",
            str(_other_config(c)),
            "--checkpoint",
            str(c.run / "checkpoint_best.pt"),
            "--video",
            _video(c),
            "--query",
            "q",
        ],
        "checkpoint_best.pt was trained with another model config",
    ),
    (
        "evaluate_checkpoint_of_another_model",
        evaluate_cli.main,
        lambda c: [
            "--cfg-path",
            str(_other_config(c)),
            "--options",
            f"datasets.synthetic_av.root={c.data}",
            f"run.output_dir={c.tmp / 'ev'}",
            f"run.resume_ckpt_path={c.run / 'checkpoint_best.pt'}",
        ],
        "model.fusion.position: 'early' -> 'late'",
    ),
    (
        "export_run_config_edited",
        export.main,
        lambda c: [
            "--run-dir",
            str(_edited(c.run / "config.yaml", "position: early", "position: late").parent),
            "--out",
            str(c.tmp / "e"),
        ],
        "was trained with another model config",
    ),
    (
        "export_corrupt_checkpoint",
        export.main,
        lambda c: ["--run-dir", str(c.run), "--out", str(c.tmp / "e"), "--checkpoint", str(flipped(c))],
        "corrupt checkpoint",
    ),
    (
        "export_cut_metrics",
        export.main,
        lambda c: [
            "--run-dir",
            str(c.file("metrics_test.json", (c.run / "metrics_test.json").read_bytes()[:200], c.run).parent),
            "--out",
            str(c.tmp / "e"),
        ],
        "metrics_test.json: line",
    ),
    (
        "export_into_a_file",
        export.main,
        lambda c: ["--run-dir", str(c.run), "--out", str(c.file("taken", "x"))],
        "not an empty folder",
    ),
]


@pytest.mark.parametrize("name, main, argv, message", CASES, ids=[c[0] for c in CASES])
def test_a_hostile_input_is_one_line_and_exit_2(ctx, capsys, name, main, argv, message):
    code = main(argv(ctx))
    assert_one_error_line(code, capsys.readouterr().err, message)


def test_an_export_is_a_folder_one_would_publish(ctx):
    folder = exported(ctx)
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in folder.iterdir()}
    assert modes == dict.fromkeys(["README.md", "config.yaml", "model.safetensors", "run_info.json"], 0o644)
    card = (folder / "README.md").read_text()
    front = yaml.safe_load(card.split("---")[1])
    assert front["license"] and front["datasets"] == ["synthetic_av"]
    assert len(front["weights_sha256"]["model.safetensors"]) == 64
    title = next(line for line in card.splitlines() if line.startswith("# "))
    assert folder.name not in title and "synthetic_av" in title
    assert "## Intended use" in card and "Out of scope" in card
    rows = [line for line in card.splitlines() if line.startswith("| MR-")]
    assert rows and all(cell.strip() for line in rows for cell in line.strip("|").split("|"))
    assert "MR-long-mAP" not in [line.split("|")[1].strip() for line in rows]  # no long video in the split
    cfg = yaml.safe_load((folder / "config.yaml").read_text())
    assert str(ctx.tmp) not in (folder / "config.yaml").read_text()  # nothing of the training machine's folders
    assert cfg["run"]["output_dir"] == "checkpoints/runs/default" and cfg["run"]["resume_ckpt_path"] is None
    assert not list(folder.glob(".*"))
    predictor = load_model(folder, device="cpu")
    assert predictor.info["step"] == 2


def test_the_card_takes_a_title_and_a_licence(ctx, capsys):
    out = ctx.tmp / "e"
    assert (
        export.main(["--run-dir", str(ctx.run), "--out", str(out), "--title", "My SMS", "--license", "cc-by-nc-4.0"])
        == 0
    )
    card = (out / "README.md").read_text()
    assert "\n# My SMS\n" in card and yaml.safe_load(card.split("---")[1])["license"] == "cc-by-nc-4.0"


def test_a_weights_file_given_as_a_folder_says_which_argument_takes_it(ctx):
    folder = exported(ctx)
    with pytest.raises(
        NotARunError, match=r"model.safetensors is a weights file, not a run folder: .* take the folder"
    ):
        load_model(folder / "model.safetensors")
