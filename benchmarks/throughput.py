"""Forward, inverse and training-step throughput of every fiRevNet, side by side.

Run: ``.venv/bin/python benchmarks/throughput.py [--repeats 5] [--only NAME]``.
Forward and inverse are timed alternately in the same loop, so a noisy
machine slows both alike and their ratio stays meaningful.  The target of
issue 2 is inverse throughput >= 0.8x forward.  Issue 13's: the paper-size
MNIST model (16 blocks x 128) with the stable blocks reconstructs to <= 1e-4
with parameters moved at init scale; the last column is the local gain of F⁻¹
(median / max) at metamer points of that perturbed model (z_s of one random
input, z_n of another), measured for the MNIST rows.
"""

from __future__ import annotations

import argparse
import statistics
import time

import pandas as pd
import torch

from invaudit.models import build
from invaudit.models.firevnet import MNIST_LEGACY
from invaudit.models.stability import inverse_gain

LEGACY = {**MNIST_LEGACY, "batchnorm": True}
STABLE = {
    "input_layer": "logit",
    "residual_norm": "spectral",
    "batchnorm": False,
    "conv1x1": "orthogonal",
    "actnorm_bound": 2.0,
}
# name -> (arch, config, batch size)
CONFIGS = {
    "fc (B.1, d=100)": ("firevnet-fc", {}, 256),
    "mnist cpu legacy (4x64)": ("firevnet-mnist", LEGACY, 64),
    "mnist cpu stable (4x64)": ("firevnet-mnist", STABLE, 64),
    "mnist paper legacy (16x128)": ("firevnet-mnist", {"blocks": 16, "hidden": 128, **LEGACY}, 64),
    "mnist paper stable (16x128)": ("firevnet-mnist", {"blocks": 16, "hidden": 128, **STABLE}, 64),
    "imagenet small (64px, 10 cls)": (
        "firevnet-imagenet",
        {"image_size": 64, "num_classes": 10, "hidden": 32},
        32,
    ),
    "imagenet paper (224px, 1000 cls)": ("firevnet-imagenet", {}, 4),
}


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def measure(arch: str, config: dict, batch: int, repeats: int) -> dict:
    torch.manual_seed(0)
    model = build(arch, **config)
    x = torch.rand(batch, *model.input_shape)
    y = torch.randint(0, model.num_classes, (batch,))
    model.train()
    with torch.no_grad():
        model(x)  # ActNorm's data-dependent initialisation
    model.eval()
    with torch.no_grad():
        z = model(x)
        model.inverse(z)  # warm-up
        fwd, inv = [], []
        for _ in range(repeats):
            fwd.append(timed(lambda: model(x)))
            inv.append(timed(lambda: model.inverse(z)))
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(model.logits(x), y).backward()
        opt.step()

    step()  # warm-up
    train = [timed(step) for _ in range(repeats)]
    f, i, t = (statistics.median(v) for v in (fwd, inv, train))
    # Exactness with every parameter moved off its (identity) initialisation, at the
    # scale of a standard init (std 0.5/sqrt(fan_in)), so zero-initialised couplings
    # really transform and deep stacks do not blow up the way unscaled noise would.
    gen = torch.Generator().manual_seed(1)
    model.eval()
    with torch.no_grad():
        for p in model.parameters():
            fan_in = p[0].numel() if p.dim() > 1 else 100
            p.add_(0.5 / fan_in**0.5 * torch.randn(p.shape, generator=gen))
        z = model(x)
        error = (model.inverse(z) - x).abs().max().item()
    gain = "n/a"
    if arch == "firevnet-mnist":
        z_s, z_n = model.split(z[:16])
        g = inverse_gain(model, model.merge(z_s, z_n.roll(1, 0)), per_layer=False).summary()
        gain = f"{g['median']:.3g} / {g['max']:.3g}"
    return {
        "params": sum(p.numel() for p in model.parameters()),
        "batch": batch,
        "forward/s": batch / f,
        "inverse/s": batch / i,
        "train step/s": batch / t,
        "inverse/forward": f / i,
        "max |x - F^-1(F(x))|": error,
        "F^-1 gain at metamers": gain,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--only", default=None, help="substring of a config name")
    args = parser.parse_args()
    rows = {}
    for name, (arch, config, batch) in CONFIGS.items():
        if args.only and args.only not in name:
            continue
        rows[name] = measure(arch, config, batch, args.repeats)
    table = pd.DataFrame.from_dict(rows, orient="index")
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, samples/s (median "
        f"of {args.repeats})"
    )
    formats = {c: (lambda v: f"{v:,.2f}") for c in table.columns}
    formats["max |x - F^-1(F(x))|"] = lambda v: f"{v:.1e}"
    formats["params"] = formats["batch"] = lambda v: f"{int(v):,}"
    formats["F^-1 gain at metamers"] = str
    print(table.to_string(formatters=formats))


if __name__ == "__main__":
    main()
