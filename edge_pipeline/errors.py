"""One error hierarchy, so the CLI maps every failure to a documented exit code."""
from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping

from edge_pipeline.json_types import JsonObject, JsonValue

EXIT_OK = 0
EXIT_GATE_FAILED = 1
EXIT_USAGE = 2
EXIT_ENVIRONMENT = 3
EXIT_STAGE_FAILED = 4
EXIT_INTERRUPTED = 130          # 128 + SIGINT, as shells report it (SIGTERM: 143)
EXIT_SIGNAL_BASE = 128          # a stopping signal exits 128 + its number: SIGHUP 129, SIGINT 130, SIGTERM 143


class EdgepipeError(Exception):
    """Base class: carries the exit code the CLI returns for it."""

    exit_code = EXIT_STAGE_FAILED

    def to_dict(self) -> JsonObject:
        return {"type": type(self).__name__, "message": str(self)}


class ConfigError(EdgepipeError):
    exit_code = EXIT_USAGE


class UnknownPlugin(ConfigError):
    """A name that no registered plugin answers to; suggests the closest."""

    def __init__(self, kind: str, name: str, known: Iterable[str]):
        known = sorted(known)
        close = difflib.get_close_matches(name, known, n=1)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        super().__init__(f"unknown {kind} '{name}'. Valid: {', '.join(known) or '(none)'}.{hint}")
        self.kind, self.name, self.known = kind, name, known


class PluginError(ConfigError):
    """An installed plugin that breaks its kind's contract (edge_pipeline/plugins/contract.py): names the plugin and
    the member, in one line, when the plugin is loaded rather than deep inside a stage."""


class InputError(EdgepipeError):
    """The user's model, weights or data cannot be used as given."""

    exit_code = EXIT_USAGE


class Unsupported(EdgepipeError):
    """A converter or runtime cannot carry an op; names the op and the layer."""

    def __init__(self, message: str, op: str | None = None, layer: str | None = None):
        where = "".join([f" (op {op}" if op else "", f", layer {layer}" if layer else "", ")" if op else ""])
        super().__init__(message + where)
        self.op, self.layer = op, layer


class MissingDependency(EdgepipeError):
    exit_code = EXIT_ENVIRONMENT

    def __init__(self, package: str, purpose: str, hint: str | None = None):
        hint = hint or f"pip install {package}"
        super().__init__(f"{purpose} needs the '{package}' package, which is not installed. Install it with: {hint}")
        self.package = package


class RunnerUnavailable(EdgepipeError):
    exit_code = EXIT_ENVIRONMENT


class EnvironmentProblem(EdgepipeError):
    """The machine, not the input: a full disk, an unreadable system file, memory."""

    exit_code = EXIT_ENVIRONMENT


class StdoutUnwritable(EnvironmentProblem):
    """The results cannot be written to stdout (redirected to a full disk or /dev/full, a pipe whose reader
    is gone): an environment problem of its own, not a failed file write nor an internal error."""


class StageFailed(EdgepipeError):
    exit_code = EXIT_STAGE_FAILED


class ValidationMismatch(StageFailed):
    """An artifact's outputs differ from its float source beyond tolerance."""


class MemoryLimitExceeded(StageFailed):
    """The artifact needs more memory than the emulated device profile allows (`memory-mb`)."""


def _all_error_types() -> dict[str, type[EdgepipeError]]:
    found: dict[str, type[EdgepipeError]] = {}
    pending: list[type[EdgepipeError]] = [EdgepipeError]
    while pending:
        cls = pending.pop()
        found[cls.__name__] = cls
        pending.extend(cls.__subclasses__())
    return found


def rebuild_error(payload: Mapping[str, JsonValue]) -> EdgepipeError:
    """Turns an error reported by a worker process back into its class (and so its exit code)."""
    cls = _all_error_types().get(str(payload.get("type", "")), StageFailed)
    err = cls.__new__(cls)
    Exception.__init__(err, payload.get("message", "unknown error"))
    return err
