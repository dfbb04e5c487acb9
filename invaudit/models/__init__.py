"""fiRevNet models: invertible primitives, assemblies and the classifier contract;
plus ``oracle-cnn``, the ordinary CNN that stands in for the image oracle, and the
model sources (TorchScript, torch.export, ``py:`` factories) wrapped as
:class:`ForeignClassifier`."""

from .classifier import InvertibleClassifier
from .foreign import ForeignClassifier
from .oracle_cnn import OracleCNN, OracleCNNConfig
from .registry import ARCHS, PLAIN_ARCHS, Model, build, default_config, is_invertible
from .sources import load_source, source_kind

__all__ = [
    "ARCHS",
    "PLAIN_ARCHS",
    "ForeignClassifier",
    "InvertibleClassifier",
    "Model",
    "OracleCNN",
    "OracleCNNConfig",
    "build",
    "default_config",
    "is_invertible",
    "load_source",
    "source_kind",
]
