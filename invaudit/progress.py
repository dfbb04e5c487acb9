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
        text = f"loss {r['loss']:.4f}  acc {100 * r['acc']:.2f}%"
        if "nuisance_acc" in r:  # only models with a nuisance part report it
            text += f"  nuisance {100 * r['nuisance_acc']:.1f}%"
        return text

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
        click.echo(epoch_line(metrics))


def epoch_line(metrics: dict[str, float]) -> str:
    """One epoch's summary; terms a model does not have (a plain CNN's z_n) are left out."""
    m = metrics
    parts = [f"epoch {m['epoch']:>3}", f"loss {m['loss']:.4f}"]
    if "sce" in m:
        parts += [
            f"sCE {m['sce']:.4f}",
            f"nCE {m['nce']:.4f}",
            f"MLE_n {m['mle_bits_per_dim']:.3f} b/d",
        ]
    parts.append(
        f"logit acc train {100 * m['logit_train_acc']:.2f}% test {100 * m['logit_test_acc']:.2f}%"
    )
    if "nuisance_train_acc" in m:
        parts.append(
            f"nuisance clf train {100 * m['nuisance_train_acc']:.2f}% "
            f"test {100 * m['nuisance_test_acc']:.2f}%"
        )
    return "  ".join(parts) + f"  ({m['seconds']:.0f} s)"
