"""Which variant of a label a user gets (docs/contract.md "Rollout on a label").

This is the reference implementation: the server imports it (one rule, one place), and the
client uses it to pick a user's variant locally, with no request per user.

A user's bucket is a stable number in 0–9999 derived from the label, the rollout's id and the
user id; the user is on the candidate when listed in the rollout's `users` or when the bucket
is below `percent × 100`. Raising the percent only raises that bound, so every user already on
the candidate stays there; a new candidate revision gets a new rollout id, hence a fresh
shuffle.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

BUCKETS = 10_000

BASE = "base"
CANDIDATE = "candidate"


def bucket(label: str, rollout_id: str, user_id: str) -> int:
    """The user's bucket, 0–9999: the first 8 bytes of a SHA-256, big-endian, modulo 10,000."""
    digest = hashlib.sha256(f"{label}/{rollout_id}/{user_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % BUCKETS


@functools.lru_cache(maxsize=256)  # called per user; a rollout has one percent at a time
def percent_bound(percent: Decimal | float | int | str) -> int:
    """`percent × 100` as the exclusive bucket bound; exact for two decimals (12.34 → 1234)."""
    return int((Decimal(str(percent)) * 100).to_integral_value())


def variant(label: str, rollout: Mapping[str, Any] | None, user_id: str | None) -> str:
    """`candidate` or `base` for `user_id` under the label's `rollout` (the label's JSON
    `rollout` object: `id`, `revision`, `percent`, `users`; None when there is none). Without a
    user id, everyone gets the base."""
    if not rollout or user_id is None:
        return BASE
    if user_id in rollout.get("users", ()):
        return CANDIDATE
    if bucket(label, rollout["id"], user_id) < percent_bound(rollout["percent"]):
        return CANDIDATE
    return BASE
