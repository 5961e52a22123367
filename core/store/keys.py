"""Cache keys: every key is built here (one prefix, versioned with the entry format), and how
long each kind of entry lives."""

# What Redis may evict. It runs `maxmemory-policy volatile-lru` (docs/consistency.md, "Sizing
# Redis"), which evicts only keys that expire. The revision mirrors (and their marker,
# MIRRORS_SEEDED_ON_KEY) and the live entries (each assistant's config and the bundle, in every
# coding: LIVE_ENTRY_SECONDS) never expire, so they are never evicted: they must stay (mirrors)
# or are what every read wants (live entries; one per assistant, overwritten by each build, and
# deleted with their assistant). The rest expires and so goes first when Redis is full: entries
# read at a point in the history (a label's, ENTRY_SECONDS; at a revision,
# config_backend.history), key records (settings.API_KEY_RECORD_SECONDS) and build locks.
LIVE_ENTRY_SECONDS = None
ENTRY_SECONDS = 24 * 3600
KEY_PREFIX = "cfgb:v1:"
CHANGES_CHANNEL = "config_backend:revision"


def cache_key(*parts) -> str:
    """Every cache key is built here: one prefix, versioned with the entry format."""
    return KEY_PREFIX + ":".join(str(part) for part in parts)


def revision_key(name: str) -> str:
    return cache_key("revision", name)


def assistant_config_key(assistant_id, *variant) -> str:
    """The entry of an assistant's config; `variant`: a compressed one's sibling key."""
    return cache_key("config", "assistant", assistant_id, *variant)


def bundle_key(*variant) -> str:
    return cache_key("config", "bundle", *variant)


def build_lock_key(entry: str, revision: int) -> str:
    """The lock of the one request building `entry` (a key) for `revision` (core.reads.build)."""
    return cache_key("build", entry.removeprefix(KEY_PREFIX), revision)


def api_key_record_key(prefix: str) -> str:
    return cache_key("api_key", prefix)


# Beside the mirrors: the identity ("<run_id>:<master_replid>") of the server that last
# re-seeded them (core.store, "Replicas"). It never expires, as the mirrors.
MIRRORS_SEEDED_ON_KEY = cache_key("mirrors_seeded_on")
