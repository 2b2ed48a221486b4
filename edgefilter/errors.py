"""The one exception tree of edgefilter.

Every error a user can cause (a bad config line, a missing model file, a camera
URL that does not open, a malformed message on the wire) is raised as a subclass
of :class:`EdgefilterError` with a message that names what is wrong and where.
The CLI prints these as one line and exits with a documented status instead of
showing a traceback.

    EdgefilterError
    ├── ConfigError      bad config: every problem with its key path and line
    ├── ModelError       model or model card missing, corrupt, or unusable
    ├── SourceError      a source cannot be opened or read
    ├── PublishError     a ZeroMQ endpoint cannot be bound, bad CURVE keys
    ├── MessageError     a received message is not valid edgefilter v1
    ├── ReferenceError_  a drift reference file is missing or incompatible
    └── StateError       a state file cannot be read or written
"""
from __future__ import annotations

from dataclasses import dataclass


class EdgefilterError(Exception):
    """Base class of every error edgefilter raises on purpose."""


@dataclass(frozen=True)
class ConfigProblem:
    """One thing wrong in a config file."""

    path: str  # dotted key path, e.g. "sources[1].url"
    message: str
    line: int | None = None  # 1-based line in the file, when known
    file: str | None = None

    def __str__(self) -> str:
        where = self.file or "<config>"
        if self.line is not None:
            where = f"{where}:{self.line}"
        key = f" {self.path}:" if self.path else ""
        return f"{where}:{key} {self.message}"


class ConfigError(EdgefilterError):
    """The configuration is invalid; ``problems`` lists every issue found."""

    def __init__(self, problems: list[ConfigProblem] | ConfigProblem | str):
        if isinstance(problems, str):
            problems = [ConfigProblem(path="", message=problems)]
        elif isinstance(problems, ConfigProblem):
            problems = [problems]
        self.problems: list[ConfigProblem] = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


class ModelError(EdgefilterError):
    """The model file or its card is missing, corrupt or cannot be run."""


class SourceError(EdgefilterError):
    """A source cannot be opened or read."""


class PublishError(EdgefilterError):
    """Publishing cannot start: bind failure, missing or bad CURVE keys."""


class MessageError(EdgefilterError):
    """A message received over ZeroMQ is not a valid edgefilter v1 message."""


class ReferenceError_(EdgefilterError):
    """A drift reference file is missing, corrupt or made with another model."""


class StateError(EdgefilterError):
    """A state file cannot be read or written."""


# Exit statuses of the CLI (sysexits.h where one fits; systemd's unit uses 78).
EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 64
EXIT_DATAERR = 65
EXIT_NOINPUT = 66
EXIT_UNAVAILABLE = 69
EXIT_CONFIG = 78
