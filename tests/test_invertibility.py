"""Every invertible layer and every assembled fiRevNet is an exact bijection.

One parametrised suite, as normflows' flow tests: reconstruction in float32,
log-determinant against the autograd Jacobian in float64, the inverse's
Jacobian against minus the forward log-determinant.
"""

from __future__ import annotations

import pytest
import torch
from conftest import randomize

from invaudit.models import build
from invaudit.models.firevnet import MNIST_LEGACY
from invaudit.models.layers import (
    ActNorm,
    AdditiveCoupling,
    AffineCoupling,
    DCTReadout,
    FactorOut,
    FlowSequence,
    InvertibleConv1x1,
    LogitTransform,
    OrthogonalConv1x1,
    Permutation,
    PositionReadout,
    Squeeze,
)

# name -> (factory, per-sample input shape); tiny so float64 Jacobians are cheap.
LAYERS = {
    "actnorm-vector": (lambda: ActNorm(6), (6,)),
    "actnorm-map": (lambda: ActNorm(3), (3, 4, 4)),
    "actnorm-bounded": (lambda: ActNorm(3, scale_bound=1.0), (3, 4, 4)),
    "conv1x1-orthogonal-vector": (lambda: OrthogonalConv1x1(6, seed=1), (6,)),
    "conv1x1-orthogonal-map": (lambda: OrthogonalConv1x1(4, seed=2), (4, 3, 3)),
    "logit-input": (lambda: LogitTransform(0.01), (2, 3, 3)),
    "conv1x1-vector": (lambda: InvertibleConv1x1(6, seed=1), (6,)),
    "conv1x1-map": (lambda: InvertibleConv1x1(4, seed=2), (4, 3, 3)),
    "additive-fc": (lambda: AdditiveCoupling(7, 16, conv=False), (7,)),
    "additive-fc-parity1": (lambda: AdditiveCoupling(7, 16, conv=False, parity=1), (7,)),
    "additive-conv-bn": (lambda: AdditiveCoupling(4, 8, conv=True, batchnorm=True), (4, 3, 3)),
    "additive-conv-spectral": (
        lambda: AdditiveCoupling(4, 8, conv=True, residual_norm="spectral"),
        (4, 3, 3),
    ),
    "affine-fc": (lambda: AffineCoupling(6, 16, conv=False), (6,)),
    "affine-fc-spectral": (
        lambda: AffineCoupling(6, 16, conv=False, residual_norm="spectral", parity=1),
        (6,),
    ),
    "affine-conv-bn": (
        lambda: AffineCoupling(5, 8, conv=True, batchnorm=True, parity=1),
        (5, 3, 3),
    ),
    "squeeze": (lambda: Squeeze(), (2, 4, 4)),
    "permutation": (lambda: Permutation(9, seed=3), (9,)),
    "factor-out": (
        lambda: FactorOut((4, 2, 2), FlowSequence([Squeeze(), AffineCoupling(8, 8, conv=True)])),
        (4, 2, 2),
    ),
    "dct-readout": (lambda: DCTReadout((3, 4, 5)), (3, 4, 5)),
    "position-readout": (lambda: PositionReadout((5, 3, 4), 3), (5, 3, 4)),
}

# firevnet-mnist with every stability key set the non-legacy way.
STABLE = dict(
    input_layer="logit",
    residual_norm="spectral",
    batchnorm=False,
    conv1x1="orthogonal",
    actnorm_bound=2.0,
)
LEGACY = {**MNIST_LEGACY, "batchnorm": True}

