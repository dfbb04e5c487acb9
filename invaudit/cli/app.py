"""The ``invaudit`` command group: its help, its examples, and its exit codes.

Library code never prints; the CLI does.  Exit codes:

- 0: done (and every gate check held);
- 1: only ever "a CI gate check failed" (``report``/``gate``; ``check``: the
  inverse is inexact);
- 2: bad input, one line on stderr: every :class:`InvauditError`, a click usage
  error, and any ``OSError`` (a file that cannot be read or written);
- 3: invaudit itself failed (a bug): the traceback, then one line;
- 4: another process of a ``torchrun`` audit stopped mid-run (nothing written);
- 143: stopped by SIGTERM (torchrun does this to the other ranks when one dies);
- 130: interrupted (Ctrl-C).
"""

from __future__ import annotations

import os
import signal
import threading
import traceback
from typing import Any

import click

from .. import __version__
from ..errors import InvauditError
from .ranks import is_helper_rank

#: Exit code of an unexpected exception (a bug), kept apart from 1 (a failed gate).
INTERNAL_ERROR_EXIT = 3
#: Exit code after Ctrl-C (128 + SIGINT, as shells report it).
INTERRUPTED_EXIT = 130
#: Exit code after SIGTERM (128 + 15), e.g. torchrun stopping a rank whose peer died.
TERMINATED_EXIT = 143


class Terminated(Exception):
    """SIGTERM arrived: unwind like Ctrl-C, so files being written are cleaned up."""


def _raise_terminated(signum: int, frame: Any) -> None:
    raise Terminated()

#: One example per command, shown at the end of its --help (a test parses each one).
EXAMPLES: dict[str, str] = {
    "archs": "invaudit archs",
    "check": "invaudit check --model zoo:mnist-ce",
    "info": "invaudit info zoo:mnist-ce",
    "train": "invaudit train --dataset mnist --loss ice --epochs 6 --out runs/mnist-ice.pt",
    "methods": "invaudit methods",
    "attack": "invaudit attack --model zoo:mnist-ce --method metamer --n 512 --out audit",
    "report": "invaudit report --model zoo:mnist-ce --out audit "
    "--fail-if 'probe.nuisance_accuracy > 0.5' --junit gate.xml",
    "compare": "invaudit compare zoo:mnist-ce zoo:mnist-ice --out compare-ce-ice",
    "gate": "invaudit gate audit/report.json --policy audit-policy.toml --junit gate.xml",
    "zoo": "invaudit zoo mnist-ce",
}


def one_line(text: object) -> str:
    return " ".join(str(text).split())


def os_error_line(err: OSError) -> str:
    """An ``OSError`` as one line: the file(s) and the reason."""
    reason = err.strerror or type(err).__name__
    files = [os.fsdecode(f) for f in (err.filename, err.filename2) if f is not None]
    if not files:
        return one_line(err) or reason
    return one_line(f"{' -> '.join(files)}: {reason}")


class InvauditGroup(click.Group):
    """A click group that keeps exit code 1 for a failed gate.

    User errors (:class:`InvauditError`, ``OSError``) become one line and exit
    code 2; an unexpected exception prints its traceback and exits 3.  Every
    command added gets its example (:data:`EXAMPLES`) at the end of its --help.
    """

    def add_command(self, cmd: click.Command, name: str | None = None) -> None:
        example = EXAMPLES.get(name or cmd.name or "")
        if example is not None and cmd.epilog is None:
            cmd.epilog = f"\b\nExample:\n  {example}"
        super().add_command(cmd, name)

    def invoke(self, ctx: click.Context) -> Any:
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, _raise_terminated)
        try:
            return super().invoke(ctx)
        except InvauditError as err:
            # Under torchrun every rank meets a bad input alike: rank 0 says it once.
            if not is_helper_rank() or err.exit_code != 2:
                click.echo(f"invaudit: error: {one_line(err)}", err=True)
            ctx.exit(err.exit_code)
        except (click.exceptions.Exit, click.ClickException, click.Abort, BrokenPipeError):
            raise  # click's own handling: exit codes 0-2, and a closed pipe
        except OSError as err:
            click.echo(f"invaudit: error: {os_error_line(err)}", err=True)
            ctx.exit(2)
        except KeyboardInterrupt:
            click.echo("invaudit: interrupted", err=True)
            ctx.exit(INTERRUPTED_EXIT)
        except Terminated:
            click.echo("invaudit: stopped by SIGTERM before it finished", err=True)
            ctx.exit(TERMINATED_EXIT)
        except Exception as err:
            traceback.print_exc()
            click.echo(
                f"invaudit: internal error: {type(err).__name__}: {one_line(err)} "
                "(a bug in invaudit; please report it with the traceback above)",
                err=True,
            )
            ctx.exit(INTERNAL_ERROR_EXIT)


@click.group(cls=InvauditGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="invaudit")
def main() -> None:
    """Audit classifiers for excessive invariance and excessive sensitivity.

    Exit codes: 0 done, 1 a gate check failed, 2 bad input (one line on
    stderr), 3 an invaudit bug.  `invaudit COMMAND --help` shows each command
    with an example.

    \b
    Example:
      invaudit report --model zoo:mnist-ce --out audit
    """
