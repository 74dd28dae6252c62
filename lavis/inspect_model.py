"""What a configured model is: parameters, trainable share, frames and tokens per sample, the
fusion and the LLM, as a short summary (or, with ``--json``, the numbers behind it).

    python -m lavis.inspect_model --cfg-path configs/experiments/charades_sta/sms.yaml --meta
    python -m lavis.inspect_model --cfg-path configs/models/blip2_mr_pretrain_flant5xl.yaml --meta --json
    python -m lavis.inspect_model --cfg-path <experiment.yaml> --options model.lora.r=16

``--cfg-path`` is an experiment (loaded whole, ``base:`` chain included: its datasets give the
frames per sample) or a model preset YAML (its ``model:`` section; no dataset, so no frame count).
``--meta`` builds on the meta device: no memory, no weights and no tokenizer files read, so the
full 4 B-parameter preset can be inspected on a fresh clone. Counts are per top-level module
(tied tensors counted once), plus the LoRA adapters' share.
"""

from __future__ import annotations

import dataclasses
import json
import math
import sys
from typing import Any

import torch
from torch import nn

from lavis.common.cli import ArgumentParser, cli_errors


def parameter_report(model: nn.Module) -> dict[str, Any]:
    """Parameter counts of ``model``, tied tensors counted once.

    Args:
        model: any module (on the meta device too: only shapes are read).

    Returns:
        ``{"total", "trainable", "lora", "modules": {name: {"total", "trainable"}}}``, per
        top-level child module; ``lora`` counts the parameters of LoRA adapters.

    Example:
        >>> parameter_report(nn.Sequential(nn.Linear(2, 3), nn.Linear(3, 1).requires_grad_(False)))
        {'total': 13, 'trainable': 9, 'lora': 0, 'modules': {'0': {'total': 9, 'trainable': 9}, '1': {'total': 4, 'trainable': 0}}}
    """
    seen: set[int] = set()
    modules: dict[str, dict[str, int]] = {}
    lora = 0
    for name, param in model.named_parameters():  # already de-duplicated (tied tensors once)
        if id(param) in seen:
            continue
        seen.add(id(param))
        top = name.split(".", 1)[0]
        entry = modules.setdefault(top, {"total": 0, "trainable": 0})
        entry["total"] += param.numel()
        entry["trainable"] += param.numel() if param.requires_grad else 0
        lora += param.numel() if "lora_" in name else 0
    return {
        "total": sum(m["total"] for m in modules.values()),
        "trainable": sum(m["trainable"] for m in modules.values()),
        "lora": lora,
        "modules": modules,
    }


def load_for_inspection(cfg_path: str, options: list[str]) -> tuple[Any, dict[str, int]]:
    """The model config of ``cfg_path`` and, for an experiment, each dataset's frames per sample
    (``{}`` for a model preset, which names no dataset)."""
    from lavis.common.config import load_experiment, load_yaml
    from lavis.models.model_config import model_config_from_yaml

    data = load_yaml(cfg_path)
    if "datasets" in data or "base" in data:  # an experiment: load it as training would
        cfg = load_experiment(cfg_path, options)
        frames = {name: ds.num_frames for name, ds in cfg.datasets.items() if hasattr(ds, "num_frames")}
        return cfg.model, frames
    return model_config_from_yaml(cfg_path, options), {}


def build_for_inspection(model_cfg: Any, meta: bool) -> nn.Module:
    """The registered model of ``model_cfg``; with ``meta``, on the meta device and without any
    file read (no weights, and the built-in tokenizer when the vocabulary size is configured)."""
    from lavis.common.registry import registry

    model_cls = registry.get("model", model_cfg.arch)
    if not meta:
        return model_cls.from_config(model_cfg)
    with torch.device("meta"):
        return model_cls.from_config(without_tokenizer_files(model_cfg), load_weights=False)


def without_tokenizer_files(cfg: Any) -> Any:
    """``cfg`` with the built-in tokenizer in place of one read from disk, when the LLM's
    vocabulary size is configured: then the parameter counts depend on that size only (the
    tokenizer sizes nothing else), and a fresh clone has no tokenizer files to read. The prompt
    layout becomes ``plain`` (the built-in tokenizer cannot write the reference's); no layout
    sizes a parameter."""
    llm, tokenizer = getattr(cfg, "llm", None), getattr(cfg, "tokenizer", None)
    if llm is None or tokenizer is None or getattr(llm, "vocab_size", None) is None:
        return cfg  # the vocabulary comes from the tokenizer itself: it has to be read
    return dataclasses.replace(
        cfg,
        prompt=dataclasses.replace(cfg.prompt, layout="plain"),
        tokenizer=dataclasses.replace(tokenizer, source="builtin"),
    )


