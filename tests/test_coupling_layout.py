"""The couplings' parameter layout: what stored checkpoints' state_dicts must keep fitting."""

from __future__ import annotations

import pytest
import torch

from invaudit.models.layers import AdditiveCoupling, AffineCoupling


def layout(layer: torch.nn.Module) -> dict[str, tuple[int, ...]]:
    return {name: tuple(t.shape) for name, t in layer.state_dict().items()}


@pytest.mark.parametrize("parity", [0, 1])
def test_additive_residual_maps_the_conditioning_half_to_one_shift_each(parity) -> None:
    layer = AdditiveCoupling(5, 8, conv=False, parity=parity)
    cond, moved = 2, 3  # parity 0 conditions on x[:2]; parity 1 on x[3:]
    assert layer.sizes == (cond, moved) and layer.split_at == (2 if parity == 0 else 3)
    assert layout(layer) == {
        "residual.0.weight": (8, cond),
        "residual.0.bias": (8,),
        "residual.2.weight": (8, 8),
        "residual.2.bias": (8,),
        "residual.4.weight": (moved, 8),
        "residual.4.bias": (moved,),
    }


def test_affine_residual_outputs_a_log_scale_and_a_shift_per_moved_channel() -> None:
    layer = AffineCoupling(5, 8, conv=True, batchnorm=True, parity=1, scale_bound=1.5)
    assert (layer.sizes, layer.moved, layer.scale_bound) == ((2, 3), 3, 1.5)
    shapes = layout(layer)
    assert shapes["residual.0.weight"] == (8, 2, 3, 3)
    assert shapes["residual.6.weight"] == (6, 8, 3, 3)  # 3 log-scales + 3 shifts
    assert [k for k in shapes if k.startswith("residual.1.")] == [
        "residual.1.weight",
        "residual.1.bias",
        "residual.1.running_mean",
        "residual.1.running_var",
        "residual.1.num_batches_tracked",
    ]


def test_spectral_residual_keeps_its_gate_and_parametrised_weights() -> None:
    layer = AffineCoupling(4, 8, conv=False, residual_norm="spectral", residual_bound=0.5)
    shapes = layout(layer)
    assert shapes["residual.gate"] == (4,)
    assert shapes["residual.body.4.parametrizations.weight.original"] == (4, 8)
    assert layer.residual.bound == 0.5


def test_the_residual_options_are_checked_for_both_couplings() -> None:
    for coupling in (AdditiveCoupling, AffineCoupling):
        with pytest.raises(ValueError, match="excludes batchnorm"):
            coupling(4, 8, conv=False, batchnorm=True, residual_norm="spectral")
        with pytest.raises(ValueError, match="at least 2 channels"):
            coupling(1, 8, conv=False)
