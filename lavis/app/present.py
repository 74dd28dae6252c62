"""What the page says around an answer, in Markdown: which model answered and where it runs, the
model's text per query, whether the video had sound (and what that means for this model), and
how long the answer took. Plain functions of the predictor and the results: no Gradio."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import torch

MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]<>()#+\-.!|~])")
INDEX_SOURCES = {
    "computed": "computed now (the next query on this video reuses it)",
    "memory": "reused from memory",
    "disk": "read from disk",
}
MAX_CHUNK_TEXTS = 4  # a long video's per-chunk texts shown in a query's line (the JSON has them all)


def escape_markdown(text: str) -> str:
    """``text`` shown literally in Markdown (a query is what a person typed, not markup)."""
    return MARKDOWN_SPECIAL.sub(r"\\\1", text)


@dataclass
class ModelFacts:
    """What the page tells about the model that answers: its run and checkpoint, and where it runs."""

    run: str
    checkpoint: str  # file name only: the page never shows the server's folders
    step: Optional[int]
    arch: str
    model_type: str
    device: str
    threads: int
    span: float  # seconds the model sees at once
    hears: bool  # the model reads the soundtrack (False: a video-only model)


def model_facts(predictor: Any) -> ModelFacts:
    """The ``ModelFacts`` of a loaded ``Predictor``: its run record (``info``), its device, the
    span it reads and the threads torch computes with in this process."""
    info = predictor.info
    return ModelFacts(
        run=str(info.get("run", "?")),
        checkpoint=Path(str(info.get("checkpoint", "?"))).name,
        step=info.get("step"),
        arch=str(info.get("arch", "?")),
        model_type=str(info.get("model_type", "?")),
        device=str(predictor.device),
        threads=torch.get_num_threads(),
        span=float(predictor.span),
        hears=bool(predictor.reader.with_audio),
    )


def model_markdown(facts: ModelFacts) -> str:
    """One paragraph: run, checkpoint and step, model, what it reads, device and threads."""
    step = f", step {facts.step}" if facts.step is not None else ""
    reads = "frames and sound" if facts.hears else "frames only (a video-only model)"
    return (
        f"**Model**: run `{facts.run}`, `{facts.checkpoint}`{step} ({facts.arch} / {facts.model_type}); "
        f"reads {reads}, {facts.span:g} s at a time. **Runs on** {facts.device}, "
        f"{facts.threads} thread{'s' if facts.threads != 1 else ''}."
    )


def sound_line(results: list[dict[str, Any]], hears: bool) -> str:
    """Whether the video's sound reached the model, and what that means for this model."""
    if not hears:
        return "**Sound**: not used; this model is video-only and answers from the frames."
    if results and all(r["audio"] for r in results):
        return "**Sound**: yes; the model heard it along with the frames."
    return (
        "**Sound**: none the model could use (no audio stream): this audio-visual model answered "
        "from the frames alone, so moments that are only heard cannot be found."
    )


def timing_line(results: list[dict[str, Any]], elapsed_s: float) -> str:
    """How long the answer took (``elapsed_s``, measured around the model's call) and what the
    video index saved (each result's ``timing``, written by the predictor's video index)."""
    if not results:
        return f"**Time**: {elapsed_s:.2f} s."
    timing = results[0]["timing"]
    source = INDEX_SOURCES.get(timing["index"], timing["index"])
    return (
        f"**Time**: {elapsed_s:.2f} s (decoding {timing['decode_s']:.2f} s, frame and audio towers "
        f"{timing['towers_s']:.2f} s, language model {timing['llm_s']:.2f} s); the video's index was "
        f"{source}, which saved {timing['saved_s']:.2f} s."
    )


def query_line(k: int, result: dict[str, Any]) -> str:
    """One numbered line per query: the query, the model's text, the best window. A long video's
    text is given per chunk with the chunk's stretch: its numbers are seconds from that chunk's
    start (``lavis.inference.result``)."""
    best = result["windows"][0] if result["windows"] else None
    found = f"best window {best[0]:.1f}-{best[1]:.1f} s (score {best[2]:.2f})" if best else "no window"
    repaired = " (not a valid answer as written; repaired)" if result.get("invalid") else ""
    chunks = result["chunks"]
    if len(chunks) == 1:
        wrote = f"the model wrote `{_code(chunks[0]['text'])}`"
    else:
        shown = [f"{c['start']:g}-{c['end']:g} s: `{_code(c['text'])}`" for c in chunks[:MAX_CHUNK_TEXTS]]
        more = f", and {len(chunks) - MAX_CHUNK_TEXTS} more" if len(chunks) > MAX_CHUNK_TEXTS else ""
        wrote = (
            f"read in {len(chunks)} chunks of {result['span']:g} s, the model wrote (seconds from each "
            f"chunk's start) {'; '.join(shown)}{more}"
        )
    return f"{k}. *{escape_markdown(result['query'])}*: {wrote}{repaired}; {found}."


def _code(text: str) -> str:
    """``text`` safe inside a Markdown code span."""
    return text.replace("`", "'")


def answer_markdown(video_name: str, results: list[dict[str, Any]], elapsed_s: float, hears: bool) -> str:
    """The paragraph under the table: the video, one line per query, its sound, the time."""
    duration = results[0]["duration"] if results else 0.0
    lines = [f"**Video**: {escape_markdown(video_name)}, {duration:.1f} s.", ""]
    lines += [query_line(k, r) for k, r in enumerate(results, start=1)]
    lines += ["", sound_line(results, hears), "", timing_line(results, elapsed_s)]
    return "\n".join(lines)
