"""fiRevNet assemblies (Appendix B): no final linear layer, logits are coordinates of z.

Each architecture has a config dataclass (its fields are the only keys
``build`` accepts, with their defaults) and a builder that turns a config into
an :class:`InvertibleClassifier` of exactly the data's dimension.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from torch import nn

from ..errors import ConfigError
from .classifier import InvertibleClassifier
from .layers import (
    ActNorm,
    AdditiveCoupling,
    AffineCoupling,
    DCTReadout,
    FactorOut,
    FlowSequence,
    InvertibleConv1x1,
    InvertibleLayer,
    LogitTransform,
    OrthogonalConv1x1,
    Permutation,
    PositionReadout,
    Squeeze,
)
from .layers.coupling import RESIDUAL_NORMS

COUPLINGS = {"additive": AdditiveCoupling, "affine": AffineCoupling}
CONV1X1 = {"lu": InvertibleConv1x1, "orthogonal": OrthogonalConv1x1}
INPUT_LAYERS = ("identity", "logit")
READOUTS = ("dct", "position")


@dataclass(frozen=True)
class FCConfig:
    """firevnet-fc (B.1): 4 additive RevNet bottleneck blocks, no BatchNorm.

    Each block is a pair of couplings (first half updated from the second,
    then the second from the first) followed by a fixed permutation.
    """

    dim: int = 100
    num_classes: int = 2
    blocks: int = 4
    hidden: int = 256
    seed: int = 0


@dataclass(frozen=True)
class MNISTConfig:
    """firevnet-mnist (B.2): stages of [actnorm → 1x1 conv → coupling] steps.

    The input is squeezed once (1x28x28 → 4x14x14); after each stage but the
    last, half the channels are factored out and the rest squeezed where the
    spatial size is even (4x14x14 → 8x7x7 → 4x7x7).  The last stage's maps go
    through the DCT readout; the logits are its lowest frequencies.  The CPU
    default (4 blocks per stage, 64 hidden channels) is sized to train an
    MNIST epoch in minutes on 2 cores; the paper used 16 and 128.

    Stability keys (docs/stability.md measures each; Behrmann et al., 2021):
    ``input_layer="logit"`` starts with RealNVP's logit transform, so every
    decoded point lies within ``logit_alpha / (1 - 2 logit_alpha)`` of the
    data box; ``residual_norm="spectral"`` spectrally normalises the
    couplings' residual functions (Lipschitz constant at most about
    ``residual_bound``, no BatchNorm);
    ``conv1x1="orthogonal"`` keeps the channel mixing orthogonal instead of
    Glow's LU form; ``actnorm_bound > 0`` bounds |log-scale| of every actnorm.
    Configs stored before these keys existed load with ``LEGACY`` values.
    """

    image_size: int = 28
    in_channels: int = 1
    num_classes: int = 10
    stages: int = 3
    blocks: int = 4
    hidden: int = 64
    coupling: str = "additive"
    batchnorm: bool = True
    seed: int = 0
    # Defaults chosen by docs/stability.md (variant bounded-nll1): bounded input,
    # orthogonal mixing and bounded actnorm; spectral residuals cost too much accuracy.
    input_layer: str = "logit"
    logit_alpha: float = 0.01
    residual_norm: str = "none"
    residual_bound: float = 1.0
    conv1x1: str = "orthogonal"
    actnorm_bound: float = 2.0
    # Readout keys (issue 15): ``factor_out=false`` keeps every channel to the last
    # stage (16 at 7x7 for MNIST), so each logit can own a channel; ``readout``
    # reads the logits as the DCT's lowest frequencies or, with ``position``, as
    # the first num_classes channels at the centre behind a per-logit affine map.
    factor_out: bool = True
    readout: str = "dct"


#: What a stored firevnet-mnist config without the stability keys was built with.
MNIST_LEGACY = {
    "input_layer": "identity",
    "residual_norm": "none",
    "conv1x1": "lu",
    "actnorm_bound": 0.0,
    "factor_out": True,
    "readout": "dct",
}


@dataclass(frozen=True)
class ImageNetConfig:
    """firevnet-imagenet (B.3): two input squeezes, 4 stages x 4 RevNet blocks.

    A squeeze follows each stage but the last (224 → 56 → 28 → 14 → 7); a
    fourth would need an even map, and the last stage's maps are what the DCT
    readout pools.  Stages 1-3 use additive couplings, the last affine ones.
    Each step is actnorm → coupling, alternating which half is updated.  The
    logits are the DC components of the first ``num_classes`` channels, so
    ``in_channels * 4**(stages + 1)`` must be at least ``num_classes``.
    ``hidden=0`` gives each stage a bottleneck of a quarter of its channels.
    """

    image_size: int = 224
    in_channels: int = 3
    num_classes: int = 1000
    stages: int = 4
    blocks: int = 4
    hidden: int = 0
    batchnorm: bool = True
    seed: int = 0


def _positive(name: str, value: object) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ConfigError(f"{name} must be a positive integer, got {value!r}")


def _check_classes(num_classes: int, readout_size: int, arch: str) -> None:
    _positive("num_classes", num_classes)
    if num_classes < 2 or num_classes > readout_size:
        raise ConfigError(
            f"{arch}: num_classes must be between 2 and {readout_size} "
            f"for this input, got {num_classes}"
        )


def build_fc(cfg: FCConfig) -> InvertibleClassifier:
    for name in ("dim", "blocks", "hidden"):
        _positive(name, getattr(cfg, name))
    if cfg.dim < 2:
        raise ConfigError(f"dim must be at least 2, got {cfg.dim}")
    _check_classes(cfg.num_classes, cfg.dim, "firevnet-fc")
    layers: list[InvertibleLayer] = []
    for b in range(cfg.blocks):
        for parity in (0, 1):
            layers.append(AdditiveCoupling(cfg.dim, cfg.hidden, conv=False, parity=parity))
        if b < cfg.blocks - 1:
            layers.append(Permutation(cfg.dim, seed=cfg.seed + b))
    return InvertibleClassifier(
        FlowSequence(layers), (cfg.dim,), cfg.num_classes, "firevnet-fc", vars(cfg)
    )


def _image_shape(image_size: int, in_channels: int, squeezes: int, arch: str) -> None:
    _positive("image_size", image_size)
    _positive("in_channels", in_channels)
    if image_size % (2**squeezes):
        raise ConfigError(
            f"{arch}: image_size must be divisible by {2**squeezes}, got {image_size}"
        )


def _glow_step(channels: int, cfg: MNISTConfig, index: int) -> list[InvertibleLayer]:
    coupling = COUPLINGS[cfg.coupling]
    return [
        ActNorm(channels, scale_bound=cfg.actnorm_bound),
        CONV1X1[cfg.conv1x1](channels, seed=cfg.seed + index),
        coupling(
            channels,
            cfg.hidden,
            conv=True,
            batchnorm=cfg.batchnorm,
            residual_norm=cfg.residual_norm,
            residual_bound=cfg.residual_bound,
        ),
    ]


def _choice(name: str, value: object, choices: tuple[str, ...] | dict) -> None:
    if value not in choices:
        raise ConfigError(f"{name} must be one of {', '.join(choices)}, got {value!r}")


def _check_stability_keys(cfg: MNISTConfig) -> None:
    _choice("input_layer", cfg.input_layer, INPUT_LAYERS)
    _choice("residual_norm", cfg.residual_norm, RESIDUAL_NORMS)
    _choice("conv1x1", cfg.conv1x1, CONV1X1)
    _choice("readout", cfg.readout, READOUTS)
    if not 0.0 < cfg.logit_alpha < 0.5:
        raise ConfigError(f"logit_alpha must lie in (0, 0.5), got {cfg.logit_alpha}")
    if not (math.isfinite(cfg.residual_bound) and cfg.residual_bound > 0):
        raise ConfigError(f"residual_bound must be > 0, got {cfg.residual_bound}")
    if not math.isfinite(cfg.actnorm_bound) or cfg.actnorm_bound < 0:
        raise ConfigError(f"actnorm_bound must be >= 0 (0: unbounded), got {cfg.actnorm_bound}")
    if cfg.residual_norm == "spectral" and cfg.batchnorm:
        raise ConfigError(
            "residual_norm=spectral excludes batchnorm (its eval-mode division is "
            "unbounded); add --set batchnorm=false"
        )


def build_mnist(cfg: MNISTConfig) -> InvertibleClassifier:
    for name in ("stages", "blocks", "hidden"):
        _positive(name, getattr(cfg, name))
    if cfg.coupling not in COUPLINGS:
        raise ConfigError(f"coupling must be one of {sorted(COUPLINGS)}, got {cfg.coupling!r}")
    _check_stability_keys(cfg)
    _image_shape(cfg.image_size, cfg.in_channels, 1, "firevnet-mnist")
    input_shape = (cfg.in_channels, cfg.image_size, cfg.image_size)

    def stage(shape: tuple[int, int, int], s: int) -> tuple[list[InvertibleLayer], tuple]:
        layers: list[InvertibleLayer] = []
        for b in range(cfg.blocks):
            layers += _glow_step(shape[0], cfg, 1000 * s + b)
        if s == cfg.stages - 1:
            layers.append(_readout(shape, cfg))
            return layers, shape
        channels, h, w = shape
        keep: tuple[int, int, int] = (
            channels - channels // 2 if cfg.factor_out else channels,
            h,
            w,
        )
        inner: list[InvertibleLayer] = []
        if h % 2 == 0 and w % 2 == 0:
            inner.append(Squeeze())
            keep = (keep[0] * 4, h // 2, w // 2)
        if keep[0] < 2:
            raise ConfigError(f"firevnet-mnist: {cfg.stages} stages leave too few channels")
        rest, _ = stage(keep, s + 1)
        if cfg.factor_out:
            layers.append(FactorOut(shape, FlowSequence(inner + rest)))
        else:
            layers += inner + rest
        return layers, shape

    first = (cfg.in_channels * 4, cfg.image_size // 2, cfg.image_size // 2)
    body, _ = stage(first, 0)
    head: list[InvertibleLayer] = []
    if cfg.input_layer == "logit":
        head.append(LogitTransform(cfg.logit_alpha))
    flow = FlowSequence([*head, Squeeze(), *body])
    _check_classes(cfg.num_classes, _readout_size(flow), "firevnet-mnist")
    return InvertibleClassifier(flow, input_shape, cfg.num_classes, "firevnet-mnist", vars(cfg))


def _readout(shape: tuple[int, int, int], cfg: MNISTConfig) -> InvertibleLayer:
    if cfg.readout == "dct":
        return DCTReadout(shape)
    if cfg.num_classes > shape[0]:
        raise ConfigError(
            f"firevnet-mnist: readout=position needs a last stage with at least "
            f"num_classes={cfg.num_classes} channels, this layout ends with {shape[0]} "
            "(try --set factor_out=false)"
        )
    return PositionReadout(shape, cfg.num_classes)


def _readout_size(flow: nn.Module) -> int:
    readout = next(m for m in flow.modules() if isinstance(m, (DCTReadout, PositionReadout)))
    if isinstance(readout, PositionReadout):
        return readout.input_shape[0]  # one logit per channel
    return math.prod(readout.input_shape)


def build_imagenet(cfg: ImageNetConfig) -> InvertibleClassifier:
    for name in ("stages", "blocks"):
        _positive(name, getattr(cfg, name))
    if not isinstance(cfg.hidden, int) or cfg.hidden < 0:
        raise ConfigError(f"hidden must be 0 (auto) or a positive integer, got {cfg.hidden!r}")
    _image_shape(cfg.image_size, cfg.in_channels, cfg.stages + 1, "firevnet-imagenet")
    channels, size = cfg.in_channels * 16, cfg.image_size // 4
    layers: list[InvertibleLayer] = [Squeeze(), Squeeze()]
    for s in range(cfg.stages):
        last = s == cfg.stages - 1
        coupling = AffineCoupling if last else AdditiveCoupling
        hidden = cfg.hidden or max(16, channels // 4)
        for b in range(cfg.blocks):
            layers.append(ActNorm(channels))
            layers.append(
                coupling(channels, hidden, conv=True, batchnorm=cfg.batchnorm, parity=b % 2)
            )
        if not last:
            layers.append(Squeeze())
            channels, size = channels * 4, size // 2
    layers.append(DCTReadout((channels, size, size)))
    if not 2 <= cfg.num_classes <= channels:
        raise ConfigError(
            f"firevnet-imagenet: num_classes must be between 2 and the {channels} final "
            f"channels (one DC component each), got {cfg.num_classes}"
        )
    input_shape = (cfg.in_channels, cfg.image_size, cfg.image_size)
    return InvertibleClassifier(
        FlowSequence(layers), input_shape, cfg.num_classes, "firevnet-imagenet", vars(cfg)
    )
