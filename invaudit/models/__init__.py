"""fiRevNet models: invertible primitives, assemblies and the classifier contract."""

from .classifier import InvertibleClassifier
from .registry import ARCHS, build, default_config

__all__ = ["ARCHS", "InvertibleClassifier", "build", "default_config"]
