"""Parameter counts of a configured model, as JSON.

    python -m lavis.inspect_model --cfg-path configs/models/blip2_mr_pretrain_flant5xl.yaml --meta
    python -m lavis.inspect_model --cfg-path <experiment.yaml> --options model.lora.r=16

``--cfg-path`` is an experiment or a model preset YAML (its ``model:`` section is used). ``--meta``
builds on the meta device: no memory, no weights and no tokenizer files read, so the full
4 B-parameter preset can be inspected on a fresh clone. Counts are per top-level module (tied
tensors counted once), plus the LoRA adapters' share.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from typing import Any

import torch
from torch import nn

from lavis.common.cli import cli_errors


def parameter_report(model: nn.Module) -> dict[str, Any]:
    """``{"total", "trainable", "lora", "modules": {name: {"total", "trainable"}}}``."""
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


def build_for_inspection(cfg_path: str, options: list[str], meta: bool) -> nn.Module:
    from lavis.common.registry import registry
    from lavis.models.model_config import model_config_from_yaml

    cfg = model_config_from_yaml(cfg_path, options)
    model_cls = registry.get("model", cfg.arch)
    if not meta:
        return model_cls.from_config(cfg)
    with torch.device("meta"):
        return model_cls.from_config(without_tokenizer_files(cfg), load_weights=False)


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


@cli_errors
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cfg-path", required=True, help="experiment or model preset YAML")
    parser.add_argument("--meta", action="store_true", help="build on the meta device (no memory, no weights)")
    parser.add_argument("--options", nargs="+", default=[], metavar="KEY=VALUE", help="e.g. model.lora.r=16")
    args = parser.parse_args(argv)
    model = build_for_inspection(args.cfg_path, args.options, args.meta)
    report = {"cfg_path": args.cfg_path, "meta": args.meta, **parameter_report(model)}
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
