"""Errors a user can cause.

Every error raised because of bad input (a wrong tensor, an unknown
architecture, a corrupt checkpoint, a malformed option) is an
:class:`InvauditError`.  Its message is one line that names what was expected
and what came, so the CLI can print it as it is and exit with code 2.
"""

from __future__ import annotations


class InvauditError(Exception):
    """Base class of every error a user can cause; the CLI exits 2 on it."""

    exit_code = 2


class ConfigError(InvauditError):
    """An unknown architecture, an unknown config key or an impossible value."""


class InputError(InvauditError):
    """A tensor of the wrong type, dtype or shape, or one holding NaN or inf."""


class CheckpointError(InvauditError):
    """A checkpoint that is missing, truncated, of another format or unsafe."""


class DataError(InvauditError):
    """A dataset that cannot be found, read or generated as asked."""


class OutputError(InvauditError):
    """An output path invaudit must not or cannot write: empty, the current folder,
    unwritable, or holding a file invaudit did not create."""


class PeerLost(InvauditError):
    """Another process of a ``torchrun`` audit stopped (killed, crashed) mid-run.

    Not bad input, so not exit 2: exit 4, and no report is written.
    """

    exit_code = 4
