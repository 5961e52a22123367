"""What a config GET reads, parsed once from its query string (`point_asked`), for the fast
paths and the view alike: live, the config at revision N (`?revision=N`), through label NAME
(`?label=NAME`; `?label=live` is live), or, when the query names neither, the label the key is
pinned to (docs/contract.md "Labels"; none: live). `?user_id=U` names the user a label read
serves (its variant under the label's rollout, docs/contract.md "Reads per user"); a live or
revision read ignores it. Other parameters are ignored.

Bad input is a 400 naming its parameter (`BadQuery`): a revision that is no number, a label
name that cannot be one, both at once, or an empty or overlong user id.

The parse is memoized per query string, and every user of a rollout sends their own: so the
user id is split off before the memo (`_split_user`), which then holds only the few points
clients ask for, and the user id is put back on the memoized point.
"""

import functools
import re
from dataclasses import dataclass
from urllib.parse import parse_qsl, unquote_plus

from django.core.exceptions import ValidationError

from core.api.keys import key_prefix
from core.kept import Kept
from core.models import LIVE, USER_ID_MAX_LENGTH, validate_label_name

REVISION_PARAMETER = "revision"
LABEL_PARAMETER = "label"
USER_PARAMETER = "user_id"
_USER_PAIR = USER_PARAMETER.encode() + b"="
# A revision number as a query parameter or command argument (at most 18 digits: a bigint).
REVISION_NUMBER = re.compile(r"[0-9]{1,18}")


class MalformedPoint(ValueError):
    """Text that names no point in the history (not a number, `live` or a label's name)."""


class BadQuery(ValueError):
    """A config read's query string names nothing readable: a 400 naming `field`."""

    def __init__(self, field: str, messages: list[str]):
        super().__init__(f"{field}: {' '.join(messages)}")
        self.field, self.messages = field, messages


def parse_revision(text) -> int:
    """A revision number given as text; raises MalformedPoint."""
    text = str(text).strip()
    if not REVISION_NUMBER.fullmatch(text):
        raise MalformedPoint(f"“{text}” is not a revision number.")
    return int(text)


@dataclass(frozen=True)
class Point:
    """What a read reads: `revision` N, through `label`, or neither (live). `asked`: the query
    named it; else it is the label its key was last seen pinned to (`plain_point`), and a hit
    must find the key's record pinned to that same label. `user_id`: whose variant a label
    read serves (None: the base)."""

    revision: int | None = None
    label: str | None = None
    asked: bool = False
    user_id: str | None = None

    def for_user(self, user_id: str | None) -> "Point":
        if user_id is None:
            return self
        return Point(self.revision, self.label, self.asked, user_id)


PLAIN = Point()
LIVE_ASKED = Point(asked=True)


def point_asked(query_string: str | bytes | None) -> Point:
    """The point the query string asks for (PLAIN: none); raises BadQuery. `query_string`:
    raw, as the WSGI environ (latin-1 text) or the ASGI scope (bytes) holds it."""
    return parse_query(query_string)[0]


def parse_query(query_string: str | bytes | None) -> tuple[Point, bool]:
    """`point_asked`, and whether the query string holds nothing else (no other parameter,
    none twice): the fast path answers only those, DRF may treat others (`?format=`)."""
    if not query_string:
        return PLAIN, True
    if isinstance(query_string, str):
        query_string = query_string.encode("latin1", "replace")
    if _USER_PAIR not in query_string:
        return _parse(query_string)
    rest, user_id, only_once = _split_user(query_string)
    point, only = _parse(rest) if rest else (PLAIN, True)
    return point.for_user(user_id), only and only_once


def _split_user(query_string: bytes) -> tuple[bytes, str | None, bool]:
    """(The query string without its `user_id` pairs, the user id (the last one wins, as for
    every parameter), whether it was given once); raises BadQuery for an empty or overlong id.
    A hit runs this for every per-user read: the one-pair case avoids splitting the rest."""
    start = query_string.find(_USER_PAIR)
    while start > 0 and query_string[start - 1 : start] != b"&":  # `xuser_id=`: not ours
        start = query_string.find(_USER_PAIR, start + 1)
    if start == -1:
        return query_string, None, True
    end = query_string.find(b"&", start)
    once = start >= 0 and query_string.find(_USER_PAIR, start + 1) == -1
    if once:
        end = len(query_string) if end == -1 else end
        raw = query_string[start + len(_USER_PAIR) : end]
        rest = query_string[: max(start - 1, 0)] + query_string[end + (start == 0) :]
    else:
        pairs = query_string.split(b"&")
        users = [pair for pair in pairs if pair.startswith(_USER_PAIR)]
        raw = users[-1][len(_USER_PAIR) :]
        rest = b"&".join(pair for pair in pairs if not pair.startswith(_USER_PAIR))
    if b"%" in raw or b"+" in raw:
        user_id = unquote_plus(raw.decode("utf-8", "replace"))
    else:
        user_id = raw.decode("utf-8", "replace")
    if not user_id or len(user_id) > USER_ID_MAX_LENGTH:
        raise BadQuery(USER_PARAMETER, [f"A user id is 1 to {USER_ID_MAX_LENGTH} characters long."])
    return rest, user_id, once


@functools.lru_cache(maxsize=256)  # a hit parses the few query strings its clients send once
def _parse(query_string: bytes) -> tuple[Point, bool]:
    pairs = parse_qsl(query_string.decode("utf-8", "replace"), keep_blank_values=True)
    params = dict(pairs)  # the last of a repeated one wins
    only = len(pairs) == 1 and set(params) <= {REVISION_PARAMETER, LABEL_PARAMETER}
    return _point(params), only


def point_of(*, revision=None, label=None) -> Point:
    """The point a request body names (`"revision"` and/or `"label"` values, None: not given),
    by the same rules as the query string (PLAIN: neither); raises BadQuery."""
    params = {REVISION_PARAMETER: revision, LABEL_PARAMETER: label}
    return _point({name: str(value) for name, value in params.items() if value is not None})


def _point(params: dict) -> Point:
    revision, label = params.get(REVISION_PARAMETER), params.get(LABEL_PARAMETER)
    if revision is not None and label is not None:
        raise BadQuery(LABEL_PARAMETER, ["Ask for a revision or a label, not both."])
    if revision is not None:
        try:
            return Point(revision=parse_revision(revision), asked=True)
        except MalformedPoint as exc:
            raise BadQuery(REVISION_PARAMETER, [str(exc)]) from None
    if label is None:
        return PLAIN
    if label == LIVE:
        return LIVE_ASKED
    try:
        validate_label_name(label)
    except ValidationError as exc:
        raise BadQuery(LABEL_PARAMETER, exc.messages) from None
    return Point(label=label, asked=True)


# The label each key was last seen pinned to (None: not pinned), by key prefix, learned from
# its record: a plain read by a pinned key then fetches its label's entry in its one MGET. A
# stale guess (the key was re-pinned) costs one miss: the hit checks the record. Per process.
_pinned_labels: Kept = Kept(10_000)  # {key prefix: label or None}


def plain_point(key: str, user_id: str | None = None) -> Point:
    """A plain read's point, as far as the fast path knows: the key's last seen pin (for the
    user `user_id`, if the query named one)."""
    label = _pinned_labels.get(key_prefix(key))
    return PLAIN.for_user(user_id) if label is None else Point(label=label, user_id=user_id)


def learn_pin(key: str, label: str | None) -> None:
    """Remember the label a current key record says its key is pinned to."""
    _pinned_labels.keep(key_prefix(key), label)
