"""The error a missing key raises, wherever the strategy looked."""

from __future__ import annotations

from flowdapt.errors import ResourceNotFoundError


class ObjectNotFoundError(ResourceNotFoundError, KeyError, FileNotFoundError):
    """No value under this key in this namespace (in any place the strategy looks).

    A ``KeyError``, and also what code written for the original catches: there a missing object
    raised ``FileNotFoundError`` (no artifact), and its plugins catch ``ResourceNotFoundError``.
    """

    def __init__(self, key: str, namespace: str | None = None, where: str | None = None):
        self.key = key
        self.namespace = namespace
        self.where = where
        if namespace is None:  # rebuilt from a message only (a stage's error, raised in the caller)
            super().__init__(key)
        else:
            super().__init__(f"no object '{key}' in namespace '{namespace}' (looked in {where})")

    def __str__(self) -> str:
        return self.message

    def __reduce__(self):
        return type(self), (self.key, self.namespace, self.where)


# Raised to users and shown in tracebacks under the package's name, as before the split.
ObjectNotFoundError.__module__ = "flowdapt.object_store"
