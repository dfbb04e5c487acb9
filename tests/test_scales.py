"""The scales of z_n (``invaudit.models.scales``) and the probe's per-scale errors."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import TensorDataset

from invaudit.attacks import ATTACKS, AuditContext
from invaudit.data.audit import AuditData
from invaudit.models import build
from invaudit.models.layers import FactorOut
from invaudit.models.scales import z_parts


def _seeded(arch: str, **config) -> torch.nn.Module:
    torch.manual_seed(0)
    return build(arch, **config).eval()


@pytest.mark.parametrize(
    ("arch", "config", "sizes"),
    [
        ("firevnet-mnist", {}, {"readout": 186, "stage 2": 196, "stage 1": 392}),
        ("firevnet-mnist", {"stages": 2}, {"readout": 382, "stage 1": 392}),
        ("firevnet-mnist", {"factor_out": False, "readout": "position"}, {"readout": 774}),
        ("firevnet-fc", {}, {"readout": 98}),
    ],
)
def test_parts_cover_z_n_exactly_deepest_first(arch, config, sizes) -> None:
    model = build(arch, **config)
    parts = z_parts(model)
    assert {k: p.stop - p.start for k, p in parts.items()} == sizes
    assert list(parts) == list(sizes)  # deepest first, as z lays them out
    covered = [i for p in parts.values() for i in range(p.start, p.stop)]
    assert covered == list(range(model.num_classes, model.dim))


def test_stage_1_part_is_what_leaves_after_stage_1() -> None:
    """Changing only the layers behind the first factor-out moves every part but stage 1."""
    model = _seeded("firevnet-mnist", stages=3, blocks=1, hidden=8)
    x = torch.rand(4, 1, 28, 28)
    parts = z_parts(model)
    with torch.no_grad():
        before = model(x)
        outer = next(m for m in model.modules() if isinstance(m, FactorOut))
        for p in outer.inner.parameters():
            p.add_(0.05 * torch.randn_like(p))
        after = model(x)
    stage1 = parts["stage 1"]
    torch.testing.assert_close(after[:, stage1], before[:, stage1], rtol=0, atol=0)
    for name in ("readout", "stage 2"):
        assert (after[:, parts[name]] - before[:, parts[name]]).abs().max() > 1e-4, name


def _images(model: torch.nn.Module) -> AuditContext:
    gen = torch.Generator().manual_seed(0)

    def split(n: int) -> TensorDataset:
        return TensorDataset(torch.rand(n, 1, 28, 28, generator=gen), torch.arange(n) % 10)

    test, train = split(40), split(120)
    info = {"name": "mnist", "bounds": (0.0, 1.0), "input_shape": [1, 28, 28], "num_classes": 10}
    data = AuditData("mnist", info, test, lambda: train)
    return AuditContext(model, data, oracle=None, n=40, seed=0, batch_size=20)


SMALL = {"probe_hidden": 16, "probe_epochs": 1, "train_n": 120, "probe_batch_size": 64}


def test_probe_by_scale_reports_every_part() -> None:
    model = _seeded("firevnet-mnist", stages=3, blocks=1, hidden=8)
    result = ATTACKS["probe"].run(_images(model), by_scale=True, **SMALL)
    errors = result.metrics["nuisance_error_by_scale"]
    assert list(errors) == ["readout", "stage 2", "stage 1"]
    assert all(0.0 <= e <= 1.0 for e in errors.values())
    assert result.settings["scale_dims"] == {"readout": 186, "stage 2": 196, "stage 1": 392}
    plain = ATTACKS["probe"].run(_images(model), **SMALL)
    assert plain.metrics["nuisance_error_by_scale"] is None
    # The per-scale fits come after the two shared ones and leave them as they were.
    assert plain.metrics["nuisance_error"] == result.metrics["nuisance_error"]


def test_probe_by_scale_with_one_part_is_the_z_n_probe() -> None:
    model = _seeded("firevnet-mnist", factor_out=False, readout="position", blocks=1, hidden=8)
    result = ATTACKS["probe"].run(_images(model), by_scale=True, **SMALL)
    assert result.metrics["nuisance_error_by_scale"] == {
        "readout": result.metrics["nuisance_error"]
    }


def test_probe_by_scale_must_be_a_bool() -> None:
    from invaudit.errors import ConfigError

    model = _seeded("firevnet-mnist", stages=2, blocks=1, hidden=8)
    with pytest.raises(ConfigError, match="by_scale"):
        ATTACKS["probe"].run(_images(model), by_scale="yes", **SMALL)
