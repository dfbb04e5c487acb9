"""fiRevNet models: invertible primitives, assemblies and the classifier contract;
plus ``oracle-cnn``, the ordinary CNN that stands in for the image oracle."""

from .classifier import InvertibleClassifier
from .oracle_cnn import OracleCNN, OracleCNNConfig
from .registry import ARCHS, PLAIN_ARCHS, Model, build, default_config, is_invertible

__all__ = [
    "ARCHS",
    "PLAIN_ARCHS",
    "InvertibleClassifier",
    "Model",
    "OracleCNN",
    "OracleCNNConfig",
    "build",
    "default_config",
    "is_invertible",
]
