"""Generation throughput of ``blip2_mr``: queries/s to scored windows, peak memory, phases.

    python -m benchmarks.generate_throughput --preset tiny                # CPU smoke run
    python -m benchmarks.generate_throughput --preset pretrain_flant5xl   # one GPU, random weights
        [--beams 5] [--max-new-tokens 50] [--min-new-tokens N] [--cached-features]
        [--compile inductor] [--batch-size 8] [--frames 20] [--steps 10] [--warmup 2]

One step is ``Blip2MR.predict`` on a batch, in its three phases: ``encode`` (frozen towers, or
cached features, + fusion + projection + the interleaved prompt), ``generate`` (the LLM encoder
run once, then batched beam search with the KV cache and early stop) and ``windows`` (beams
parsed into scored windows). Random weights rarely emit end-of-sequence early, and trained ones
stop after ~10 tokens, so ``--min-new-tokens`` defaults to ``--max-new-tokens``: every query
decodes the full length, the reproducible worst case.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Optional

import torch

from benchmarks.common import add_model_arguments, build_model, emit, make_batch, timed_loop, workload
from lavis.models.blip2_mr.answer import beams_to_windows
from lavis.models.blip2_mr.generation import beam_search


def main(argv: Optional[Sequence[str]] = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_model_arguments(parser)
    parser.add_argument("--beams", type=int, default=5)
    parser.add_argument("--max-new-tokens", type=int, default=50)
    parser.add_argument("--min-new-tokens", type=int, help="default: --max-new-tokens (full-length decoding)")
    args = parser.parse_args(argv)
    min_new = args.max_new_tokens if args.min_new_tokens is None else args.min_new_tokens
    args.options = [
        f"model.generation.num_beams={args.beams}",
        f"model.generation.max_new_tokens={args.max_new_tokens}",
        f"model.generation.min_new_tokens={min_new}",
        *args.options,
    ]
    work = workload(args)
    model = build_model(work, args.seed).eval()
    batch = make_batch(model, work, args.seed, cached=args.cached_features)
    durations = batch["duration"].tolist()
    amp = work.device.type == "cuda"  # the runner's bf16 autocast; the tiny CPU model runs fp32

    @torch.no_grad()
    def step(timer) -> None:
        timer.start_step()
        on_device = {k: v.to(work.device, non_blocking=True) if torch.is_tensor(v) else v for k, v in batch.items()}
        with torch.autocast(work.device.type, dtype=torch.bfloat16, enabled=amp), model.autocast():
            inputs, mask = model.encode(on_device)
            timer.mark("encode")
            hidden = model.run_encoder(inputs, mask)
            beams = beam_search(model.language_model, model.tokenizer, model.cfg.generation, hidden, mask)
            timer.mark("generate")
        beams_to_windows(beams, durations, model.prompt.time_format, model.cfg.generation.max_windows)
        timer.mark("windows")

    seconds, breakdown = timed_loop(step, work)
    config = work.config(
        cached_features=args.cached_features,
        compile=args.compile,
        beams=args.beams,
        max_new_tokens=args.max_new_tokens,
        min_new_tokens=min_new,
        amp="bf16" if amp else "off",
        fusion=model.cfg.fusion.name,
        frozen_dtype=model.cfg.frozen_dtype,
    )
    queries_per_s = work.steps * work.batch_size / seconds if work.steps else 0.0
    return emit(
        "generate_throughput", work.preset_name, work.device, config, queries_per_s, "queries", breakdown, work.steps
    )


if __name__ == "__main__":
    main()
