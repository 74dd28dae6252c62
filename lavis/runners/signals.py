"""SIGTERM / SIGINT (a cluster's pre-emption, Ctrl-C) as a request to stop at the next safe point.

While a run is inside ``StopSignals``, the two signals only set ``received``; the loop checks it
after every optimizer step and after every evaluation batch, saves, and raises ``RunInterrupted``
(exit ``128 + signal``). The previous handlers come back when the block ends.
"""

from __future__ import annotations

import contextlib
import signal
from types import FrameType
from typing import Any, Optional

SIGNALS = (signal.SIGTERM, signal.SIGINT)


class StopSignals:
    """Inside ``with StopSignals() as signals``: SIGTERM and SIGINT set ``signals.received`` instead of
    stopping the process (see the module docstring)."""

    def __init__(self) -> None:
        self.received: Optional[int] = None
        self._previous: dict[int, Any] = {}

    def _handle(self, signum: int, _frame: Optional[FrameType]) -> None:
        self.received = signum

    def __enter__(self) -> StopSignals:
        for sig in SIGNALS:
            # Not the main thread (e.g. inside a notebook worker): no handlers.
            with contextlib.suppress(ValueError):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: Any) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()
