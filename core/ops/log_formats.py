"""How log lines look (`LOG_FORMAT`), and the request id every line written during a request
carries.

`json`: one JSON object per line (python-json-logger): time, level, logger, event, request_id,
and whatever structured fields the line was given (the request line's method, path, status…).
`console`: one readable line, the same fields appended as `name=value`.

Nothing here decides what is logged; what a request line holds is core.ops.request_log's.

`JsonLineWriter` writes a JSON line without the `logging` record machinery (a LogRecord, the
filters, the formatter's generic field walk: most of what a cache hit's request line cost),
to the same stream, in the same shape, when the line would reach only the app's JSON handler;
in the event loop it writes a tick's lines in one write, after the responses of that tick.
"""

import asyncio
import atexit
import contextvars
import logging
import math
import threading
from datetime import UTC, datetime
from json.encoder import encode_basestring

from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.json import JsonEncoder, JsonFormatter

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


class JsonLineFormatter(JsonFormatter):
    """json_formatter's class, which can also write a line from its fields (`line`)."""

    _encode = JsonEncoder(ensure_ascii=False).encode  # as the formatter's json.dumps call

    def line(self, level: str, logger_name: str, event: str, fields: dict, created: float) -> str:
        """What format() writes for a record of `logger_name` at `level` with message `event`,
        `fields` as its extras and `created` as its time (tests/test_logs.py compares them).
        Strings, whole numbers, finite floats and None are written here, a few times faster
        than the encoder's general walk; a line with any other value goes through it."""
        head = f'{{"level": {_string(level)}, "logger": {_string(logger_name)}, "event": '
        parts = [head + _string(event)]
        for name, value in fields.items():
            writer = _VALUE_WRITERS.get(type(value))
            text = None if writer is None else writer(value)
            if text is None:
                return self._encode(
                    {
                        "level": level,
                        "logger": logger_name,
                        "event": event,
                        **fields,
                        "time": _iso_time(created),
                    }
                )
            parts.append(f"{_string(name)}: {text}")
        parts.append(f'"time": "{_iso_time(created)}"}}')
        return ", ".join(parts)


_string = encode_basestring  # a str as JSON, non-ASCII kept (ensure_ascii=False)
# How json writes a value of each type (None: not here, the encoder's way).
_VALUE_WRITERS = {
    str: _string,
    int: int.__repr__,
    bool: lambda value: "true" if value else "false",
    float: lambda value: float.__repr__(value) if math.isfinite(value) else None,
    type(None): lambda _: "null",
}


# The last whole second _iso_time wrote, and its date and time as isoformat writes them.
_last_second: tuple[float, str] = (-1.0, "")


def _iso_time(created: float) -> str:
    """The formatter's `time` (datetime.isoformat, UTC), its date and time of day made once a
    second: the microseconds rounded as datetime.fromtimestamp rounds them (half to even)."""
    global _last_second
    fraction, whole = math.modf(created)
    micro = round(fraction * 1_000_000)
    if micro >= 1_000_000:
        whole, micro = whole + 1, micro - 1_000_000
    if whole < 0 or micro < 0:  # before 1970: datetime's way
        return datetime.fromtimestamp(created, tz=UTC).isoformat()
    second, text = _last_second
    if second != whole:
        text = datetime.fromtimestamp(whole, tz=UTC).isoformat().removesuffix("+00:00")
        _last_second = (whole, text)
    return f"{text}.{micro:06d}+00:00" if micro else f"{text}+00:00"


def json_formatter() -> JsonFormatter:
    """One JSON object per line, with the contract's names for the standard fields."""
    return JsonLineFormatter(
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


class JsonLineWriter:
    """Writes `logger`'s INFO lines straight to its destination when that is a plain
    StreamHandler with the app's JSON formatter (settings.LOGGING with LOG_FORMAT=json), and
    nothing else would see the line (no other handler on the way up, no filter but
    RequestIdFilter, which a line that carries its request_id doesn't need). `write` returns
    False otherwise (the console format, a test's handler, a logger filter): the caller then
    logs the usual way. Levels are honoured: the caller checks the logger's, `write` the
    handler's.

    In an event loop, lines wait for the end of the loop's current tick and go out in one
    write (the hits answered in one tick: one system call, not one each, and none before a
    response is sent); elsewhere (a thread), at once. Both under the handler's lock, so lines
    never interleave; what is still waiting at exit is written then."""

    def __init__(self, logger: logging.Logger):
        self.logger = logger
        self._waiting: dict[asyncio.AbstractEventLoop, tuple[logging.StreamHandler, list]] = {}
        self._guard = threading.Lock()  # `_waiting` (one loop per thread; threads share it)
        atexit.register(self.flush_all)

    def destination(self) -> logging.StreamHandler | None:
        """The one handler a line of `logger` would reach, when it is the app's JSON stream."""
        logger = self.logger
        if logger.filters or logger.disabled:
            return None
        found = None
        current = logger
        while current is not None:
            for handler in current.handlers:
                if found is not None or not _plain_json(handler):
                    return None
                found = handler
            if not current.propagate:
                break
            current = current.parent
        return found

    def write(self, event: str, fields: dict, created: float) -> bool:
        handler = self.destination()
        if handler is None:
            return False
        if handler.level > logging.INFO:
            return True  # the handler would drop it
        text = handler.formatter.line("INFO", self.logger.name, event, fields, created)
        text += handler.terminator
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            _write(handler, text)
            return True
        waiting = self._waiting.get(loop)
        if waiting is not None and waiting[0] is handler:
            waiting[1].append(text)
            return True
        if waiting is not None:  # the destination changed since: what waits goes out first
            self.flush(loop)
        with self._guard:
            self._waiting[loop] = (handler, [text])
        loop.call_soon(self.flush, loop)
        return True

    def flush(self, loop) -> None:
        with self._guard:
            waiting = self._waiting.pop(loop, None)
        if waiting is not None:
            _write(waiting[0], "".join(waiting[1]))

    def flush_all(self) -> None:
        for loop in list(self._waiting):
            self.flush(loop)


def _plain_json(handler: logging.Handler) -> bool:
    return (
        type(handler) is logging.StreamHandler
        and isinstance(handler.formatter, JsonLineFormatter)
        and all(isinstance(each, RequestIdFilter) for each in handler.filters)
    )


def _write(handler: logging.StreamHandler, text: str) -> None:
    """StreamHandler.emit's write and flush, for lines already formatted."""
    with handler.lock:
        try:
            handler.stream.write(text)
            handler.flush()
        except Exception:
            handler.handleError(logging.makeLogRecord({"msg": text}))
