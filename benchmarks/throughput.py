"""Forward, inverse and training-step throughput of every fiRevNet, side by side.

Run: ``.venv/bin/python benchmarks/throughput.py [--repeats 5] [--only NAME]``.
Forward and inverse are timed alternately in the same loop, so a noisy
machine slows both alike and their ratio stays meaningful.  The target of
issue 2 is inverse throughput >= 0.8x forward.
"""

from __future__ import annotations

import argparse
import statistics
import time

import pandas as pd
import torch

from invaudit.models import build

# name -> (arch, config, batch size)
CONFIGS = {
    "fc (B.1, d=100)": ("firevnet-fc", {}, 256),
    "mnist cpu default (4x64)": ("firevnet-mnist", {}, 64),
    "mnist paper (16x128)": ("firevnet-mnist", {"blocks": 16, "hidden": 128}, 64),
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
        error = (model.inverse(model(x)) - x).abs().max().item()
    return {
        "params": sum(p.numel() for p in model.parameters()),
        "batch": batch,
        "forward/s": batch / f,
        "inverse/s": batch / i,
        "train step/s": batch / t,
        "inverse/forward": f / i,
        "max |x - F^-1(F(x))|": error,
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
    print(table.to_string(formatters=formats))


if __name__ == "__main__":
    main()
