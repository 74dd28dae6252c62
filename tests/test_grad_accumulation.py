"""Gradient accumulation gives the optimizer what one big batch would: each micro-batch's loss is
divided by ``run.accum_grad_iters``. (AdamW hides a constant gradient scale, so a missing division
would not show in the loss curve, but gradient clipping would then act at a fraction of its
threshold.)"""

import torch
from helpers.toy_run import toy_experiment

from lavis.runners.runner import RunnerBase


def gradients_given_to_the_optimizer(tmp_path, name: str, **run) -> list[dict[str, torch.Tensor]]:
    """The trainable gradients at each optimizer step, as the strategy receives them (before
    clipping), for the first two steps of a toy run without dropout."""
    cfg, task, model, datasets = toy_experiment(tmp_path / name, dropout=0.0, max_iters=2, max_epoch=1, **run)
    runner = RunnerBase(cfg, task, model, datasets)
    seen: list[dict[str, torch.Tensor]] = []
    step = runner.strategy.optimizer_step

    def recording_step(model, optimizer, clip_norm):
        seen.append({n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None})
        return step(model, optimizer, clip_norm)

    runner.strategy.optimizer_step = recording_step
    runner.train()
    return seen


def test_two_micro_batches_of_two_give_the_gradients_of_one_batch_of_four(tmp_path):
    one_batch = gradients_given_to_the_optimizer(tmp_path, "b4", batch_size_train=4, accum_grad_iters=1)
    accumulated = gradients_given_to_the_optimizer(tmp_path, "b2x2", batch_size_train=2, accum_grad_iters=2)
    assert len(one_batch) == len(accumulated) == 2
    for big, summed in zip(one_batch, accumulated):
        assert big.keys() == summed.keys() and big
        for name in big:
            torch.testing.assert_close(summed[name], big[name], rtol=1e-5, atol=1e-7, msg=name)
