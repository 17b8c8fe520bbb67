"""The few exceptions: each is fatal and carries its exit code.

Findings are data (``Diagnostic``); these are only for when a command cannot
go on.  The CLI turns them into one message and the exit code.
"""

from __future__ import annotations

from .model import Diagnostic


class Nb2pipeError(Exception):
    """Base class: a message for the user and the process exit code."""

    exit_code = 1


class ConversionFailed(Nb2pipeError):
    """Error diagnostics stopped a conversion (nothing was written)."""

    def __init__(self, diagnostics: list[Diagnostic]) -> None:
        super().__init__(f"{len(diagnostics)} error(s)")
        self.diagnostics = diagnostics


class UsageError(Nb2pipeError):
    """The command line itself is wrong."""

    exit_code = 2


class InternalError(Nb2pipeError):
    """A bug in nb2pipe (e.g. it generated code black cannot parse)."""

    exit_code = 123
