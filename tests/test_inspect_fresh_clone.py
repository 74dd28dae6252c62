"""``python -m lavis.inspect_model --meta`` on a fresh clone: no ``checkpoints/``, no tokenizer
files. The counts need only ``model.llm.vocab_size``, so configs whose tokenizer would be read
from a weights directory still inspect; without ``--meta`` (a real build) the files are needed."""

import json
import os
import subprocess
import sys

import pytest

from lavis.inspect_model import main

FULL = "configs/models/blip2_mr_pretrain_flant5xl.yaml"
PUBLISHED = "configs/experiments/charades_sta/sms.yaml"  # tokenizer from ${SMS_BLIP2_DIR}


@pytest.fixture
def empty_weights_dir(tmp_path, monkeypatch):
    """Point the published config's weights at an empty directory, as on a fresh clone (whatever
    this checkout holds under checkpoints/)."""
    empty = tmp_path / "blip2-flan-t5-xl"
    empty.mkdir()
    monkeypatch.setenv("SMS_BLIP2_DIR", str(empty))
    monkeypatch.setenv("SMS_CLAP_DIR", str(tmp_path / "clap"))
    return empty


def report_of(capsys, args):
    assert main([*args, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_meta_counts_need_no_tokenizer_files(empty_weights_dir, capsys):
    done = subprocess.run(
        [sys.executable, "-m", "lavis.inspect_model", "--cfg-path", PUBLISHED, "--meta", "--json"],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
        env=os.environ.copy(),
    )
    assert done.returncode == 0, done.stderr
    published = json.loads(done.stdout)
    # The preset itself names no weights (the built-in tokenizer): the same model, the same counts.
    preset = report_of(capsys, ["--cfg-path", FULL, "--meta"])
    for key in ("total", "trainable", "lora", "modules"):
        assert published[key] == preset[key], key
    assert published["modules"]["language_model"]["total"] > 2.8e9  # the 32,128-token Flan-T5-XL


def test_explicit_pretrained_tokenizer_is_not_read_under_meta(empty_weights_dir, capsys):
    options = ["model.tokenizer.source=pretrained", f"model.tokenizer.path={empty_weights_dir}"]
    report = report_of(capsys, ["--cfg-path", PUBLISHED, "--meta", "--options", *options])
    assert report["total"] > 3.9e9


def test_a_real_build_still_needs_the_tokenizer(empty_weights_dir, capsys):
    assert main(["--cfg-path", PUBLISHED]) == 2
    err = capsys.readouterr().err
    assert "model.tokenizer" in err and str(empty_weights_dir) in err


def test_vocabulary_from_the_tokenizer_needs_its_files(empty_weights_dir, capsys):
    # llm.vocab_size null: the vocabulary (so the embedding's size) is the tokenizer's own.
    assert main(["--cfg-path", PUBLISHED, "--meta", "--options", "model.llm.vocab_size=null"]) == 2
    assert "no tokenizer files" in capsys.readouterr().err
