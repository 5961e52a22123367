"""The three kinds of config read, with one interface: LiveRead, RevisionRead, LabelRead.

Each names the cache keys of its part of the hit's one MGET (`cache_names`: its entry in the
response's coding, then its counter's mirror if it has one: (entry, mirror) as
core.reads.build takes them), answers from what they held
(`hit`: None unless current), and answers a miss (`get_or_build`: built once, core.reads.build).
Every answer carries `headers`. What needs the apps (a live config from the rows, the state at
a revision from the history, a label's revision) is registered by the upper floors at start
(`register`, from their AppConfig.ready()), so nothing here imports them.

Freshness. A live entry is tagged with its counter (core.reads.entries.counter_name) as the
database held it *before* the entry's data was read, and a change raises the counter's mirror
*before* it commits (core.store). So:
- the hit path compares the entry's tag with the mirror (no SQL): equal means no change has
  committed since the entry's data was read, because any such change raised the mirror above;
- the miss path compares it with the database's counter, read first thing: equal means the
  entry holds data at least that new, and nothing newer had committed when we looked.
A change that raised the mirror and then rolled back leaves the mirror one ahead of the
database: no entry equals it, so hits become misses (the miss path still serves the stored
entry, tag = database counter, for one query) until the next committed change catches the
database up. Nothing stale is ever served; it only costs a query per read meanwhile.
A label read is the same argument with the label's move counter (config_backend.history.labels).
A read at a revision needs none: its entry is tagged with the revision and never changes
(`IMMUTABLE`); its 404 (the assistant was not active then) does not either, and is kept too.
"""

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field

from config_client.rollout import BASE, CANDIDATE
from config_client.rollout import variant as rollout_variant
from rest_framework.renderers import JSONRenderer

from core import store
from core.kept import Kept
from core.models import ConfigRevision
from core.reads import build
from core.reads.codings import IDENTITY, VARY, coded_etag, content_encoding, etag_matches
from core.reads.entries import (
    ABSENT,
    counter_name,
    label_entry_key,
    label_payload,
    label_rollout_key,
    label_rollout_stamp_key,
    live_entry_key,
    revision_entry_key,
    rollout_digest,
    split_entry,
    split_label_payload,
    tagged,
)
from core.reads.points import Point

# Says whether the cache answered ("hit") or the config was built ("miss").
CACHE_HEADER = "X-Config-Cache"
# Which variant of a label read answered (docs/contract.md "Reads per user"): sent on every
# label read (`base` without a user id), on no other.
VARIANT_HEADER = "X-Config-Variant"
NO_CACHE = "private, no-cache"
# The config at a revision never changes: a client may keep it for good.
IMMUTABLE = "private, max-age=31536000, immutable"
# How long a config at a revision stays in the cache: its content never changes, so any
# lifetime is correct; a finite one lets Redis (`volatile-lru`) evict entries nobody reads.
REVISION_ENTRY_SECONDS = 30 * 24 * 3600


class NothingThere(LookupError):
    """No active assistant with this id at the point read: a 404."""


@dataclass
class Builders:
    """What the upper floors give (`register`): `live_config(assistant_id, revision)` (a dict;
    None: no active assistant), `is_active(assistant_id)`, `config_at(revision, assistant_id)`
    (a dict, None: not active then; raises a LookupError for a revision the history does not
    hold) and `label_state(name)`: the label's (base revision, rollout: its JSON object or
    None) (raises a LookupError for an unknown label)."""

    live_config: Callable[[str | None, int], dict | None] | None = None
    is_active: Callable[[str], bool] | None = None
    config_at: Callable[[int, str | None], dict | None] | None = None
    label_state: Callable[[str], tuple[int, dict | None]] | None = None


builders = Builders()


def register(**functions) -> None:
    for name, function in functions.items():
        if not hasattr(builders, name):
            raise TypeError(f"No builder named {name!r}.")
        setattr(builders, name, function)


def render_json(data) -> bytes:
    return JSONRenderer().render(data)


@dataclass(eq=False)
class AnswerHead:
    """An answer's headers (shared by every answer with the same: not to be changed), and what
    a server wrapper made of them, by (wrapper, secure): core.reads.fast_path encodes them with
    its security headers once. Kept as long as the head is (_heads)."""

    headers: list[tuple[str, str]]
    made: dict = field(default_factory=dict)


@dataclass
class ConfigAnswer:
    status: int  # 200 or 304
    headers: list[tuple[str, str]]
    body: bytes
    key_name: str | None = None  # whose key a hit answered, for the request log
    head: AnswerHead | None = None  # a hit's: `headers`, kept for the answers of its entry


# The heads of the answers this process made, by all they depend on: the hits of one entry share
# one, built once (and encoded once by the server wrapper).
_heads: Kept = Kept(1024)


