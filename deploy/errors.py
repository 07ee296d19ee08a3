"""Errors of the camera pipeline (all user errors subclass :class:`EnetError`)."""

from __future__ import annotations

from enet.errors import EnetError


class SourceError(EnetError):
    """An input that cannot be opened or decoded."""


class SourceDisconnected(SourceError):
    """A live input stopped delivering frames; it is reopened with backoff."""


class SinkError(EnetError):
    """An output that cannot be opened or written."""


class NoFrameYet(Exception):  # noqa: N818 - a flow signal, not an error
    """A live source has no new frame within its poll interval; ask again."""