# Tiny configurations of every architecture, for the float64 Jacobian check.
TINY_ARCHS = {
    "firevnet-fc": dict(dim=12, num_classes=3, blocks=2, hidden=16),
    "firevnet-mnist-legacy": dict(image_size=8, num_classes=4, blocks=1, hidden=8, **LEGACY),
    "firevnet-mnist-affine": dict(
        image_size=8, num_classes=4, blocks=1, hidden=8, coupling="affine", **LEGACY
    ),
    "firevnet-mnist-stable": dict(image_size=8, num_classes=4, blocks=1, hidden=8, **STABLE),
    "firevnet-mnist-position": dict(
        image_size=8, num_classes=4, blocks=1, hidden=8, factor_out=False, readout="position"
    ),
    "firevnet-imagenet": dict(
        image_size=8, in_channels=1, num_classes=5, stages=2, blocks=2, hidden=8
    ),
}

# Full-depth configurations (the CPU defaults where affordable) for float32 reconstruction.
FULL_ARCHS = {
    "firevnet-fc": dict(),
    "firevnet-mnist-legacy": dict(LEGACY),
    "firevnet-mnist-affine": dict(coupling="affine", **LEGACY),
    "firevnet-mnist-stable": dict(STABLE),
    "firevnet-mnist-position": dict(factor_out=False, readout="position"),
    "firevnet-imagenet": dict(image_size=32, num_classes=10, hidden=32),
}


def arch_name(key: str) -> str:
    for suffix in ("-affine", "-legacy", "-stable", "-position"):
        key = key.removesuffix(suffix)
    return key


def make_layer(name: str, dtype: torch.dtype = torch.float32):
    factory, shape = LAYERS[name]
    layer = factory().to(dtype)
    x = torch.rand(8, *shape, dtype=dtype, generator=torch.Generator().manual_seed(0))
    randomize(layer, x)
    return layer, x


def make_model(key: str, config: dict, dtype: torch.dtype = torch.float32):
    model = build(arch_name(key), **config).to(dtype)
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(8, *model.input_shape, dtype=dtype, generator=gen)
    randomize(model, x)
    return model, x


def jacobian_logdets(f, finv, x: torch.Tensor) -> tuple[float, float]:
    """``log|det J_f(x)|`` and ``log|det J_finv(f(x))|`` of one sample, by autograd."""
    shape = x.shape

    def flat_f(v):
        return f(v.view(1, *shape)).reshape(-1)

    y = f(x.unsqueeze(0))
    out_shape = y.shape[1:]

    def flat_finv(v):
        return finv(v.view(1, *out_shape)).reshape(-1)

    jf = torch.autograd.functional.jacobian(flat_f, x.reshape(-1), vectorize=True)
    jinv = torch.autograd.functional.jacobian(flat_finv, y.reshape(-1), vectorize=True)
    return torch.linalg.slogdet(jf)[1].item(), torch.linalg.slogdet(jinv)[1].item()


def assert_close_rel(actual: float, expected: float, rel: float = 1e-6) -> None:
    assert abs(actual - expected) <= rel * max(1.0, abs(expected)), (actual, expected)


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_layer_reconstructs_in_float32(name: str) -> None:
    layer, x = make_layer(name)
    with torch.no_grad():
        y, logdet = layer(x)
        assert logdet.shape == (x.shape[0],)
        assert (layer.inverse(y) - x).abs().max().item() <= 1e-4
        # Not the identity (squeeze only moves values): the check would prove nothing.
        if name != "squeeze":
            assert (y.reshape(len(x), -1) - x.reshape(len(x), -1)).abs().max() > 1e-3


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_layer_logdet_matches_autograd_jacobian(name: str) -> None:
    layer, x = make_layer(name, torch.float64)
    with torch.no_grad():
        _, logdet = layer(x[:1])
    fwd, inv = jacobian_logdets(lambda v: layer(v)[0], layer.inverse, x[0])
    assert_close_rel(logdet.item(), fwd)
    assert_close_rel(logdet.item() + inv, 0.0)


