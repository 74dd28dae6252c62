"""Audio-visual fusion modules, registered under the registry kind ``fusion``, each with its own
config class (``model.fusion``); ``base.py`` says how to add one."""

from lavis.models.fusion.base import Fusion, build_fusion, fusion_config
from lavis.models.fusion.config import FusionConfig

__all__ = ["Fusion", "FusionConfig", "build_fusion", "fusion_config"]