class Read:
    """What the three kinds share: an assistant (None: the bundle), a point, and the answer."""

    cache_control = NO_CACHE
    mirror_name: str | None = None
    entry_seconds: int | None = None
    keeps_absence = False

    def __init__(self, assistant_id: str | None, point: Point):
        self.assistant_id, self.point = assistant_id, point

    def same(self, other) -> bool:
        return type(self) is type(other) and (self.assistant_id, self.point) == (
            other.assistant_id,
            other.point,
        )

    def headers(self, revision: int, etag: str, coding: str, cached: bool, variant=None) -> list:
        """Every config response's headers, hit or miss, 200 or 304 (a 200 adds its types);
        a label read's say its variant."""
        headers = [
            ("ETag", coded_etag(etag, coding)),
            ("X-Config-Revision", str(revision)),
            ("Cache-Control", self.cache_control),
            ("Vary", VARY),
            (CACHE_HEADER, "hit" if cached else "miss"),
        ]
        if variant is not None:
            headers.append((VARIANT_HEADER, variant))
        return headers

    def answer(
        self, revision, etag, body, coding, if_none_match, cached, variant=None
    ) -> ConfigAnswer:
        status = 304 if etag_matches(if_none_match, etag) else 200
        made = (self.cache_control, revision, etag, coding, cached, variant, status)
        head = _heads.get(made)
        if head is None:
            headers = self.headers(revision, etag, coding, cached, variant)
            if status == 200:
                types = [("Content-Type", "application/json"), *content_encoding(coding)]
                headers = [*types, *headers]
            head = _heads.keep(made, AnswerHead(headers))
        return ConfigAnswer(status, head.headers, b"" if status == 304 else body, head=head)


class LiveRead(Read):
    """The current config: tagged with its counter (the assistant's, or `config`)."""

    def __init__(self, assistant_id: str | None, point: Point):
        super().__init__(assistant_id, point)
        self.mirror_name = counter_name(assistant_id)

    def entry_key(self, coding: str) -> str:
        return live_entry_key(self.assistant_id, coding)

    def etag(self, revision: int) -> str:
        tag = f"{revision}-{self.assistant_id}" if self.assistant_id else f"{revision}"
        return f'"{tag}"'

    def cache_names(self, coding: str) -> list[str]:
        return [self.entry_key(coding), store.revision_key(self.mirror_name)]

    def hit(self, values, coding, if_none_match) -> ConfigAnswer | None:
        entry, mirror = values
        if mirror is None:
            return None
        revision = int(mirror)
        tag, body = split_entry(entry)
        if tag != revision:
            return None  # also for a 304: a current entry proves the assistant is active
        return self.answer(revision, self.etag(revision), body, coding, if_none_match, True)

    def get_or_build(self, coding, if_none_match, cached=None) -> ConfigAnswer:
        revision = store.committed_counter(self.mirror_name)  # first: see the module docstring
        etag = self.etag(revision)
        if etag_matches(if_none_match, etag):
            if self.assistant_id is not None and not builders.is_active(self.assistant_id):
                raise NothingThere("No active assistant with this id.")
            return ConfigAnswer(304, self.headers(revision, etag, coding, False), b"")

        def make():
            config = builders.live_config(self.assistant_id, revision)
            return build.Built(None if config is None else render_json(config))

        body, from_cache = build.get_or_build(
            self, tag=revision, build=make, coding=coding, cached=cached
        )
        if body is None:
            raise NothingThere("No active assistant with this id.")
        return self.answer(revision, etag, body, coding, None, from_cache)


class RevisionRead(Read):
    """The config as it was at a revision (`?revision=N`): never changes, 404 included."""

    cache_control = IMMUTABLE
    entry_seconds = REVISION_ENTRY_SECONDS
    keeps_absence = True

    @property
    def revision(self) -> int:
        return self.point.revision

    def entry_key(self, coding: str) -> str:
        return revision_entry_key(self.revision, self.assistant_id, coding)

    def etag(self) -> str:
        # "at-": never equal to a live config's ETag, whose body differs (its own revisions).
        tag = (
            f"at-{self.revision}-{self.assistant_id}"
            if self.assistant_id
            else f"at-{self.revision}"
        )
        return f'"{tag}"'

    def cache_names(self, coding: str) -> list[str]:
        return [self.entry_key(coding)]

    def hit(self, values, coding, if_none_match) -> ConfigAnswer | None:
        tag, body = split_entry(values[0])
        if tag != self.revision or body == ABSENT:
            return None  # a kept 404 is Django's to answer, in its error shape
        return self.answer(self.revision, self.etag(), body, coding, if_none_match, True)

    def body(self, coding: str = IDENTITY, cached=None) -> tuple[bytes | None, bool]:
        """(The config at the revision in `coding`, None if the assistant was not active then;
        whether it came from the cache). Raises a LookupError for an unknown revision."""

        def make():
            config = builders.config_at(self.revision, self.assistant_id)
            return build.Built(None if config is None else render_json(config))

        if cached is not None:
            cached = (cached[0], b"")
        return build.get_or_build(self, tag=self.revision, build=make, coding=coding, cached=cached)

    def get_or_build(self, coding, if_none_match, cached=None) -> ConfigAnswer:
        body, from_cache = self.body(coding, cached)
        if body is None:
            raise NothingThere(f"No active assistant with this id at revision {self.revision}.")
        return self.answer(self.revision, self.etag(), body, coding, if_none_match, from_cache)


