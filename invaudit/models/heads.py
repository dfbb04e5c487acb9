"""Non-invertible heads: the nuisance classifier (and probes) that read z_n."""

from __future__ import annotations

from torch import nn


def mlp_classifier(
    in_features: int, num_classes: int, hidden: int, layers: int = 3
) -> nn.Sequential:
    """A ``layers``-layer ReLU MLP: ``layers - 1`` hidden layers of ``hidden`` units.

    This is D_nc of Definition 7 (3 layers; 1000 units for spheres, 512 for
    images in Appendix B) and the fresh probe of the audits.
    """
    modules: list[nn.Module] = []
    width = in_features
    for _ in range(layers - 1):
        modules += [nn.Linear(width, hidden), nn.ReLU()]
        width = hidden
    modules.append(nn.Linear(width, num_classes))
    return nn.Sequential(*modules)
