"""How log lines look (`LOG_FORMAT`), and the request id every line written during a request
carries.

`json`: one JSON object per line (python-json-logger): time, level, logger, event, request_id,
and whatever structured fields the line was given (the request line's method, path, status…).
`console`: one readable line, the same fields appended as `name=value`.

Nothing here decides what is logged; what a request line holds is core.ops.request_log's.
"""

import contextvars
import logging

from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.json import JsonFormatter

# The request being answered in this worker (gunicorn's sync workers answer one at a time; a
# context variable stays right under threads or asyncio too). Set by core.ops.request_log.
current_request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "current_request_id", default=None
)

# The structured fields a line may carry, in the order the console shows them.
CONTEXT_FIELDS = (
    "method",
    "path",
    "status",
    "duration_ms",
    "cache",
    "api_key_name",
    "user",
    "request_id",
)


class RequestIdFilter(logging.Filter):
    """Adds the current request's id to every line (a warning logged deep in a request too)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "request_id", None) is None:
            record.request_id = current_request_id.get()
        return True


def json_formatter() -> JsonFormatter:
    """One JSON object per line, with SPEC's names for the standard fields."""
    return JsonFormatter(
        "{levelname}{name}{message}",
        style="{",
        rename_fields={"levelname": "level", "name": "logger", "message": "event"},
        timestamp="time",
        # Django's request logger passes the request object itself as an extra: its repr says
        # nothing the line doesn't, and an object's repr is not ours to vouch for.
        reserved_attrs=[*RESERVED_ATTRS, "request"],
        json_ensure_ascii=False,
    )


class ConsoleFormatter(logging.Formatter):
    """`time LEVEL logger: event name=value …`, for people reading a terminal."""

    def __init__(self):
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def formatMessage(self, record: logging.LogRecord) -> str:
        # On the first line, before any traceback that format() appends.
        context = " ".join(
            f"{field}={value}"
            for field in CONTEXT_FIELDS
            if (value := getattr(record, field, None)) is not None
        )
        line = super().formatMessage(record)
        return f"{line} {context}" if context else line