def content_etag(body: bytes) -> str:
    """The ETag of a label read: a hash of the config without its `revision` fields (the
    bundle's and each assistant's), so it changes only with the content: moving a label
    between two revisions where the config read did not change keeps it (a client's copy
    stays valid, a 304). The move counter is not in it, nor the revision."""
    config = json.loads(body)
    config.pop("revision", None)
    for assistant in config.get("assistants", ()):
        assistant.pop("revision", None)
    digest = hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()
    return f'"label-{digest[:32]}"'


# The last rollout record parsed, by label, with its bytes: a hit compares bytes rather than
# parsing an allow-list of up to 1,000 ids again. Per process; bounded by the labels read.
_parsed_rollouts: Kept = Kept(1000)  # {label: (payload, rollout)}


def parsed_rollout(label: str, payload: bytes) -> dict | None:
    """A rollout record's payload as config_client.rollout.variant reads it (None: no
    rollout), its users a frozenset."""
    memo = _parsed_rollouts.get(label)
    if memo is not None and memo[0] == payload:
        return memo[1]
    rollout = None
    if payload != ABSENT:
        rollout = json.loads(payload)
        rollout["users"] = frozenset(rollout["users"])
    _parsed_rollouts.keep(label, (payload, rollout))
    return rollout


class LabelVariantEntry:
    """The entry of one variant of a label read, as core.reads.build names an entry."""

    entry_seconds = store.ENTRY_SECONDS
    keeps_absence = True

    def __init__(self, read: "LabelRead", variant: str):
        self.read, self.variant = read, variant
        self.mirror_name = read.mirror_name

    def entry_key(self, coding: str) -> str:
        return label_entry_key(self.read.point.label, self.read.assistant_id, coding, self.variant)


# The last rollout record of each label this process parsed: {label: (its digest, rollout)}.
# A per-user hit whose stamp (fetched in its MGET, tagged with the current move counter) has
# that digest knows the user's variant: its MGET fetches that variant's entry alone, not the
# record nor the other variant. The digest is of the content, so a restored database whose
# counters went back never matches a rollout it does not hold.
_known_rollouts: Kept = Kept(1000)  # {label: (digest, rollout)}


def know_rollout(label: str, payload: bytes, rollout: dict | None) -> None:
    _known_rollouts.keep(label, (rollout_digest(payload), rollout))


