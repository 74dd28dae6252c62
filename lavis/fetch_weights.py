"""Download pretrained weights into ``checkpoints/`` (the model never downloads anything itself).

    python -m lavis.fetch_weights --list
    python -m lavis.fetch_weights blip2-flan-t5-xl clap-htsat-fused

Hugging Face repositories come through ``huggingface_hub``; the LAVIS ``.pth`` files from
Salesforce's bucket. Without internet it fails within seconds and prints what to fetch by hand
and where to put it (the same list as ``checkpoints/README.md``).
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

LAVIS_URL = "https://storage.googleapis.com/sfr-vision-language-research/LAVIS/models/BLIP2/"
PROBE_TIMEOUT_S = 5.0
HF_PATTERNS = ["*.json", "*.safetensors", "*.model", "*.txt"]  # weights, configs, tokenizer


@dataclass(frozen=True)
class Source:
    """One set of pretrained weights: what it is, where it comes from and which config key reads it."""

    what: str
    dest: str  # under the checkpoints folder
    config_key: str  # the model config field that points at it
    hf_repo: str | None = None
    urls: tuple[str, ...] = ()
    manual: str | None = None  # not downloadable here: where to get it

    def describe(self, root: Path) -> str:
        """Where this source comes from, where it goes under ``root`` and which key to set (``--list``)."""
        origin = f"https://huggingface.co/{self.hf_repo}" if self.hf_repo else ", ".join(self.urls) or self.manual
        return f"{self.what}\n    from {origin}\n    to   {root / self.dest}\n    set  {self.config_key}"


SOURCES = {
    "blip2-flan-t5-xl": Source(
        "BLIP-2 Flan-T5-XL, HF format (ViT-g, Q-Former, projection, Flan-T5-XL, tokenizer)",
        "blip2-flan-t5-xl",
        "model.weights.blip2_hf_dir",
        hf_repo="Salesforce/blip2-flan-t5-xl",
    ),
    "flan-t5-xl": Source(
        "Flan-T5-XL (LLM + tokenizer; with the LAVIS files)",
        "flan-t5-xl",
        "model.weights.llm_dir",
        hf_repo="google/flan-t5-xl",
    ),
    "clap-htsat-fused": Source(
        "CLAP htsat-fused (the audio tower is used)",
        "clap-htsat-fused",
        "model.weights.clap_dir",
        hf_repo="laion/clap-htsat-fused",
    ),
    "lavis-blip2-flant5xl": Source(
        "LAVIS BLIP-2 files: eva_vit_g.pth + blip2_pretrained_flant5xl.pth",
        "lavis",
        "model.weights.eva_vit_pth / model.weights.blip2_lavis_pth",
        urls=(LAVIS_URL + "eva_vit_g.pth", LAVIS_URL + "blip2_pretrained_flant5xl.pth"),
    ),
    "mr-blip": Source(
        "Mr. BLIP / SMS fine-tuned checkpoints (.pth)",
        "mr_blip",
        "model.weights.finetuned",
        manual="the Google Drive folder linked from the Mr. BLIP / SMS READMEs (download by hand)",
    ),
}


def _reachable(url: str) -> bool:
    parsed = urlparse(url)
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        with socket.create_connection((parsed.hostname, port), timeout=PROBE_TIMEOUT_S):
            return True
    except OSError:
        return False


def _offline_message(names: list[str], root: Path) -> str:
    lines = ["error: no internet connection (or the host is unreachable). Fetch these by hand:"]
    lines += [f"  - {SOURCES[n].describe(root)}" for n in names]
    return "\n".join(lines)


def fetch(name: str, root: Path) -> Path:
    """Download source ``name`` into ``root`` (Hugging Face snapshot or URLs, skipping files already there);
    returns its folder. A source that must be fetched by hand raises, saying where it is."""
    src = SOURCES[name]
    dest = root / src.dest
    if src.manual:
        raise RuntimeError(f"{name} cannot be downloaded automatically:\n  - {src.describe(root)}")
    dest.mkdir(parents=True, exist_ok=True)
    if src.hf_repo:
        from huggingface_hub import snapshot_download

        snapshot_download(repo_id=src.hf_repo, local_dir=str(dest), allow_patterns=HF_PATTERNS)
    for url in src.urls:
        target = dest / Path(urlparse(url).path).name
        if not target.is_file():
            tmp = target.with_suffix(target.suffix + ".part")
            urllib.request.urlretrieve(url, tmp)
            tmp.replace(target)
    return dest


def main(argv: list[str] | None = None) -> int:
    """``python -m lavis.fetch_weights``: list the sources, or fetch the named ones (``all``: every downloadable one)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*", help=f"any of: {', '.join(SOURCES)}, or 'all'")
    parser.add_argument("--list", action="store_true", help="list what can be fetched and where it goes")
    parser.add_argument("--root", default="checkpoints", help="the checkpoints folder")
    args = parser.parse_args(argv)
    root = Path(args.root)
    if args.list or not args.names:
        print("\n".join(f"{name}: {src.describe(root)}" for name, src in SOURCES.items()))
        return 0
    names = [n for n in SOURCES if not SOURCES[n].manual] if args.names == ["all"] else args.names
    unknown = [n for n in names if n not in SOURCES]
    if unknown:
        print(f"error: unknown name(s) {unknown}; valid: {list(SOURCES)}", file=sys.stderr)
        return 2
    hosts = {
        os.environ.get("HF_ENDPOINT", "https://huggingface.co") if SOURCES[n].hf_repo else SOURCES[n].urls[0]
        for n in names
        if not SOURCES[n].manual
    }
    if not all(_reachable(h) for h in hosts):
        print(_offline_message(names, root), file=sys.stderr)
        return 1
    for name in names:
        try:
            print(f"{name}: {fetch(name, root)}")
        except Exception as err:  # network and hub errors come in many types; report each clearly
            print(f"error: {name}: {err}\n  - {SOURCES[name].describe(root)}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
