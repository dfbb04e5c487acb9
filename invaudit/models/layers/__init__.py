"""Invertible primitives: each maps ``x -> (y, logdet[B])`` and has an exact inverse."""

from .actnorm import ActNorm
from .base import FlowSequence, InvertibleLayer
from .conv1x1 import InvertibleConv1x1
from .coupling import AdditiveCoupling, AffineCoupling
from .dct import DCTReadout
from .logit import LogitTransform
from .multiscale import FactorOut
from .orthogonal import OrthogonalConv1x1
from .position import PositionReadout
from .reshape import Permutation, Squeeze

__all__ = [
    "ActNorm",
    "AdditiveCoupling",
    "AffineCoupling",
    "DCTReadout",
    "FactorOut",
    "FlowSequence",
    "InvertibleConv1x1",
    "InvertibleLayer",
    "LogitTransform",
    "OrthogonalConv1x1",
    "Permutation",
    "PositionReadout",
    "Squeeze",
]
