"""The cache store: config revisions and their mirrors, cache keys, the store (Redis, or local
memory) behind one interface with async reads, and the breaker.

Modules: base (the `Store` interface, `store()`), redis (RedisStore), memory (LocalStore),
breaker (try_cache, require_cache, CacheUnavailable/CacheRefused), keys (every cache key),
revisions (the counters and their mirrors, the re-seed on a new master). Their public names
are this package's: `from core import store`, then `store.try_cache(...)`.

Consistency design (docs/contract.md "Cache semantics"):
- Every config change bumps the `config` revision row *inside* its transaction and raises the
  revision mirrored in the cache to that value before the transaction commits. Writers are
  serialized by the row lock, and the mirror only ever grows (a Lua max), so once a change has
  committed, the mirror is at least its revision on every app instance.
- A cached entry stores the revision that was read from the database *before* the entry's data
  was read. An entry is served only when its revision equals the mirror. A reader that loaded
  old rows while a writer committed stores an entry tagged with the old revision, which no
  later reader takes: the classic read/invalidate/store race leaves nothing stale.
- Labels apply the same argument per label: a label's mirror is its move counter (the revision
  row "label:<name>", bumped here by each move, config_backend.history.labels), and a label
  read's entry is tagged with the counter read before the label's row, so no instance serves a
  label's old target once its move has committed.
- If the cache cannot be reached while a config change is being made, the mirror cannot be
  raised, so the change is refused (CacheUnavailable → 503) and rolled back. A hung Redis that
  resumes with its old contents therefore holds nothing older than the database.
- Replicas (Redis Sentinel; README "Redis Sentinel"). Replication is asynchronous: a replica
  promoted after its master died may hold an older mirror N, and entries tagged N, while the
  database is at N+1; it would serve them. So mirrors are trusted only on the dataset that
  seeded them. Under Sentinel every new connection, before it is used, asks the server who it
  is (`INFO`: run_id, new at every start of a server; master_replid, new at every promotion)
  and reads the marker kept beside the mirrors (MIRRORS_SEEDED_ON_KEY: the identity of the
  server that last re-seeded them; replicated with them, so a promoted replica holds its old
  master's). If they differ, the connection re-seeds every mirror from the database first
  (`check_master_on_connect`, `_RESEED`, one atomic script that sets the marker last): each is
  raised (a max, as always) to its committed revision, except the mirror of a row a change
  holds right now, which is deleted. Such a change bumped the row before it raised its mirror,
  maybe on the dead master, and commits after this read; a missing mirror is a miss, seeded
  later under the row's lock (`seed_mirror`). A row no change holds has no raise in flight:
  every raise of it is from a change that has committed (its revision is the one read, or
  lower) or rolled back. So once a connection to a new master is in use, every mirror on it is
  at least the database's, and the argument above holds unchanged, whatever old entries it
  holds. Every connection checks for itself (request threads, the ASGI fast path's, the
  hub's): none reads before some re-seed on that server has finished, and re-seeds can
  overlap (max and delete only). The rows are read with FOR SHARE SKIP LOCKED, which waits for
  nobody, in a savepoint rolled back at once, so it holds no lock a writer could deadlock on.
  A connection that finds a replica is refused: every command goes to the master. Changes need
  no replica's acknowledgement (no `WAIT`): they are accepted as soon as the new master is,
  with one replica (the promotion leaves none) as with two. A failover loses only entries
  (misses) and raises of changes that never committed (a mirror ahead of the database: misses
  too). Not covered, as before: a partition in which some instances still reach an old master
  that Sentinel has replaced (its mirrors stop at the partition).
- API-key changes differ: a key must be revocable during an outage, and a key record, unlike a
  config entry, lives at most settings.API_KEY_RECORD_SECONDS. While Redis is unreachable no
  hit is served (the database checks every key and refuses a revoked one at once); once it is
  back (also a hung Redis resuming: its expiry is wall-clock based) a stale record expires
  within that bound, or sooner, when the first key check that reaches the database raises the
  lagging mirror. So an `api_keys` bump whose mirror cannot be raised commits, with a warning.
  (An instance cut off from a Redis that others still reach is within the same bound.)
- Unreachable (connection error, timeout) and refused (Redis answered with an error, e.g. out
  of memory under `noeviction`) are told apart. Unreachable trips the breaker; refused does
  not: a read answers from the database for that request, a change is refused
  (CacheRefused → 503, key changes included: Redis still serves hits, so it must not commit).
  Busy (this process's own connection pool is exhausted: redis-py's MaxConnectionsError, a
  burst of requests) is overload, not an outage: it trips nothing either; that request goes
  without the cache (a change: CacheUnavailable → 503, as unreachable).
- Build locks (`build_lock_key`, core.reads.build) only save work, and
  play no part in the argument above: a miss waiting on one is served only an entry tagged with
  the revision it read from the database, as any miss. A lock lost (failover, eviction, expiry)
  costs a duplicate build, never a stale read.
- Reads never wait on a dead cache for long: short socket timeouts, and a per-process breaker
  that skips the cache for BREAKER_SECONDS after a failure, so the database answers. Changes
  probe Redis even while the breaker is open (they are rare and made by people, who should not
  be refused for seconds after Redis is back); a success closes it.
"""

from core.store.base import Store, store
from core.store.breaker import (
    BREAKER_SECONDS,
    CacheRefused,
    CacheUnavailable,
    breaker,
    note_busy,
    require_cache,
    try_cache,
)
from core.store.keys import (
    CHANGES_CHANNEL,
    ENTRY_SECONDS,
    KEY_PREFIX,
    LIVE_ENTRY_SECONDS,
    MIRRORS_SEEDED_ON_KEY,
    api_key_record_key,
    assistant_config_key,
    build_lock_key,
    bundle_key,
    cache_key,
    revision_key,
)
from core.store.memory import LocalStore
from core.store.redis import RedisStore
from core.store.revisions import (
    announce_revision,
    bump_revision,
    cache_clear,
    check_master_on_connect,
    check_master_on_connect_async,
    committed_counter,
    seed_mirror,
)

__all__ = [
    "BREAKER_SECONDS",
    "CHANGES_CHANNEL",
    "ENTRY_SECONDS",
    "KEY_PREFIX",
    "LIVE_ENTRY_SECONDS",
    "MIRRORS_SEEDED_ON_KEY",
    "CacheRefused",
    "CacheUnavailable",
    "LocalStore",
    "RedisStore",
    "Store",
    "api_key_record_key",
    "assistant_config_key",
    "breaker",
    "build_lock_key",
    "announce_revision",
    "bump_revision",
    "bundle_key",
    "cache_clear",
    "cache_key",
    "check_master_on_connect",
    "check_master_on_connect_async",
    "committed_counter",
    "note_busy",
    "require_cache",
    "revision_key",
    "seed_mirror",
    "store",
    "try_cache",
]
