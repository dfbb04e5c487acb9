"""The CLI's progress bar for training: one bar per epoch, running loss and accuracy."""

from __future__ import annotations

import sys

import click

from .training.trainer import Callbacks


class EpochProgress(Callbacks):
    """Implements the trainer's callbacks with ``click.progressbar`` on stderr."""

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self.bar = None
        self.running: dict[str, float] = {}

    def _show(self, _item: object) -> str:
        r = self.running
        if not r:
            return ""
        acc, nuisance = 100 * r["acc"], 100 * r["nuisance_acc"]
        return f"loss {r['loss']:.4f}  acc {acc:.2f}%  nuisance {nuisance:.1f}%"

    def epoch_start(self, epoch: int, epochs: int, batches: int) -> None:
        if not self.enabled:
            return
        self.running = {}
        self.bar = click.progressbar(
            length=batches,
            label=f"epoch {epoch + 1}/{epochs}",
            file=sys.stderr,
            item_show_func=self._show,
            width=24,
        )
        self.bar.__enter__()

    def batch_end(self, running: dict[str, float]) -> None:
        self.running = running
        if self.bar is not None:
            self.bar.update(1, current_item=True)

    def epoch_end(self, metrics: dict[str, float]) -> None:
        if self.bar is not None:
            self.bar.__exit__(None, None, None)
            self.bar = None
        click.echo(
            f"epoch {metrics['epoch']:>3}  loss {metrics['loss']:.4f}  sCE {metrics['sce']:.4f}  "
            f"nCE {metrics['nce']:.4f}  MLE_n {metrics['mle_bits_per_dim']:.3f} b/d  "
            f"logit acc train {100 * metrics['logit_train_acc']:.2f}% "
            f"test {100 * metrics['logit_test_acc']:.2f}%  "
            f"nuisance clf train {100 * metrics['nuisance_train_acc']:.2f}% "
            f"test {100 * metrics['nuisance_test_acc']:.2f}%  ({metrics['seconds']:.0f} s)"
        )