class LabelRead(Read):
    """The config at a label's revision: tagged with the label's move counter. With a user id,
    the user's variant under the label's rollout (config_client.rollout.variant, the one rule),
    picked with no second round trip: when this process parsed the label's rollout record
    (`_known_rollouts`), the MGET fetches the user's variant's entry, the mirror and the
    record's stamp, and the hit checks the stamp is current and of that record; else it fetches
    the base's and the candidate's entries and the record, and picks (learning the record)."""

    entry_seconds = store.ENTRY_SECONDS
    keeps_absence = True

    def __init__(self, assistant_id: str | None, point: Point):
        super().__init__(assistant_id, point)
        self.mirror_name = ConfigRevision.for_label(point.label)
        # What cache_names planned for a user: (digest, rollout, variant) known beforehand, or
        # None (the record is fetched). Decided once: the MGET's values follow the plan.
        self.known: tuple[bytes, dict | None, str] | None = None
        self.planned = False

    def entry_key(self, coding: str) -> str:
        return label_entry_key(self.point.label, self.assistant_id, coding)

    def cache_names(self, coding: str) -> list[str]:
        label, mirror = self.point.label, store.revision_key(self.mirror_name)
        if self.point.user_id is None:
            return [self.entry_key(coding), mirror]
        if not self.planned:
            self.planned = True
            known = _known_rollouts.get(label)
            if known is not None:
                self.known = (*known, pick_variant(self.point, known[1]))
        if self.known is not None:
            variant_entry = label_entry_key(label, self.assistant_id, coding, self.known[2])
            return [variant_entry, mirror, label_rollout_stamp_key(label)]
        return [
            self.entry_key(coding),
            mirror,
            label_rollout_key(label),
            label_entry_key(label, self.assistant_id, coding, CANDIDATE),
        ]

    def known_current(self, values, moves: int) -> bool:
        """Whether the rollout this read planned with is the label's as of `moves`: the stamp
        it fetched is tagged `moves` and holds the digest of the record it was parsed from."""
        tag, digest = split_entry(values[2])
        return tag == moves and digest == self.known[0]

    def hit(self, values, coding, if_none_match) -> ConfigAnswer | None:
        entry, mirror, *rollout_values = values
        if mirror is None:
            return None
        moves = int(mirror)
        variant = BASE
        if self.known is not None:
            if not self.known_current(values, moves):
                return None  # the label changed since: the miss path learns it again
            variant = self.known[2]
        elif rollout_values:
            record, candidate_entry = rollout_values
            tag, payload = split_entry(record)
            if tag != moves:
                return None
            rollout = parsed_rollout(self.point.label, payload)
            know_rollout(self.point.label, payload, rollout)
            variant = pick_variant(self.point, rollout)
            if variant == CANDIDATE:
                entry = candidate_entry
        tag, payload = split_entry(entry)
        if tag != moves or payload == ABSENT:
            return None
        revision, etag, body = split_label_payload(payload)
        return self.answer(revision, etag, body, coding, if_none_match, True, variant)

    def get_or_build(self, coding, if_none_match, cached=None) -> ConfigAnswer:
        label = self.point.label
        moves = store.committed_counter(self.mirror_name)  # first: see the module docstring
        state = []  # the label's (revision, rollout), read once, after `moves`

        def label_state():
            if not state:
                state.append(builders.label_state(label))
            return state[0]

        variant, entry_cached = BASE, None if cached is None else cached[:2]
        if self.point.user_id is not None:
            known = self.known is not None and cached is not None
            if known and self.known_current(cached, moves):
                rollout = self.known[1]
            else:
                fetched_record = cached if cached is not None and self.known is None else None
                rollout = self.current_rollout(moves, fetched_record, label_state)
            variant = pick_variant(self.point, rollout)
            if cached is None:
                entry_cached = None
            elif self.known is not None:  # the MGET fetched the entry of the variant planned
                entry_cached = cached[:2] if self.known[2] == variant else None
            elif variant == CANDIDATE:
                entry_cached = (cached[3], cached[1])

        def make():
            revision, rollout = label_state()
            if variant == CANDIDATE and rollout is not None:
                revision = rollout["revision"]
            body, _ = RevisionRead(self.assistant_id, Point(revision=revision)).body()
            if body is None:
                return build.Built(None)
            head = label_payload(revision, content_etag(body), b"")
            return build.Built(body, head)

        payload, from_cache = build.get_or_build(
            LabelVariantEntry(self, variant),
            tag=moves,
            build=make,
            coding=coding,
            cached=entry_cached,
        )
        if payload is None:
            raise NothingThere(f"No active assistant with this id at label “{label}”.")
        revision, etag, body = split_label_payload(payload)
        return self.answer(revision, etag, body, coding, if_none_match, from_cache, variant)

    def current_rollout(self, moves: int, cached, label_state) -> dict | None:
        """The label's rollout as of `moves`: the record this request fetched if current, else
        the label's row (read after `moves`: as new as the tag says), stored as the record with
        its stamp. Either way this process knows it afterwards."""
        label = self.point.label
        if cached is not None:
            tag, payload = split_entry(cached[2])
            if tag == moves:
                rollout = parsed_rollout(label, payload)
                know_rollout(label, payload, rollout)
                return rollout
        rollout = label_state()[1]
        payload = ABSENT if rollout is None else render_json(rollout)
        record = {
            label_rollout_key(label): tagged(moves, payload),
            label_rollout_stamp_key(label): tagged(moves, rollout_digest(payload)),
        }
        store.try_cache(
            "storing a label's rollout", lambda s: s.set_many(record, store.ENTRY_SECONDS)
        )
        rollout = parsed_rollout(label, payload)
        know_rollout(label, payload, rollout)
        return rollout


def pick_variant(point: Point, rollout: dict | None) -> str:
    """`base` or `candidate` for the point's user (config_client.rollout.variant)."""
    return rollout_variant(point.label, rollout, point.user_id)


def read_for(assistant_id: str | None, point: Point) -> Read:
    """The read of `point` (revision, label, or live) for this assistant (None: the bundle)."""
    if point.revision is not None:
        return RevisionRead(assistant_id, point)
    if point.label is not None:
        return LabelRead(assistant_id, point)
    return LiveRead(assistant_id, point)
