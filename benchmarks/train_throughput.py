"""Training throughput of ``blip2_mr``: samples/s, peak memory and the step's phases.

    python -m benchmarks.train_throughput --preset tiny                # CPU smoke run, seconds
    python -m benchmarks.train_throughput --preset pretrain_flant5xl   # one GPU, random weights
        [--cached-features] [--compile inductor] [--activation-checkpointing] [--batch-size 8]
        [--frames 20] [--steps 20] [--warmup 5] [--no-audio] [--options model.KEY=VALUE ...]

One step is what the runner does for one optimizer step (``accum_grad_iters: 1``): the batch to
the device (``data``: non-blocking copies from pinned memory), ``forward`` under the run's
autocast, ``backward``, and the strategy's ``optimizer`` step (clip, fused AdamW on CUDA, zero
grads), then the loss read back once (the runner's one host sync per step). Batches are random
(``lavis/models/blip2_mr/random_batch.py``); with ``--cached-features`` they hold the frozen towers'
outputs instead of pixels and log-mels, as a ``use_cached_features`` dataset gives them.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Optional

from benchmarks.common import add_model_arguments, build_model, emit, make_batch, timed_loop, workload
from lavis.runners.config import RunConfig
from lavis.runners.optim import build_optimizer
from lavis.runners.strategies import SingleDevice
from lavis.tasks.moment_retrieval import MomentRetrievalTask


def main(argv: Optional[Sequence[str]] = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_model_arguments(parser)
    parser.add_argument("--amp", choices=("bf16", "off"), help="run.amp (default: bf16 on CUDA, off on CPU)")
    args = parser.parse_args(argv)
    work = workload(args)
    amp = args.amp or ("bf16" if work.device.type == "cuda" else "off")
    run_cfg = RunConfig(device=work.device.type, amp=amp, init_lr=1e-5, warmup_steps=0, grad_clip_norm=1.0)
    strategy = SingleDevice(run_cfg)
    model = build_model(work, args.seed)
    model.train()
    optimizer = build_optimizer(model, run_cfg)
    batch = make_batch(model, work, args.seed, cached=args.cached_features)
    task = MomentRetrievalTask()

    def step(timer) -> None:
        timer.start_step()
        on_device = task.move_to_device(batch, work.device)
        timer.mark("data")
        with strategy.autocast():
            loss = task.train_step(model, on_device)["loss"]
        timer.mark("forward")
        strategy.backward(loss, model)
        timer.mark("backward")
        strategy.optimizer_step(model, optimizer, run_cfg.grad_clip_norm)
        timer.mark("optimizer")
        float(loss.detach())

    seconds, breakdown = timed_loop(step, work)
    config = work.config(
        cached_features=args.cached_features,
        compile=args.compile,
        amp=amp,
        activation_checkpointing=args.activation_checkpointing,
        audio=not args.no_audio,
        fusion=model.cfg.fusion.name,
        lora_r=model.cfg.lora.r if model.cfg.lora.enabled else None,
        frozen_dtype=model.cfg.frozen_dtype,
        attn_implementation=model.cfg.attn_implementation,
    )
    samples_per_s = work.steps * work.batch_size / seconds if work.steps else 0.0
    return emit(
        "train_throughput",
        work.preset_name,
        work.device,
        config,
        samples_per_s,
        "training samples",
        breakdown,
        work.steps,
    )


if __name__ == "__main__":
    main()
