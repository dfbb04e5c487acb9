"""CE vs iCE training throughput, measured side by side (issue 15's target: iCE/CE <= 1.5).

Run: ``.venv/bin/python benchmarks/train_throughput.py [--arch firevnet-mnist] [--n 1280]``.
The CE run adds MLE_n with ``--ce-nll-weight`` (default 1, as the zoo's
``mnist-ce``), so the two columns are the zoo pair that differs only by the
nuisance game; ``--ce-nll-weight 0`` times plain CE (issue 3's target, 1.4).
Both runs train the same architecture on the same random MNIST-shaped tensors
(so data loading and augmentation do not blur the comparison); their epochs
alternate, CE then iCE, ``--repeats`` times, and the medians are compared.
Note that ``--loss ce`` also trains the monitoring nuisance classifier on
detached features (it never touches F), so both columns include a D_nc step.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import pandas as pd
import torch
from torch.utils.data import TensorDataset

from invaudit.cli.options import parse_pairs
from invaudit.data.splits import Splits
from invaudit.training.trainer import Trainer, TrainSettings

SHAPES = {"firevnet-mnist": ("mnist", [1, 28, 28], 10), "firevnet-fc": ("spheres", [100], 2)}


def random_splits(shape: list[int], classes: int, n: int) -> Splits:
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(n, *shape, generator=gen)
    y = torch.randint(0, classes, (n,), generator=gen)
    info = {"name": "random", "input_shape": shape, "num_classes": classes, "bounds": (0.0, 1.0)}
    return Splits(TensorDataset(x, y), TensorDataset(x[:64], y[:64]), info)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default="firevnet-mnist", choices=sorted(SHAPES))
    parser.add_argument("--n", type=int, default=1280, help="examples per timed epoch")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="arch config key for both runs (repeatable), as `invaudit train --set`",
    )
    parser.add_argument(
        "--ce-nll-weight", type=float, default=1.0, help="MLE_n weight of the CE run (default 1)"
    )
    args = parser.parse_args()
    dataset, shape, classes = SHAPES[args.arch]
    splits = random_splits(shape, classes, args.n)
    trainers = {}
    with tempfile.TemporaryDirectory() as tmp:
        for loss in ("ce", "ice"):
            settings = TrainSettings(
                dataset=dataset,
                arch=args.arch,
                arch_config=parse_pairs(args.set, "--set"),
                loss=loss,
                epochs=args.repeats + 1,
                device="cpu",
                nll_weight=args.ce_nll_weight if loss == "ce" else 0.0,
            )
            trainers[loss] = Trainer(settings, Path(tmp) / f"{loss}.pt", splits=splits)
        times: dict[str, list[float]] = {"ce": [], "ice": []}
        for epoch in range(args.repeats + 1):
            for loss, trainer in trainers.items():
                start = time.perf_counter()
                trainer._train_epoch(epoch)
                if epoch:  # the first epoch is a warm-up
                    times[loss].append(time.perf_counter() - start)
    rows = {
        loss: {"samples/s": args.n / statistics.median(t), "s/epoch of n": statistics.median(t)}
        for loss, t in times.items()
    }
    table = pd.DataFrame.from_dict(rows, orient="index")
    ratio = rows["ice"]["s/epoch of n"] / rows["ce"]["s/epoch of n"]
    print(
        f"{args.arch}, batch {trainers['ce'].batch_size}, n={args.n}, "
        f"{torch.get_num_threads()} threads, median of {args.repeats}, "
        f"CE with MLE_n weight {args.ce_nll_weight:g}, --set {' '.join(args.set) or 'none'}"
    )
    print(table.to_string(float_format=lambda v: f"{v:,.2f}"))
    target = 1.5 if args.ce_nll_weight else 1.4
    print(f"iCE/CE time per epoch: {ratio:.2f}  (target <= {target})")


if __name__ == "__main__":
    main()
