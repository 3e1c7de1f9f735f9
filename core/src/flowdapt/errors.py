"""Exceptions with messages a user can act on.

The API maps each class to an HTTP status through ``status_code``; the CLI maps them to exit codes.
"""

from __future__ import annotations


class FlowdaptError(Exception):
    """Base class of every error Flowdapt raises on purpose."""

    status_code: int = 500
    #: The message when none is given.
    default_message: str = "Internal Server Error"

    def __init__(
        self,
        message: str | int | None = None,
        detail: str | None = None,
        *,
        status_code: int | None = None,
        headers: dict[str, str] | None = None,
    ):
        # Code written for the original raises its API errors (flowdapt.lib.errors, which are
        # these classes) as ``Error(status_code, detail)`` or ``Error(detail=...)``.
        if isinstance(message, int) and not isinstance(message, bool):
            message, status_code = detail, message
        elif message is None:
            message = detail
        if message is None:
            message = self.default_message
        if status_code is not None:
            self.status_code = status_code
        self.headers = headers
        super().__init__(message)
        self.message = message

    @property
    def detail(self) -> str:
        """The message (the original's API errors call it ``detail``)."""
        return self.message

    def __str__(self) -> str:
        return self.message


class ValidationError(FlowdaptError, ValueError):
    """A resource, setting or input is invalid. ``field`` names where, as a dotted path."""

    status_code = 400

    def __init__(self, message: str, *, resource: str | None = None, field: str | None = None):
        self.resource = resource
        self.field = field
        prefix = ""
        if resource:
            prefix += f"{resource}: "
        if field:
            prefix += f"{field}: "
        super().__init__(prefix + message)


class StorageFullError(FlowdaptError):
    """The database or the disk under it is full: nothing was written. Free space and retry."""

    status_code = 507


class StorageUnavailableError(FlowdaptError):
    """The database cannot be written just now (read-only, locked for too long, unreachable)."""

    status_code = 503


class ResourceNotFoundError(FlowdaptError, LookupError):
    status_code = 404
    default_message = "Resource not found"


class ConflictError(ValidationError):
    """A resource with the same name already exists (400, as in the original API)."""


class ConfigurationError(FlowdaptError):
    """The settings ask for something that cannot be provided (unknown backend, bad options)."""


class PluginNotFoundError(ConfigurationError):
    """A backend name that no loaded plugin registered."""


class ServiceDrainingError(FlowdaptError):
    status_code = 503

    def __init__(self, message: str = "Service is draining, no new workflow runs accepted"):
        super().__init__(message)


class StageError(FlowdaptError):
    """A stage failed; ``exc_type`` and ``exc_message`` describe the original exception."""

    def __init__(self, stage: str, exc_type: str, exc_message: str, traceback: str = ""):
        self.stage = stage
        self.exc_type = exc_type
        self.exc_message = exc_message
        self.traceback = traceback
        super().__init__(f"stage '{stage}' failed: {exc_type}: {exc_message}")


class StageTimeoutError(FlowdaptError, TimeoutError):
    """A stage call ran longer than its ``timeout`` option."""


class RunCancelledError(FlowdaptError):
    """The run was cancelled before it finished."""


def transient_storage_error(exc: BaseException) -> bool:
    """Storage errors that go away by themselves (space freed, lock released, database back):
    worth retrying, and no sign that what was being stored is wrong."""
    import errno

    if isinstance(exc, StorageFullError | StorageUnavailableError | ConnectionError | TimeoutError):
        return True
    return isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EROFS)
