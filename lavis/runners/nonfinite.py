"""A step whose loss is NaN or infinite: the run stops with one line naming the step and the
queries of that step on every process (``run.nonfinite_loss: stop``), or skips the update with a
warning and counts it (``skip``)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from lavis.common.errors import UserError

logger = logging.getLogger(__name__)

SHOWN = 8  # queries named in the message


class NonFiniteLossError(UserError, RuntimeError):
    """The loss was NaN or infinite and ``run.nonfinite_loss: stop`` asked to stop (the message
    names the step and the step's queries)."""


def step_queries(group: Sequence[dict[str, Any]], strategy: Any) -> str:
    """The queries of one optimizer step on all processes (a collective), as ``qid 7 'text'; ...``."""
    local = [(qid, text) for b in group for qid, text in zip(b["qid"], b.get("query") or [""] * len(b["qid"]))]
    samples = [s for part in strategy.all_gather_objects(local) for s in part]
    shown = "; ".join(f"qid {qid} {text[:60]!r}" if text else f"qid {qid}" for qid, text in samples[:SHOWN])
    return shown + (f"; and {len(samples) - SHOWN} more" if len(samples) > SHOWN else "")


def on_nonfinite_loss(loss: float, step: int, group: Sequence[dict[str, Any]], strategy: Any, policy: str) -> None:
    """Stop (``NonFiniteLossError``) or warn about the non-finite ``loss`` of optimizer step
    ``step`` (called on every process alike: it gathers the step's queries)."""
    queries = step_queries(group, strategy)
    if policy == "stop":
        raise NonFiniteLossError(
            f"non-finite loss ({loss}) at step {step}, on the queries: {queries} (lower run.init_lr or check "
            f"these samples; run.nonfinite_loss: skip skips such steps and counts them)"
        )
    logger.warning("skipping step %d: non-finite loss %s on the queries: %s", step, loss, queries)
