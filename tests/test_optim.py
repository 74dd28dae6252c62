import pytest
from torch import nn

from lavis.runners.config import RunConfig
from lavis.runners.optim import build_optimizer, build_scheduler, lr_factor, param_groups
from lavis.runners.samplers import EvalSampler, TrainSampler


def test_no_weight_decay_on_norms_and_biases():
    model = nn.Sequential(nn.Linear(4, 4), nn.LayerNorm(4))
    model[0].bias.requires_grad_(True)
    groups = param_groups(model, 0.05)
    decayed = {id(p) for p in groups[0]["params"]}
    assert groups[0]["weight_decay"] == 0.05 and decayed == {id(model[0].weight)}
    assert {id(p) for p in groups[1]["params"]} == {id(model[0].bias), id(model[1].weight), id(model[1].bias)}


def test_frozen_model_is_a_clear_error():
    model = nn.Linear(2, 2).requires_grad_(False)
    with pytest.raises(ValueError, match="no trainable parameters"):
        build_optimizer(model, RunConfig())


def test_lr_scale_multiplies_the_scheduled_lr_of_the_named_modules():
    model = nn.ModuleDict(
        {"vision": nn.Linear(2, 2), "vision_proj": nn.Linear(2, 2), "llm": nn.ModuleDict({"a": nn.Linear(2, 2)})}
    )
    cfg = RunConfig(init_lr=1e-3, warmup_steps=0, lr_sched="constant_lr", lr_scale={"vision": 3.0, "llm.a.bias": 0.5})
    optimizer = build_optimizer(model, cfg)
    scheduler = build_scheduler(optimizer, cfg, total_steps=10)
    lr_of = {id(p): g["lr"] for g in optimizer.param_groups for p in g["params"]}
    assert lr_of[id(model["vision"].weight)] == lr_of[id(model["vision"].bias)] == pytest.approx(3e-3)
    assert lr_of[id(model["vision_proj"].weight)] == pytest.approx(1e-3)  # a prefix is whole components
    assert lr_of[id(model["llm"]["a"].weight)] == pytest.approx(1e-3)
    assert lr_of[id(model["llm"]["a"].bias)] == pytest.approx(5e-4)  # the longest prefix wins
    assert scheduler.base_lr == pytest.approx(1e-3)
    decay_of = {id(p): g["weight_decay"] for g in optimizer.param_groups for p in g["params"]}
    assert decay_of[id(model["vision"].bias)] == 0.0 and decay_of[id(model["vision"].weight)] == cfg.weight_decay
    with pytest.raises(ValueError, match="names no parameter.*'visoin'"):
        build_optimizer(model, RunConfig(lr_scale={"visoin": 2.0}))
    with pytest.raises(ValueError, match="must be > 0"):
        RunConfig(lr_scale={"vision": 0.0})


def test_linear_warmup_cosine_hand_computed():
    cfg = RunConfig(init_lr=1e-3, warmup_lr=1e-5, min_lr=1e-4, warmup_steps=10)
    lr = lambda step: lr_factor(step, cfg, total_steps=110) * cfg.init_lr  # noqa: E731
    assert lr(0) == pytest.approx(1e-5)
    assert lr(5) == pytest.approx(1e-5 + (1e-3 - 1e-5) * 0.5)
    assert lr(10) == pytest.approx(1e-3)
    assert lr(60) == pytest.approx(1e-4 + 0.9e-3 * 0.5)  # half-way down the cosine
    assert lr(110) == pytest.approx(1e-4)
    const = RunConfig(init_lr=1e-3, warmup_steps=0, lr_sched="constant_lr")
    assert lr_factor(50, const, 100) == 1.0


def test_train_sampler_is_a_function_of_seed_and_epoch_and_resumes():
    a, b = TrainSampler(10, seed=3), TrainSampler(10, seed=3)
    a.set_epoch(2)
    b.set_epoch(2, start=4)
    assert list(b) == list(a)[4:] and len(b) == 6
    a.set_epoch(3)
    assert list(a) != list(b)
    ranks = [TrainSampler(10, rank=r, world_size=3, seed=3) for r in range(3)]
    shards = [list(s) for s in ranks]
    assert all(len(s) == 3 for s in shards) and len({i for s in shards for i in s}) == 9


def test_eval_sampler_covers_every_sample_exactly_once():
    shards = [list(EvalSampler(10, rank=r, world_size=3)) for r in range(3)]
    assert sorted(i for s in shards for i in s) == list(range(10))
    assert [len(EvalSampler(10, r, 3)) for r in range(3)] == [4, 3, 3]
