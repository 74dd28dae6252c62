"""Queries the model cannot read as written, heard about before training or predicting: a query
longer than the prompt's text allows (``model.prompt.max_text_tokens``: the rest is cut off) or
made only of characters the tokenizer does not know (the model reads only ``<unk>``).

Training warns with the counts per split and a few examples (the run goes on: a few long
queries are common in real benchmarks); ``lavis.predict`` warns about a cut query and refuses a
query with no known character, since its answer would not depend on what was asked. The model
says how a query fits (``prompt.query_fit``, duck-typed: a model without it is not checked).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from lavis.common.errors import InputError

logger = logging.getLogger(__name__)

SHOWN = 3  # examples named in a warning


def _prompt(model: Any) -> Any:
    prompt = getattr(getattr(model, "module", model), "prompt", None)
    return prompt if hasattr(prompt, "query_fit") else None


def check_training_queries(model: Any, datasets: dict[str, dict[str, Any]]) -> dict[str, tuple[int, int]]:
    """Warn, per split, about queries that are cut or unreadable (module doc); returns
    ``{"<builder>/<split>": (cut, unknown)}`` for the splits that have any."""
    prompt = _prompt(model)
    found: dict[str, tuple[int, int]] = {}
    if prompt is None:
        return found
    for builder, splits in datasets.items():
        for split, dataset in splits.items():
            records = getattr(dataset, "records", [])
            fits = {str(r.qid): prompt.query_fit(r.query) for r in records}
            cut = [q for q, fit in fits.items() if fit.cut_tokens]
            unknown = [q for q, fit in fits.items() if not fit.known]
            if cut:
                logger.warning(
                    "datasets.%s %s: %d of %d queries are longer than model.prompt.max_text_tokens=%d allows and "
                    "are cut (e.g. qid %s)",
                    builder, split, len(cut), len(records), prompt.cfg.max_text_tokens, ", ".join(cut[:SHOWN]),
                )  # fmt: skip
            if unknown:
                logger.warning(
                    "datasets.%s %s: %d of %d queries have no character the tokenizer knows: the model reads "
                    "only <unk> for them (e.g. qid %s)",
                    builder, split, len(unknown), len(records), ", ".join(unknown[:SHOWN]),
                )  # fmt: skip
            if cut or unknown:
                found[f"{builder}/{split}"] = (len(cut), len(unknown))
    return found


def check_prediction_queries(model: Any, queries: Sequence[str]) -> None:
    """Refuse a query with no known character (``InputError``), warn about a cut one."""
    prompt = _prompt(model)
    if prompt is None:
        return
    for i, query in enumerate(queries):
        fit = prompt.query_fit(query)
        if not fit.known:
            raise InputError(
                f"query {i + 1} of {len(queries)} ({query[:40]!r}) has no character the model's tokenizer knows: "
                f"it would read only <unk>, and the answer would not depend on the query"
            )
        if fit.cut_tokens:
            logger.warning(
                "query %d of %d is %d token(s) longer than model.prompt.max_text_tokens=%d allows: its end is cut off",
                i + 1, len(queries), fit.cut_tokens, prompt.cfg.max_text_tokens,
            )  # fmt: skip
