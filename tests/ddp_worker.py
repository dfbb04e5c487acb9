"""Run under torchrun by test_distributed.py: train, then dump this rank's weights."""

from __future__ import annotations

import sys
from pathlib import Path

import torch

from invaudit.training.losses import ICEConfig
from invaudit.training.trainer import Trainer, TrainSettings


def main(out_dir: str, device: str = "cpu") -> None:
    out = Path(out_dir)
    settings = TrainSettings(
        dataset="spheres",
        arch="firevnet-fc",
        arch_config={"hidden": 16, "blocks": 2},
        loss="ice",
        epochs=2,
        lr=1e-3,
        batch_size=32,
        device=device,
        dim=6,
        n_train=512,
        n_test=128,
        ice=ICEConfig(nuisance_hidden=16),
    )
    trainer = Trainer(settings, out / "ckpt.pt")
    rank = trainer.ctx.rank
    trainer.fit()
    torch.save(
        {
            "model": trainer.model.state_dict(),
            "game": trainer.game.state_dict(),
            "examples": len(trainer.train_sampler),
        },
        out / f"rank{rank}.pt",
    )


if __name__ == "__main__":
    main(*sys.argv[1:])
