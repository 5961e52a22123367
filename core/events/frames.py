"""Positions and events as a stream writes them (core.events)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from django.db import OperationalError

RETRY_MILLISECONDS = 1000
KEEP_ALIVE = b": keep-alive\n\n"
_CURSOR = re.compile(r"([0-9]{1,18})\.([0-9]{1,18})")


class EventsUnavailable(OperationalError):
    """The hub could not read its position (the database is down): no stream can start (a
    database outage, so a 503 wherever it is raised: core.ops.middleware)."""


@dataclass(frozen=True)
class Cursor:
    """A position in both event sequences: the last revision number and label move id seen."""

    revision: int = 0
    label: int = 0

    def __str__(self) -> str:
        return f"{self.revision}.{self.label}"

    def latest(self, other: Cursor) -> Cursor:
        return Cursor(max(self.revision, other.revision), max(self.label, other.label))

    @classmethod
    def parse(cls, value: str | None) -> Cursor | None:
        """The cursor a Last-Event-ID names; None when it is not one."""
        match = _CURSOR.fullmatch((value or "").strip())
        return cls(int(match[1]), int(match[2])) if match else None


@dataclass(frozen=True)
class Event:
    kind: str  # "revision" | "label"
    position: int  # the revision number, or the label move id
    data: str  # JSON, serialized once for every subscriber
    created_at: object  # orders the two kinds

    @property
    def order(self) -> tuple:
        """Commit order across the two kinds (within a kind, the position's)."""
        return (self.created_at, self.kind == "label", self.position)

    def after(self, cursor: Cursor) -> bool:
        """Whether a subscriber at `cursor` has not seen this event."""
        if self.kind == "revision":
            return self.position > cursor.revision
        return self.position > cursor.label

    def advance(self, cursor: Cursor) -> Cursor:
        if self.kind == "revision":
            return Cursor(max(cursor.revision, self.position), cursor.label)
        return Cursor(cursor.revision, max(cursor.label, self.position))


def frame(kind: str, data: str, cursor: Cursor) -> bytes:
    """One event as written: every event carries the subscriber's position after it."""
    return f"id: {cursor}\nevent: {kind}\ndata: {data}\n\n".encode()


def reset_frame(cursor: Cursor, revision: int) -> bytes:
    return frame("reset", json.dumps({"revision": revision}), cursor)


OPENING = f"retry: {RETRY_MILLISECONDS}\n\n".encode()