@pytest.mark.parametrize("key", sorted(TINY_ARCHS))
def test_arch_logdet_matches_autograd_jacobian(key: str) -> None:
    model, x = make_model(key, TINY_ARCHS[key], torch.float64)
    with torch.no_grad():
        _, logdet = model.forward_logdet(x[:1])
    fwd, inv = jacobian_logdets(model, model.inverse, x[0])
    assert_close_rel(logdet.item(), fwd)
    assert_close_rel(logdet.item() + inv, 0.0)
    if "affine" in key:
        assert abs(fwd) > 1e-3  # affine couplings must really change volume


@pytest.mark.parametrize("key", sorted(FULL_ARCHS))
def test_arch_reconstructs_in_float32(key: str) -> None:
    model, x = make_model(key, FULL_ARCHS[key])
    with torch.no_grad():
        z, logdet = model.forward_logdet(x)
        assert z.shape == (x.shape[0], x[0].numel())  # dim(z) = dim(x): no padding
        assert torch.isfinite(logdet).all()
        assert (model.inverse(z) - x).abs().max().item() <= 1e-4


@pytest.mark.parametrize("key", sorted(TINY_ARCHS))
def test_inverse_stays_exact_after_training_steps(key: str) -> None:
    model, x = make_model(key, TINY_ARCHS[key])
    y = torch.arange(x.shape[0]) % model.num_classes
    before = [p.detach().clone() for p in model.parameters()]
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    model.train()
    for _ in range(5):
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(model.logits(x), y)
        loss.backward()
        opt.step()
    pairs = zip(model.parameters(), before, strict=True)
    moved = max((p.detach() - b).abs().max().item() for p, b in pairs)
    assert moved > 1e-3
    model.eval()
    with torch.no_grad():
        assert (model.inverse(model(x)) - x).abs().max().item() <= 1e-4


def test_dct_is_orthogonal_and_reads_the_mean() -> None:
    readout = DCTReadout((2, 5, 6)).double()
    x = torch.rand(3, 2, 5, 6, dtype=torch.float64)
    jac = torch.autograd.functional.jacobian(lambda v: readout(v.view(1, 2, 5, 6))[0][0], x[0])
    jac = jac.reshape(60, 60)
    assert torch.allclose(jac @ jac.T, torch.eye(60, dtype=torch.float64), atol=1e-12)
    y, _ = readout(x)
    # The first C outputs are the DC components: sqrt(H*W) times each channel's mean.
    assert torch.allclose(y[:, :2], x.mean(dim=(2, 3)) * 30**0.5, atol=1e-12)


def test_actnorm_initialises_from_data() -> None:
    layer = ActNorm(3)
    x = 5 + 3 * torch.randn(64, 3, 4, 4)
    y, _ = layer(x)
    assert torch.allclose(y.mean(dim=(0, 2, 3)), torch.zeros(3), atol=1e-4)
    assert torch.allclose(y.std(dim=(0, 2, 3), unbiased=False), torch.ones(3), atol=1e-3)
    assert bool(layer.initialized)
    assert "initialized" in layer.state_dict()


@pytest.mark.parametrize("key", sorted(FULL_ARCHS))
def test_split_merge_round_trip(key: str) -> None:
    model = build(arch_name(key), **FULL_ARCHS[key]).eval()
    z = torch.randn(3, model.dim)
    z_s, z_n = model.split(z)
    assert z_s.shape == (3, model.num_classes)
    assert z_n.shape == (3, model.dim - model.num_classes)
    assert torch.equal(model.merge(z_s, z_n), z)


def test_logit_input_keeps_every_decoded_point_near_the_box() -> None:
    layer = LogitTransform(0.01)
    y = 50 * torch.randn(1000, 4)  # far beyond anything the data maps to
    x = layer.inverse(y)
    bound = layer.excursion_bound
    assert bound < 0.011
    assert x.min() >= -bound - 1e-6 and x.max() <= 1 + bound + 1e-6
    assert x.min() < -0.9 * bound  # saturates there, so the bound is tight


