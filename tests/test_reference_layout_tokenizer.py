"""The reference prompt layout needs a Flan-T5-style tokenizer: with one (made at test time,
tests/helpers/t5_tokenizer.py) a model trains and predicts through the same loading path a user's
Flan-T5 files take; without one, the published config stops at load or build with one line naming
the key to set, never a traceback after minutes of building."""

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from helpers.t5_tokenizer import write_t5_tokenizer

from lavis.common.typed import ConfigError
from lavis.models.blip2_mr.model import Blip2MR
from lavis.models.blip2_mr.prompt import FRAME, SENTINEL, ReferenceNumbers, split_numbers
from lavis.models.blip2_mr.random_batch import random_batch
from lavis.models.blip2_mr.tokenizer import SPACE, PretrainedTokenizer
from lavis.models.model_config import model_config

REPO = Path(__file__).resolve().parents[1]
PUBLISHED = "configs/experiments/charades_sta/sms.yaml"


@pytest.fixture(scope="module")
def t5_dir(tmp_path_factory) -> Path:
    return write_t5_tokenizer(tmp_path_factory.mktemp("t5") / "tokenizer")


def test_the_test_tokenizer_writes_numbers_the_three_ways_flan_t5_does(t5_dir):
    tok = PretrainedTokenizer(t5_dir)
    assert (tok.pad_id, tok.eos_id) == (0, 1) and tok.token_id(SENTINEL) == tok.vocab_size - 1  # as T5's
    space = tok.token_id(SPACE)
    one_piece = [n for n in range(200) if len(tok.encode(str(n))) == 1]
    space_then_number = [n for n in range(200) if len(ids := tok.encode(str(n))) == 2 and ids[0] == space]
    split = split_numbers(tok)
    assert one_piece and space_then_number and split  # ▁N, ▁ + N and split pieces all occur
    numbers = ReferenceNumbers(tok)
    assert all(numbers.replacements[n] not in split for n in split)  # the reference's replacement
    prompt = "Query: a person opens the door\nGiven the video and the query, find the relevant windows."
    assert tok.token_id("<unk>") not in tok.encode(prompt)  # the prompt's text is all known pieces
    assert tok.decode(tok.encode("[[24, 30]]")) == "[[24, 30]]"


def test_a_tiny_model_in_the_reference_layout_trains_and_predicts(t5_dir, one_thread):
    cfg = model_config(
        "blip2_mr",
        "tiny",
        [
            "model.prompt.layout=reference",
            "model.prompt.timestamp_mode=token",
            "model.tokenizer.source=pretrained",
            f"model.tokenizer.path={t5_dir}",
            "model.llm.number_embedding_init=random",
            "model.generation.max_new_tokens=6",
        ],
    )
    torch.manual_seed(0)
    model = Blip2MR.from_config(cfg)
    batch = random_batch(cfg, 2, 3, duration=170.0, audio_frames=40, generator=torch.Generator().manual_seed(0))
    sample = model.prompt.encoder_sample([10.0, 103.0], 170.0, "a dog barks", cfg.qformer.num_query_tokens)
    numbers = ReferenceNumbers(model.tokenizer)
    assert numbers.sentinel_id in sample.ids and sample.ids.count(FRAME) == 2 * cfg.qformer.num_query_tokens
    assert sample.timestamp_ids[1] == numbers.ids(numbers.replacements[103])  # a split number is replaced
    loss = model(batch)["loss"]
    loss.backward()
    assert torch.isfinite(loss)
    preds = model.eval().predict(batch)
    assert len(preds) == 2 and all(len(p.texts) == cfg.generation.num_beams for p in preds)


def test_the_builtin_tokenizer_is_refused_for_the_reference_layout_at_load():
    with pytest.raises(ConfigError, match=r"model\.tokenizer\.path.*model\.prompt\.layout=plain"):
        model_config("blip2_mr", "pretrain_flant5xl", ["model.tokenizer.source=builtin"])
    # The published preset reads its tokenizer from disk; inspecting it needs none (--meta).
    assert model_config("blip2_mr", "pretrain_flant5xl").tokenizer.source == "pretrained"


@pytest.mark.parametrize(
    "options, names",
    [
        (["model.weights.blip2_hf_dir=null", "model.weights.clap_dir=null"], "model.tokenizer.path"),
        (["model.tokenizer.source=builtin"], "model.tokenizer.path"),
    ],
    ids=["no-tokenizer-directory", "builtin-tokenizer"],
)
def test_the_published_config_without_a_flan_t5_tokenizer_is_one_error_line(tiny_run, tmp_path, options, names):
    cmd = [sys.executable, "-m", "lavis.train", "--cfg-path", PUBLISHED, "--options"]
    cmd += [f"datasets.charades_sta.root={tiny_run.data}", f"run.output_dir={tmp_path / 'run'}"]
    cmd += ["run.strategy=single", "run.device=cpu", *options]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr and lines[-1].startswith("error: ") and names in lines[-1]
    assert sum(line.startswith("error:") for line in lines) == 1
