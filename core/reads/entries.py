"""The cache entries of config reads: their keys and formats, one place.

Every entry is b"<tag>\\n<payload>" (`tagged`, `split_entry`), in each content coding under
sibling keys (core.reads.codings). The tag is what makes it current (core.reads.reads):
- a live read's entry (`live_entry_key`) is tagged with the revision counter of what it shows
  (`counter_name`: the assistant's own, or the config revision for the bundle), read before its
  data was read; its payload is the body;
- a read at a revision (`revision_entry_key`) is tagged with that revision: it never changes;
- a read through a label (`label_entry_key`) is tagged with the label's move counter, read
  before the label's row; its payload is b"<the label's revision> <ETag>\\n<body>".
  The candidate variant of a label under a rollout has its own entry (`variant=CANDIDATE`),
  and the rollout its record (`label_rollout_key`: tagged the same, the payload the rollout's
  JSON, or ABSENT when the label has none), with a stamp (`label_rollout_stamp_key`: its
  digest, tagged the same): a per-user hit fetches the entries and the record in its one MGET
  and picks the variant, or, in a process that knows the record, the user's variant's entry
  and the stamp only (core.reads.reads.LabelRead).
A cached 404 (an assistant that was not active at the revision, or at the label's) has the
payload ABSENT (a body is JSON: it never is `-`).
"""

import hashlib

from config_client.rollout import BASE
from django.db import transaction

from core import store
from core.models import ConfigRevision
from core.reads.codings import ALL_CODINGS, IDENTITY

ABSENT = b"-"


def counter_name(assistant_id: str | None) -> str:
    """The name of the revision counter a live entry is tagged with: the assistant's own (it
    moves only when its config changes, core.changes), or the config revision for the bundle."""
    return ConfigRevision.for_assistant(assistant_id) if assistant_id else ConfigRevision.CONFIG


def _variant(coding: str) -> tuple:
    return () if coding == IDENTITY else (coding,)


def live_entry_key(assistant_id: str | None, coding: str = IDENTITY) -> str:
    """The live entry of a config in a coding: identity's key, or a sibling key (`…:gzip`)."""
    if assistant_id:
        return store.assistant_config_key(assistant_id, *_variant(coding))
    return store.bundle_key(*_variant(coding))


def revision_entry_key(revision: int, assistant_id: str | None, coding: str = IDENTITY) -> str:
    """The entry of the config at a revision: one assistant's, or the bundle."""
    return store.cache_key(
        "config", "revision", revision, assistant_id or "bundle", *_variant(coding)
    )


def label_entry_key(
    label: str, assistant_id: str | None, coding: str = IDENTITY, variant: str = BASE
) -> str:
    """The entry of a config read through a label: its base, or its rollout's candidate."""
    of_variant = () if variant == BASE else (variant,)
    return store.cache_key(
        "config", "label", label, assistant_id or "bundle", *of_variant, *_variant(coding)
    )


def label_rollout_key(label: str) -> str:
    """The record of a label's rollout, for per-user reads (assistant ids are UUIDs, so no
    entry key is this one)."""
    return store.cache_key("config", "label", label, "rollout")


def label_rollout_stamp_key(label: str) -> str:
    """The stamp of a label's rollout record: tagged the same, the payload a digest of the
    record's (`rollout_digest`), so a process that parsed the record before checks it is
    current without fetching it again."""
    return store.cache_key("config", "label", label, "rollout-stamp")


def rollout_digest(payload: bytes) -> bytes:
    return hashlib.sha256(payload).hexdigest()[:16].encode()


def tagged(tag: int, payload: bytes) -> bytes:
    return b"%d\n%s" % (tag, payload)


def split_entry(entry: bytes | None) -> tuple[int | None, bytes | None]:
    """(tag, payload) of an entry; (None, None) when missing or not of this format (a miss)."""
    tag, _, payload = (entry or b"").partition(b"\n")
    if not tag.isdigit():
        return None, None
    return int(tag), payload


def label_payload(revision: int, etag: str, body: bytes) -> bytes:
    return b"%d %s\n%s" % (revision, etag.encode(), body)


def split_label_payload(payload: bytes) -> tuple[int, str, bytes] | None:
    """(the label's revision, ETag, body) of a label entry's payload; None if not of it."""
    head, _, body = payload.partition(b"\n")
    revision, _, etag = head.partition(b" ")
    if not revision.isdigit() or not etag:
        return None
    return int(revision), etag.decode(), body


def forget_live_entries_at_commit(assistant_ids) -> None:
    """Once the current transaction commits, delete the live entries (every coding) of these
    deleted assistants: live entries never expire (core.store) and no build replaces these any
    more. A read that began before the deletion may store one again (rare, and never served:
    its tag is below the mirror the deletion raised)."""
    keys = [live_entry_key(str(pk), coding) for pk in assistant_ids for coding in ALL_CODINGS]

    def delete(store):
        for key in keys:
            store.delete(key)

    transaction.on_commit(lambda: store.try_cache("forgetting deleted assistants' entries", delete))