def test_bounded_actnorm_caps_the_inverse_gain() -> None:
    layer = ActNorm(3, scale_bound=1.5)
    layer(1e-4 * torch.randn(64, 3, 4, 4))  # data with tiny std: the init wants a huge scale
    scale = layer.bounded_log_scale()
    assert scale.abs().max() < 1.5
    with torch.no_grad():
        layer.log_scale.fill_(-1e3)  # whatever training does to the raw parameter
    assert torch.exp(-layer.bounded_log_scale()).max() <= torch.exp(torch.tensor(1.5)) + 1e-6


def test_orthogonal_conv_stays_orthogonal_after_training_steps() -> None:
    layer = OrthogonalConv1x1(6, seed=3)
    opt = torch.optim.Adam(layer.parameters(), lr=0.1)
    x = torch.randn(16, 6, 3, 3)
    for _ in range(5):
        opt.zero_grad()
        layer(x)[0].pow(3).mean().backward()
        opt.step()
    w = layer.weight().detach()
    assert (w - torch.eye(6)).abs().max() > 1e-2  # it did move
    assert torch.allclose(torch.linalg.svdvals(w), torch.ones(6), atol=1e-5)


def test_spectral_residual_is_bounded_and_starts_as_identity() -> None:
    coupling = AdditiveCoupling(4, 16, conv=False, residual_norm="spectral")
    x = torch.randn(32, 4)
    assert torch.equal(coupling(x)[0], x)  # gate 0: the identity
    with torch.no_grad():
        coupling.residual.gate.fill_(20.0)  # tanh -> 1: the largest it can be
        for p in coupling.parameters():
            if p is not coupling.residual.gate:
                p.mul_(50.0)  # spectral normalisation divides this back out
    coupling.train()
    for _ in range(30):  # let the power iteration converge
        coupling(x)
    coupling.eval()
    f = coupling.residual
    a, b = torch.randn(256, 2), torch.randn(256, 2)
    ratio = (f(a) - f(b)).norm(dim=1) / (a - b).norm(dim=1)
    assert ratio.max() <= 1.0 + 1e-3


def test_spectral_residuals_refuse_batchnorm() -> None:
    from invaudit.errors import ConfigError

    with pytest.raises(ConfigError, match="batchnorm"):
        build("firevnet-mnist", residual_norm="spectral", batchnorm=True)


def test_paper_depth_stable_model_reconstructs() -> None:
    """16 blocks x 128 (the paper's MNIST size) with the stable blocks, parameters moved."""
    model = build("firevnet-mnist", blocks=16, hidden=128, **STABLE)
    x = torch.rand(4, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    randomize(model, x, scale=0.05)
    with torch.no_grad():
        assert (model.inverse(model(x)) - x).abs().max().item() <= 1e-4


def test_position_readout_gives_every_logit_its_own_channel() -> None:
    """Issue 15: with factor_out=false each logit is one channel's value at the centre."""
    model = build("firevnet-mnist", factor_out=False, readout="position")
    readout = model.flow.layers[-1]
    assert isinstance(readout, PositionReadout) and readout.input_shape == (16, 7, 7)
    x = torch.rand(3, *readout.input_shape)
    with torch.no_grad():
        readout.log_scale.copy_(torch.linspace(-1, 1, 10))
        y, _ = readout(x)
    expected = x[:, :10, 3, 3] * torch.exp(readout.log_scale) + readout.bias
    assert torch.allclose(y[:, :10], expected.detach())
    # z_n holds every other value exactly once.
    assert torch.equal(
        y[:, 10:].sort(1).values,
        torch.cat(
            [
                x[:, :10]
                .flatten(1)
                .index_select(1, torch.tensor([i for i in range(490) if i % 49 != 24])),
                x[:, 10:].flatten(1),
            ],
            1,
        )
        .sort(1)
        .values,
    )


def test_position_readout_refuses_too_few_channels() -> None:
    from invaudit.errors import ConfigError

    with pytest.raises(ConfigError, match="factor_out=false"):
        build("firevnet-mnist", readout="position")
