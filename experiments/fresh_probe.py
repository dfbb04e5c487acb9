"""Fit a fresh 3-layer MLP on the frozen z_n (and z_s) of a checkpoint; print its accuracy.

Run: ``.venv/bin/python experiments/fresh_probe.py CKPT [--data-dir DIR] [--epochs 10]``.
This is the measurement issue 3 asks for (the adversarial D_nc being fooled
proves nothing); issue 4's ``probe`` attack will make it an audit method.
"""

from __future__ import annotations

import argparse
import json

import torch
from torch.utils.data import DataLoader

from invaudit.data.images import load_image_dataset
from invaudit.data.spheres import spheres_splits
from invaudit.models.checkpoint import load_model
from invaudit.training.probe import features, fit_probe


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--hidden", type=int, default=512)
    parser.add_argument("--limit", type=int, default=None, help="training examples for the probe")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    model = load_model(args.checkpoint)
    info = model.checkpoint_info["dataset"]
    if info["name"] == "spheres":
        opts = info["options"]
        train, test = spheres_splits(
            opts["dim"],
            tuple(opts["radii"]),
            opts["seed"],
            args.limit or opts["n_train"],
            opts["n_test"],
        )
    else:
        train = load_image_dataset(
            info["name"],
            "train",
            args.data_dir,
            train_transform=False,
            limit=args.limit,
            seed=args.seed,
        )
        test = load_image_dataset(info["name"], "test", args.data_dir, train_transform=False)
    torch.manual_seed(args.seed)
    zs_tr, zn_tr, y_tr = features(model, DataLoader(train, batch_size=500))
    zs_te, zn_te, y_te = features(model, DataLoader(test, batch_size=500))
    report = {}
    for name, (tr, te) in {"nuisance": (zn_tr, zn_te), "logit": (zs_tr, zs_te)}.items():
        r = fit_probe(
            tr,
            y_tr,
            te,
            y_te,
            model.num_classes,
            hidden=args.hidden,
            epochs=args.epochs,
            seed=args.seed,
        )
        report[name] = {
            "train_error": 1 - r.train_accuracy,
            "test_error": 1 - r.test_accuracy,
            "mi_lower_bound_bits": r.mi_lower_bound_bits,
        }
    report["logit_readout_test_error"] = 1 - (zs_te.argmax(1) == y_te).double().mean().item()
    report["logit_readout_train_error"] = 1 - (zs_tr.argmax(1) == y_tr).double().mean().item()
    print(
        json.dumps(
            {
                "checkpoint": args.checkpoint,
                "train_examples": len(y_tr),
                "test_examples": len(y_te),
                **report,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
