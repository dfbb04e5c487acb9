"""Which part of z_n holds the class: a fresh probe on each scale of a firevnet-mnist's z.

Run: ``.venv/bin/python experiments/probe_by_scale.py CKPT [CKPT ...] --data-dir DIR``.

firevnet-mnist factors out half its variables after stage 1 (392 dims, 4
steps deep at the CPU default) and half the rest after stage 2 (196 dims,
8 steps); only the last 196 (12 steps) reach the DCT readout that holds the
logits.  A bijection only a few steps deep cannot make the early variables
independent of the digit, so iCE can only succeed if the class leaves them:
this script measures, per scale, how much of it is left.
"""

from __future__ import annotations

import argparse

import torch

from invaudit.attacks.base import dataset_tensors
from invaudit.attacks.setup import prepare_audit, read_model
from invaudit.training.probe import fit_probe


def scales(model) -> dict[str, slice]:
    """The z index ranges of the readout's nuisance part and of each factored-out part.

    Each factor-out keeps half the variables, and z is laid out innermost
    first: [readout, factored out after the last-but-one stage, ..., after stage 1].
    """
    stages = model.config["stages"]
    c, d = model.num_classes, model.dim
    start = d // 2 ** (stages - 1)
    parts = {"readout z_n (deepest)": slice(c, start)}
    for stage in range(stages - 1, 0, -1):
        size = d // 2**stage
        parts[f"factored out after stage {stage}"] = slice(start, start + size)
        start += size
    parts["all of z_n"] = slice(c, d)
    return parts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoints", nargs="+")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--train-n", type=int, default=10_000)
    parser.add_argument("--test-n", type=int, default=2_000)
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args()
    for path in args.checkpoints:
        setup = prepare_audit(read_model(path), data_dir=args.data_dir, download=False)
        model = setup.model
        if model.arch != "firevnet-mnist" or model.dim != 784:
            raise SystemExit(f"{path}: expects a 28x28 firevnet-mnist, got {model.arch}")
        with torch.no_grad():
            xs, ys = dataset_tensors(setup.data.train(), args.train_n, 0)
            xt, yt = dataset_tensors(setup.data.test, args.test_n, 0)
            zs = torch.cat([model(xs[i : i + 500]) for i in range(0, len(xs), 500)])
            zt = torch.cat([model(xt[i : i + 500]) for i in range(0, len(xt), 500)])
        for name, part in scales(model).items():
            result = fit_probe(zs[:, part], ys, zt[:, part], yt, model.num_classes,
                               epochs=args.epochs)
            print(f"{path}\t{name}\t{part.stop - part.start} dims\t"
                  f"test error {1 - result.test_accuracy:.2%}")


if __name__ == "__main__":
    main()
