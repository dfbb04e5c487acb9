"""Where the class sits in z_n of a position-readout fiRevNet (issue 15).

Run: ``.venv/bin/python experiments/readout_parts.py CKPT [CKPT ...] --data-dir DIR``.

With ``--set factor_out=false --set readout=position`` z_n is one scale, so
the probe's ``by_scale`` option has nothing to split.  This script splits it
the way the readout lays it out: the logit channels at every other position
(spatial neighbours of the logits), the centre's 3x3 neighbourhood of those
channels, and the channels that hold no logit.  A fresh probe on each part
(the probe audit's MLP, smaller budget) tells which of them carries the class.
"""

from __future__ import annotations

import argparse

import torch

from invaudit.attacks.base import dataset_tensors
from invaudit.attacks.probe_fit import fit_probe
from invaudit.attacks.setup import prepare_audit, read_model
from invaudit.models.layers import PositionReadout


def parts(model) -> dict[str, torch.Tensor]:
    """z indices of each part of z_n, from the readout's own ordering of the last maps."""
    readout = next(m for m in model.modules() if isinstance(m, PositionReadout))
    channels, h, w = readout.input_shape
    k = readout.num_classes
    # z[:, j] (j >= k) holds flat map index order[j]; z[:, :k] are the logits.
    flat = readout.order[k:]
    channel, rest = flat // (h * w), flat % (h * w)
    row, col = rest // w, rest % w
    ch, cw = readout.position
    near = ((row - ch).abs() <= 1) & ((col - cw).abs() <= 1)
    index = torch.arange(k, k + len(flat))
    return {
        "logit channels, other positions": index[channel < k],
        "logit channels, 3x3 around the logits": index[(channel < k) & near],
        "channels without a logit": index[channel >= k],
        "all of z_n": index,
    }


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
        with torch.no_grad():
            xs, ys = dataset_tensors(setup.data.train(), args.train_n, 0)
            xt, yt = dataset_tensors(setup.data.test, args.test_n, 0)
            zs = torch.cat([model(xs[i : i + 500]) for i in range(0, len(xs), 500)])
            zt = torch.cat([model(xt[i : i + 500]) for i in range(0, len(xt), 500)])
        for name, index in parts(model).items():
            fitted = fit_probe(
                zs[:, index], ys, zt[:, index], yt, model.num_classes, epochs=args.epochs, seed=0
            )
            error = 1 - fitted.test_accuracy
            print(f"{path}\t{name}\t{len(index)} dims\tprobe test error {error:.4f}")


if __name__ == "__main__":
    main()
