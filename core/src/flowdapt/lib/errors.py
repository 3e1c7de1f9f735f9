"""``flowdapt.lib.errors``: the original's API error classes, with its names, codes and defaults.

They are our own :class:`~flowdapt.errors.FlowdaptError` classes, so ``except ResourceNotFoundError``
in code written for the original also catches what Flowdapt raises for a missing resource (and a
missing object store key, :class:`~flowdapt.object_store.ObjectNotFoundError`), and raising one
from a plugin's API route answers with its status code and ``detail``. They are built as in the
original: ``ResourceNotFoundError()``, ``BadRequestError(detail="...")``, ``APIError(418, "...")``.
"""

from __future__ import annotations

from pydantic import BaseModel

from flowdapt.errors import FlowdaptError, ResourceNotFoundError, ServiceDrainingError

__all__ = [
    "APIError",
    "APIErrorModel",
    "BadRequestError",
    "DatabaseConnectionError",
    "InactiveUserError",
    "InvalidCredentialsError",
    "InvalidJWTError",
    "MethodNotAllowedError",
    "NonUniqueValue",
    "NotAuthorizedError",
    "ResourceNotFoundError",
    "ServiceDrainingError",
    "UserNotFoundError",
]


class APIErrorModel(BaseModel):
    """The JSON body of an error response."""

    status_code: int = 500
    detail: str = "string"


#: The base of every API error: ``APIError(status_code=None, detail=None)``.
APIError = FlowdaptError


class DatabaseConnectionError(APIError):
    # The original declared status 0, which no HTTP response can carry.
    status_code = 503
    default_message = "Could not connect to the Database"


class MethodNotAllowedError(APIError):
    status_code = 405
    default_message = "Method not allowed"


class NotAuthorizedError(APIError):
    status_code = 403
    default_message = "Not authorized"


class InvalidCredentialsError(APIError):
    status_code = 403
    default_message = "Invalid credentials"


class InactiveUserError(APIError):
    status_code = 403
    default_message = "Inactive user"


class InvalidJWTError(APIError):
    status_code = 403
    default_message = "Invalid JWT token"


class UserNotFoundError(ResourceNotFoundError):
    default_message = "User not found"


class NonUniqueValue(APIError):
    status_code = 422
    default_message = "Value does not satisfy unique constraint"


class BadRequestError(APIError):
    status_code = 400
    default_message = "Bad request"
