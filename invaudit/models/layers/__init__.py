"""Invertible primitives: each maps ``x -> (y, logdet[B])`` and has an exact inverse."""

from .actnorm import ActNorm
from .base import FlowSequence, InvertibleLayer
from .conv1x1 import InvertibleConv1x1
from .coupling import AdditiveCoupling, AffineCoupling
from .dct import DCTReadout
from .multiscale import FactorOut
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
    "Permutation",
    "Squeeze",
]
