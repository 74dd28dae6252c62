"""Audio-visual fusion modules, registered under the registry kind ``fusion``."""

from lavis.models.fusion.base import Fusion, build_fusion
from lavis.models.fusion.config import FusionConfig

__all__ = ["Fusion", "FusionConfig", "build_fusion"]
