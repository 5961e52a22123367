"""Server-Sent Events of config changes (docs/contract.md "Runtime delivery", push over HTTP): the
stream of `GET /api/v1/config/events/`.

What a subscriber receives, one event per committed change, oldest first:
- `event: revision`, `data: {"revision": N, "assistants": [ids]}`: one per `Revision` row (a
  committed change set; `assistants` are those whose resolved config it changed).
- `event: label`, `data: {"label": name, "revision": N, "rollout": {…} | null}`: one per
  `LabelMove` row (N: the base revision the label now points at; `rollout`: its rollout after
  the change, as the label's JSON shows it: `id`, `revision`, `percent`, `users`).
- `id: <revision number>.<label move id>` on every event: the subscriber's position after it,
  in both sequences. A reconnect sends it back as `Last-Event-ID` (or `?last_event_id=`) and
  gets every event it missed, oldest first; when it missed more than settings.SSE_MAX_REPLAY,
  or the cursor is malformed or names a revision or label move this server does not have (a
  restored database, another deployment), one `event: reset` instead, whose data is the current
  config revision, and whose id is a position from which it misses nothing more.
- A fresh connection (no Last-Event-ID) starts from now: its first event is `event: hello`
  (`data: {"revision": the config revision}`) with the id of that position, so even a
  subscriber that saw nothing else can resume exactly.
- `retry: 1000` first (an EventSource reconnects after a second), and a comment line
  (`: keep-alive`) after settings.SSE_HEARTBEAT_SECONDS without anything written, so proxies keep
  the connection and a dead peer is noticed.
- After the database is restored (config_backend.backup), every open stream gets one `reset`.
- A stream whose API key stops being valid (revoked, deleted, expired, by any path) ends within
  the heartbeat interval: each process re-checks the keys of its streams every half interval.

Delivery (why an event arrives within a second of the commit, on every instance):
- The database is the source of truth: an event is a committed row, and positions are row
  numbers. Revision numbers are committed in order (every change set holds the `config`
  revision row's lock from its bump to its commit, core.store), so "every Revision with
  number > N" is exactly what a subscriber at N has not seen, whenever it is asked.
- One `Hub` per process, in an event loop (the server worker's own under ASGI; under WSGI, one
  thread running a loop for the whole process), reads the rows past its position and hands
  them to every subscriber of the process: a subscriber costs no query. Its reads run in one
  thread of its own, which holds no database connection between reads.
  It reads when woken: with Redis, by the message each commit publishes on
  core.store.CHANGES_CHANNEL (after the commit, so the rows are visible; one pub/sub
  connection per process), and every SHARED_POLL_SECONDS besides as a safety net (a lost
  message; Redis down: then every LOCAL_POLL_SECONDS); with the local-memory default (no other
  process to hear from, but `import_config` in a second terminal commits to the same database)
  every LOCAL_POLL_SECONDS. A wake-up is a notification, never data, so a missed or duplicated
  one costs nothing.
- A subscriber registers before its position is taken (the hub's, or for a resume the
  database's head, read after registering along with what it missed), so every row is either
  at or before that position or delivered by the hub after registration; rows in both are
  dropped by the subscriber's own position (`Subscription.since`). The hub advances its
  position before it delivers, and only the hub's loop moves it.
- A burst bigger than one read (BATCH) is read in several, each cut where the kind that filled
  its limit ends (`events_after`), so the two kinds stay in commit order across reads.
- Label moves: the same, by LabelMove id, woken by the message config_backend.history.labels
  publishes at each move's commit. One gap: moves of *different* labels are not serialized
  with each other (each holds its own label's lock), and ids are given at insert, so two such
  moves committing within the same instant in the opposite order of their ids could let a hub
  read that saw the higher one skip the lower. Rare (two label moves in the same milliseconds),
  and the client's poll still brings the label's config.
- While a process has no subscribers its hub reads nothing; the next subscriber sets the hub's
  position to the database head first, so it never replays a backlog nobody waits for.
- A restore (config_backend.backup) moves the `restores` counter past every value it had; the
  hub reads it with every read, and when it moved, takes the new head as its position and
  sends every subscriber a `reset` (the label-move sequence was moved past its old maximum too,
  so no later move gets an id below the hub's position).

Cost: a subscriber is a small object and a coroutine waiting in the event loop: no thread, no
database connection (bench/RESULTS.md "Ten thousand subscribers"). Under ASGI the stream is
served by core.asgi_app before Django (a key whose cached record is current costs no query);
under WSGI (runserver: `make run`) the stream holds its server thread, as any WSGI stream must.
The few database questions a stream asks (a key not in the cache, a replay) run in a small
pool of threads per process (DATABASE_THREADS), never one per stream. A subscriber that falls
MAX_PENDING events behind (a reader that stopped reading) gets a `reset` instead of an
unbounded buffer. A subscription is released when its stream ends (disconnect, key no longer
valid, server shutdown; under WSGI a write failing on the next heartbeat).

The package, by subject: frames (positions, events as written), replay (the database reads:
a hub's, a reconnect's), subscription (one stream's buffer), keys (the API keys of open
streams), hub (one per process and event loop), streams (the async and the WSGI faces).
"""

from core.events.frames import EventsUnavailable
from core.events.hub import hub_for
from core.events.keys import may_subscribe
from core.events.replay import BATCH
from core.events.streams import AsyncStream, SyncStream, subscribe, writes

__all__ = [
    "BATCH",
    "AsyncStream",
    "EventsUnavailable",
    "SyncStream",
    "hub_for",
    "may_subscribe",
    "subscribe",
    "writes",
]