def model_report(model: nn.Module, frames: dict[str, int]) -> dict[str, Any]:
    """What ``--json`` adds to the parameter counts: frames and tokens per sample, the fusion's
    config and the LLM's shape (read from the built ``blip2_mr`` model)."""
    from lavis.common.typed import to_dict

    cfg, llm = model.cfg, model.language_model.config
    return {
        "frames_per_sample": frames,
        "tokens_per_frame": model.tokens_per_frame,
        "timestamp_mode": cfg.prompt.timestamp_mode,
        "max_text_tokens": cfg.prompt.max_text_tokens,
        "fusion": {
            **to_dict(cfg.fusion),
            "width": cfg.qformer.hidden_size if cfg.fusion.position == "early" else cfg.llm.d_model,
        },
        "llm": {
            "class": type(model.language_model).__name__,
            "encoder_layers": llm.num_layers,
            "decoder_layers": llm.num_decoder_layers,
            "d_model": llm.d_model,
            "vocab_size": llm.vocab_size,
            "lora": {"r": cfg.lora.r, "target_modules": list(cfg.lora.target_modules)} if cfg.lora.enabled else None,
        },
    }


def _count(n: int) -> str:
    for scale, unit in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if n >= scale:  # three significant digits: 3.99 B, 18.0 M, 986 M
            value = n / scale
            return f"{value:.{max(0, 2 - int(math.log10(value)))}f} {unit}"
    return str(n)


def summary(report: dict[str, Any]) -> str:
    """The human summary of a ``--json`` report: a few labelled lines and the per-module counts."""
    fusion, llm, per_frame = report["fusion"], report["llm"], report["tokens_per_frame"]
    modules = report["modules"]
    lines = [f"{report['cfg_path']}" + (" (meta device: no weights read)" if report["meta"] else "")]
    trainable = report["trainable"]
    lines.append(
        f"parameters  {_count(report['total'])}, {_count(trainable)} trainable "
        f"({100 * trainable / max(report['total'], 1):.2f} %), {_count(report['lora'])} of them LoRA"
    )
    counts = sorted(set(report["frames_per_sample"].values()))
    where = ", ".join(f"datasets.{name}.num_frames" for name in report["frames_per_sample"])
    lines.append(
        f"frames      {' / '.join(map(str, counts))} per sample ({where})"
        if counts
        else "frames      set by the dataset (a model preset has none; give an experiment YAML)"
    )
    frame_tokens = " / ".join(f"{n * per_frame}" for n in counts)
    text = f"the duration and the prompt (at most {report['max_text_tokens']} text tokens)"
    if report["timestamp_mode"] == "token":
        text = f"each frame's timestamp, {text}"
    else:
        text += "; each timestamp is added onto its frame's tokens"
    lines.append(
        f"tokens      {per_frame} per frame"
        + (f", {frame_tokens} frame tokens per sample" if counts else "")
        + f"; + {text}"
    )
    keys = ", ".join(f"{k}={v}" for k, v in fusion.items() if k not in ("name", "position", "width"))
    fused = modules.get("fusion", {"total": 0, "trainable": 0})
    lines.append(
        f"fusion      {fusion['name']}, {fusion['position']} ({fusion['width']}-d tokens)"
        + (f", {keys}" if keys else "")
        + f": {_count(fused['total'])} parameters, {_count(fused['trainable'])} trainable"
    )
    lora = llm["lora"]
    lines.append(
        f"LLM         {llm['class']}, {llm['encoder_layers']} + {llm['decoder_layers']} layers, "
        f"d_model {llm['d_model']}, vocabulary {llm['vocab_size']:,}"
        + (f"; LoRA r={lora['r']} on {', '.join(lora['target_modules'])}" if lora else "; no LoRA")
    )
    width = max(len(name) for name in modules)
    lines.append("modules     " + f"{'':{width}s}  {'total':>9s}  {'trainable':>9s}")
    lines += [
        f"            {name:{width}s}  {_count(m['total']):>9s}  {_count(m['trainable']):>9s}"
        for name, m in modules.items()
    ]
    return "\n".join(lines)


@cli_errors
def main(argv: list[str] | None = None) -> int:
    """``python -m lavis.inspect_model``: print the summary (``--json``: the report as JSON).

    Args:
        argv: the command-line arguments (``sys.argv[1:]`` when None): ``--cfg-path``,
            ``--meta``, ``--json``, ``--options``.

    Returns:
        The exit status: 0, or 2 after one ``error:`` line for a bad config.

    Example:
        >>> main(["--cfg-path", "configs/models/blip2_mr_tiny.yaml", "--meta"])  # doctest: +ELLIPSIS
        configs/models/blip2_mr_tiny.yaml (meta device: no weights read)
        parameters  ... trainable ...
        ...
        0
    """
    parser = ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cfg-path", required=True, help="experiment or model preset YAML")
    parser.add_argument("--meta", action="store_true", help="build on the meta device (no memory, no weights)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON instead of the summary")
    parser.add_argument("--options", nargs="+", default=[], metavar="KEY=VALUE", help="e.g. model.lora.r=16")
    args = parser.parse_args(argv)
    model_cfg, frames = load_for_inspection(args.cfg_path, args.options)
    model = build_for_inspection(model_cfg, args.meta)
    report = {"cfg_path": args.cfg_path, "meta": args.meta, **parameter_report(model), **model_report(model, frames)}
    print(json.dumps(report, indent=2) if args.json else summary(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
