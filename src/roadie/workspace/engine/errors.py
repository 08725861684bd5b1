"""The engine's failures, each with the exit code the command line gives it.

A Job's exit code and termination message are all the controller sees of a run, so every refusal
is a distinct class with a message a user can act on, and a stable code.
"""

from __future__ import annotations


class EngineError(Exception):
    """A failure the user can act on; `exit_code` is what `roadie jvs` exits with."""

    exit_code = 1
    reason = "EngineFailed"


class InvalidInputError(EngineError):
    """A tag, name, path, level or option the engine refuses before touching the volume."""

    exit_code = 2
    reason = "InvalidInput"


class NotFoundError(EngineError):
    """No snapshot matches a reference, or the volume is not laid out for JVS."""

    exit_code = 3
    reason = "NotFound"


class AmbiguousError(NotFoundError):
    """A prefix that matches more than one snapshot; the message lists them."""

    reason = "AmbiguousReference"


class CorruptError(EngineError):
    """A snapshot whose data no longer matches its recorded hashes."""

    exit_code = 4
    reason = "Corrupt"


class UnavailableError(EngineError):
    """An engine the volume cannot run (no reflink, not JuiceFS, no `juicefs` binary)."""

    exit_code = 5
    reason = "EngineUnavailable"


class BusyError(EngineError):
    """Another engine run holds the volume's lock for longer than the caller would wait."""

    exit_code = 6
    reason = "Busy"
