"""SMS (Sight meets Sound): audio-visual video moment retrieval with an LLM, LAVIS-style.

``import lavis`` is light: models, datasets and tasks are imported when the registry first
needs them, and ``lavis.load_model`` (a trained run -> a predictor for your own videos, see
``lavis.inference.predictor``) when it is first used.
"""

from typing import Any

__version__ = "0.1.0"
__all__ = ["load_model"]


def __getattr__(name: str) -> Any:
    # PEP 562: torch, transformers and matplotlib load on first use, not on `import lavis`.
    if name == "load_model":
        from lavis.inference.predictor import load_model

        return load_model
    raise AttributeError(f"module 'lavis' has no attribute {name!r}")
