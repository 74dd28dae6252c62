"""SMS (Sight meets Sound): audio-visual video moment retrieval with an LLM, LAVIS-style.

``import lavis`` is light: models, datasets and tasks are imported when the registry first
needs them.
"""

__version__ = "0.1.0"
