"""The CLI's progress bars: one per training epoch, one per long attack step.

This module imports neither torch nor the trainer, so the CLI starts fast.
The classes follow the trainer's :class:`~invaudit.training.trainer.Callbacks`
and the attacks' :class:`~invaudit.attacks.base.Progress` by their methods (a
test holds them to every method those bases define).

Every bar labels its times: ``elapsed 1:02  ETA 3:10``.  On a terminal it is a
``click.progressbar`` redrawn at every step; where stderr is not a terminal (a
CI log, a pipe) click would show the label only, so a bar that runs longer than
:data:`LOG_EVERY` seconds prints a plain line at most that often, and one when
it is done (short bars stay silent there).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable

import click

#: Seconds between two progress lines where stderr is not a terminal.
LOG_EVERY = 30.0


def clock(seconds: float) -> str:
    """``m:ss`` (``h:mm:ss`` from an hour on)."""
    seconds = max(0, int(round(seconds)))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def times_text(done: int, total: int, elapsed: float) -> str:
    """``elapsed 1:02  ETA 3:10`` (``ETA --`` before the first step is done)."""
    if done <= 0 or total <= 0:
        eta = "--"
    else:
        eta = clock(elapsed / done * max(total - done, 0))
    return f"elapsed {clock(elapsed)}  ETA {eta}"


class _Bar:
    """One bar on stderr: ``click.progressbar`` on a terminal, timed lines elsewhere."""

    def __init__(
        self,
        label: str,
        total: int,
        extra: Callable[[], str] | None = None,
        *,
        now: Callable[[], float] = time.monotonic,
        tty: bool | None = None,
    ) -> None:
        self.label, self.total, self.extra, self.now = label, max(int(total), 0), extra, now
        self.done = 0
        self.logged = self.closed = False
        self.started = self.last_line = now()
        self.tty = _is_tty() if tty is None else tty
        self.bar = None
        if self.tty:
            self.bar = click.progressbar(
                length=max(self.total, 1),
                label=label,
                file=sys.stderr,
                width=24,
                show_eta=False,
                show_percent=True,
                show_pos=True,
                item_show_func=lambda _item: self.info(),
            )
            self.bar.__enter__()

    def info(self) -> str:
        text = times_text(self.done, self.total, self.now() - self.started)
        more = self.extra() if self.extra is not None else ""
        return f"{more}  {text}" if more else text

    def update(self, steps: int = 1) -> None:
        self.done += steps
        if self.bar is not None:
            self.bar.update(steps)
        elif self.now() - self.last_line >= LOG_EVERY:
            self.last_line, self.logged = self.now(), True
            _echo(f"{self.label}: {self.done}/{self.total} ({self._percent()})  {self.info()}")

    def _percent(self) -> str:
        return f"{100 * self.done / self.total:.0f}%" if self.total else "?%"

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self.bar is not None:
            self.bar.__exit__(None, None, None)
            self.bar = None
        elif self.logged:
            _echo(f"{self.label}: done in {clock(self.now() - self.started)}")


def _is_tty() -> bool:
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


def _echo(line: str) -> None:
    click.echo(line, file=sys.stderr)


class EpochProgress:
    """The trainer's callbacks as a bar per epoch on stderr.

    After an epoch's last batch the trainer evaluates on the test split, which
    can take a minute on a CPU: the bar closes and one line says so, rather than
    sitting at 100 %.  ``test_size`` (set by the CLI once the data is loaded) goes
    into that line.
    """

    def __init__(self, enabled: bool = True, test_size: int | None = None) -> None:
        self.enabled = enabled
        self.test_size = test_size
        self.bar: _Bar | None = None
        self.running: dict[str, float] = {}
        self.epoch = 0
        self.evaluating = False

    def _show(self) -> str:
        r = self.running
        if not r:
            return ""
        text = f"loss {r['loss']:.4f}  acc {100 * r['acc']:.2f}%"
        if "nuisance_acc" in r:  # only models with a nuisance part report it
            text += f"  nuisance {100 * r['nuisance_acc']:.1f}%"
        return text

    def epoch_start(self, epoch: int, epochs: int, batches: int) -> None:
        self.epoch, self.evaluating = epoch, False
        if not self.enabled:
            return
        self.running = {}
        self.bar = _Bar(f"epoch {epoch + 1}/{epochs}", batches, self._show)

    def batch_end(self, running: dict[str, float]) -> None:
        self.running = running
        if self.bar is not None:
            self.bar.update(1)
            if self.bar.total and self.bar.done >= self.bar.total:
                self.evaluate_start(self.test_size or 0)

    def evaluate_start(self, n_test: int) -> None:
        """The epoch's training is done and the test evaluation starts (once per epoch)."""
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        if not self.enabled or self.evaluating:
            return
        self.evaluating = True
        size = n_test or self.test_size
        what = f"{size:,} test examples".replace(",", " ") if size else "the test split"
        _echo(f"epoch {self.epoch + 1}: evaluating on {what}…")

    def epoch_end(self, metrics: dict[str, float]) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        click.echo(epoch_line(metrics))


class BarProgress:
    """An attack's progress as a bar on stderr, with elapsed time and ETA."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.bar: _Bar | None = None

    def start(self, label: str, total: int) -> None:
        if self.enabled:
            self.bar = _Bar(label, total)

    def advance(self, steps: int = 1) -> None:
        if self.bar is not None:
            self.bar.update(steps)

    def finish(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


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
    if "adv_epsilon" in m:  # adversarial training: the train accuracy is on the attacks
        parts.append(f"mean ε {m['adv_epsilon']:.3f}")
    parts.append(
        f"logit acc train {100 * m['logit_train_acc']:.2f}% test {100 * m['logit_test_acc']:.2f}%"
    )
    if "pgd10_test_acc" in m:
        parts.append(f"PGD-10 test {100 * m['pgd10_test_acc']:.2f}%")
    if "nuisance_train_acc" in m:
        parts.append(
            f"nuisance clf train {100 * m['nuisance_train_acc']:.2f}% "
            f"test {100 * m['nuisance_test_acc']:.2f}%"
        )
    return "  ".join(parts) + f"  (elapsed {m['seconds']:.0f} s)"
