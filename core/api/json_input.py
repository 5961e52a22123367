"""JSON that people and programs send us: decoded safely, without ambiguity, storable.

One reader for every entry point (API bodies, a tool's schema given as a JSON string, the
admin's JSON fields, import files), so one limit holds everywhere and what the API returns can
always be sent back. Python's decoder alone would let through what breaks later: duplicate keys
(silently, last one wins), integers too long to convert back to text, infinities, NUL
characters and lone surrogates (PostgreSQL cannot store them), and nesting deep enough to
exhaust the stack of any recursive code that reads the value afterwards.
"""

import json
import math
import re
from dataclasses import dataclass

from django.utils.translation import gettext

# Longer number literals are refused: Python will not convert an integer of more than 4,300
# digits back to text, and no real configuration needs more than a handful.
MAX_NUMBER_CHARACTERS = 100
# A reply names at most this many problems; the rest are counted.
MAX_PROBLEMS = 50

_UNSTORABLE_CHARACTER = re.compile("[\x00\ud800-\udfff]")


@dataclass(frozen=True)
class JSONProblem:
    pointer: str  # RFC 6901, "/" for the whole value
    message: str

    def __str__(self) -> str:
        return f"{self.pointer}: {self.message}"


class JSONInputError(ValueError):
    """The text is not JSON we accept; `problems` says where and why."""

    def __init__(self, problems: list[JSONProblem]):
        super().__init__("; ".join(str(problem) for problem in problems))
        self.problems = problems


class _Refused:
    """Stands in, while decoding, for a value refused later with its pointer."""

    def __init__(self, message: str):
        self.message = message


class _DuplicateKeys(dict):
    """An object in which a key appeared twice; `duplicates` names them."""

    duplicates: list[str]


def _object(pairs):
    value = dict(pairs)
    if len(value) == len(pairs):
        return value
    seen, duplicates = set(), []
    for key, _ in pairs:
        if key in seen:
            duplicates.append(key)
        seen.add(key)
    value = _DuplicateKeys(value)
    value.duplicates = duplicates
    return value


def _integer(text: str):
    if len(text) > MAX_NUMBER_CHARACTERS:
        return _Refused(
            gettext("a number of more than %(limit)s digits") % {"limit": MAX_NUMBER_CHARACTERS}
        )
    return int(text)


def _float(text: str):
    if len(text) > MAX_NUMBER_CHARACTERS:
        return _Refused(
            gettext("a number of more than %(limit)s characters") % {"limit": MAX_NUMBER_CHARACTERS}
        )
    value = float(text)
    if math.isinf(value):
        return _Refused(
            gettext("%(number)s is too large for a JSON number that can be stored")
            % {"number": text}
        )
    return value


def _constant(text: str):
    return _Refused(gettext("%(text)s is not valid JSON") % {"text": text})


def pointer_token(key) -> str:
    """One step of a JSON pointer (RFC 6901 escapes `~` and `/`). A lone surrogate, which no
    reply could encode, is written as its escape (`\\ud800`)."""
    token = str(key).replace("~", "~0").replace("/", "~1")
    return token.encode("utf-8", "backslashreplace").decode("utf-8")


def json_pointer(path) -> str:
    """The pointer of a path of keys and indexes; "/" for the root."""
    return "/" + "/".join(pointer_token(part) for part in path) if path else "/"


def json_problems(
    value, *, max_depth: int, max_values: int | None = None, pointer: str = ""
) -> list[JSONProblem]:
    """What makes a decoded value unacceptable, each with its pointer (at most MAX_PROBLEMS).

    Iterative, so a deep value costs no stack. Nothing below `max_depth` levels is visited,
    and the walk stops after `max_values` values (objects, arrays and scalars alike), so its
    cost is bounded by the limits, not by the input.
    """
    problems: list[JSONProblem] = []
    stack = [(pointer, value, 1)]
    visited = 0
    while stack and len(problems) < MAX_PROBLEMS:
        here, item, depth = stack.pop()
        where = here or "/"
        visited += 1
        if max_values is not None and visited > max_values:
            problems.append(
                JSONProblem(
                    pointer or "/",
                    gettext("more than %(limit)s values") % {"limit": f"{max_values:,}"},
                )
            )
            break
        if depth > max_depth:
            problems.append(JSONProblem(where, _nested_too_deep(max_depth)))
        elif isinstance(item, str):
            if _UNSTORABLE_CHARACTER.search(item):
                problems.append(JSONProblem(where, _character_message(item)))
        elif isinstance(item, _Refused):
            problems.append(JSONProblem(where, item.message))
        elif isinstance(item, float) and not math.isfinite(item):
            problems.append(
                JSONProblem(
                    where,
                    gettext("%(number)s is not a JSON number that can be stored")
                    % {"number": item},
                )
            )
        elif isinstance(item, dict):
            for key in getattr(item, "duplicates", ()):
                problems.append(
                    JSONProblem(f"{here}/{pointer_token(key)}", gettext("duplicate key"))
                )
            for key, child in item.items():
                token = pointer_token(key)
                if _UNSTORABLE_CHARACTER.search(key):
                    message = gettext("keys %(problem)s") % {"problem": _character_message(key)}
                    problems.append(JSONProblem(f"{here}/{token}", message))
                stack.append((f"{here}/{token}", child, depth + 1))
        elif isinstance(item, list):
            stack.extend((f"{here}/{index}", child, depth + 1) for index, child in enumerate(item))
    return sorted(problems, key=lambda problem: problem.pointer)


def unstorable_text_problem(text: str) -> str | None:
    """Why PostgreSQL could not store this text (NUL, lone surrogates), or None."""
    return _character_message(text) if _UNSTORABLE_CHARACTER.search(text) else None


def _character_message(text: str) -> str:
    if "\x00" in text:
        return gettext("must not contain NUL (\\u0000) characters")
    return gettext("must not contain lone surrogates (\\ud800-\\udfff): they are not Unicode text")


def _nested_too_deep(max_depth: int) -> str:
    return gettext("nested deeper than %(limit)s levels") % {"limit": max_depth}


def decode_json(text: str | bytes, *, max_depth: int) -> object:
    """Decode JSON text; what the text holds is not checked yet (see json_problems).

    Raises JSONInputError for text that is not JSON at all or nests too deeply to decode.
    Refused numbers and repeated keys are kept as markers that json_problems reports.
    """
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise JSONInputError(
                [JSONProblem("/", gettext("not UTF-8 text (byte %(at)s)") % {"at": exc.start})]
            ) from None
    try:
        return json.loads(
            text,
            object_pairs_hook=_object,
            parse_int=_integer,
            parse_float=_float,
            parse_constant=_constant,
        )
    except RecursionError:
        raise JSONInputError([JSONProblem("/", _nested_too_deep(max_depth))]) from None
    except json.JSONDecodeError as exc:
        message = gettext("not valid JSON (%(error)s at line %(line)s column %(column)s)") % {
            "error": exc.msg,
            "line": exc.lineno,
            "column": exc.colno,
        }
        raise JSONInputError([JSONProblem("/", message)]) from None


def parse_json(text: str | bytes, *, max_depth: int) -> object:
    """Decode JSON text, or raise JSONInputError naming every problem with its pointer."""
    value = decode_json(text, max_depth=max_depth)
    problems = json_problems(value, max_depth=max_depth)
    if problems:
        raise JSONInputError(problems)
    return value
