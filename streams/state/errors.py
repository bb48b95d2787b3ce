"""Errors raised by state stores."""

from __future__ import annotations

from pathlib import Path


class StoreError(Exception):
    """A state store could not be opened, read or written."""


class StoreCorruptedError(StoreError):
    """The store's files on disk are unreadable; the only way forward is to wipe and rebuild them.

    Carries the store's path so a caller that failed to open the store can still wipe it.
    """

    def __init__(self, name: str, path: Path, detail: str) -> None:
        super().__init__(
            f"state store {name!r} at {path} is corrupted ({detail}); wipe the directory "
            "and rebuild the store from its changelog"
        )
        self.name = name
        self.path = path
        self.detail = detail
