"""Outcomes: what the runtime's runs did, added up in memory and sent in the background to
POST /api/v1/outcomes/ (docs/outcomes.md on the server's side).

`OutcomeRecorder.record(...)` adds to an hourly bucket per (assistant, revision, label,
variant) under one lock and returns: no I/O, nothing raised into the runtime (a bad value is
dropped and counted). A thread sends what has accumulated every `flush_interval` seconds, at
most 1,000 buckets per request, each batch with its own `Idempotency-Key` that is reused until
the server answers: a batch the server applied but whose answer was lost is not added twice.
While the server is away, memory stays bounded: past `max_buckets` the oldest bucket is dropped,
and `dropped` counts the records lost that way (or refused by the server, or too old for it).
`stop()` sends what is left, once.

`record_runs(agents, ...)` (called by config_client.agents.build_agents(record_outcomes=...))
records each agent's runs, errors, tool calls and token usage through the Agents SDK's agent
hooks: no code in the runtime.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import urllib.error
import urllib.request
import uuid
import weakref
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from config_client._http import USER_AGENT, _Deadline, _HTTPHandler, _HTTPSHandler, _NoRedirects

try:
    from agents.lifecycle import AgentHooks as _AgentHooks
except ImportError:  # no `agents` extra: the client records by hand only (record_outcome)
    _AgentHooks = object

logger = logging.getLogger("config_client")

OUTCOMES_PATH = "/api/v1/outcomes/"
COUNTERS = (
    "runs",
    "errors",
    "tool_calls",
    "tool_errors",
    "input_tokens",
    "output_tokens",
    "latency_ms",
    "feedback_up",
    "feedback_down",
)
MAX_ROWS = 1_000  # the server's limit per request
# The server refuses hours older than its OUTCOMES_MAX_AGE_HOURS (168 by default); a bucket held
# through a longer outage is dropped here rather than refused with its whole batch.
MAX_AGE_HOURS = 160
_VARIANTS = (None, "base", "candidate")

Key = tuple[str, int, "str | None", "str | None", int]  # assistant, revision, label, variant, hour


class OutcomeRecorder:
    """Aggregates outcomes in memory and sends them from a background thread (module doc)."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        flush_interval: float = 5.0,
        max_buckets: int = 10_000,
        timeout: float = 10.0,
    ) -> None:
        if flush_interval <= 0 or max_buckets <= 0:
            raise ValueError("flush_interval and max_buckets must be positive")
        self.url = base_url.rstrip("/") + OUTCOMES_PATH
        self.flush_interval = flush_interval
        self.max_buckets = max_buckets
        self.timeout = timeout
        self._api_key = api_key
        self._lock = threading.Lock()
        # Key → [records, *COUNTERS]; a dict keeps insertion order, so the first is the oldest.
        self._pending: dict[Key, list[int]] = {}
        self._batch: tuple[str, dict[Key, list[int]]] | None = None  # being sent: key, buckets
        self._send_lock = threading.Lock()
        self._dropped = 0
        self._sent = 0
        self._failures = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def dropped(self) -> int:
        """Records lost: dropped for memory, refused by the server, or too old to send."""
        return self._dropped

    @property
    def sent(self) -> int:
        """Records the server has applied."""
        return self._sent

    @property
    def failures(self) -> int:
        """Requests that failed (and will be retried with the same Idempotency-Key)."""
        return self._failures

    @property
    def pending(self) -> int:
        """Buckets held in memory, waiting to be sent (the batch being sent included)."""
        with self._lock:
            return len(self._pending) + (len(self._batch[1]) if self._batch else 0)

    def record(
        self,
        *,
        assistant: str,
        revision: int,
        label: str | None = None,
        variant: str | None = None,
        at: float | None = None,
        **counts: int,
    ) -> None:
        """Add one record to its hour's bucket. Never raises: a bad value is counted in
        `dropped` and logged at debug level."""
        try:
            key, values = _record_values(assistant, revision, label, variant, at, counts)
        except Exception as exc:  # noqa: BLE001  (the runtime must never see it)
            logger.debug("outcome record dropped: %s", exc)
            with self._lock:
                self._dropped += 1
            return
        with self._lock:
            bucket = self._pending.get(key)
            if bucket is None:
                if len(self._pending) >= self.max_buckets:
                    oldest = next(iter(self._pending))
                    self._dropped += self._pending.pop(oldest)[0]
                bucket = self._pending[key] = [0] * (len(COUNTERS) + 1)
            bucket[0] += 1
            for position, value in enumerate(values, start=1):
                bucket[position] += value

    # Life cycle ----------------------------------------------------------------------------

    def start(self) -> OutcomeRecorder:
        """Start the sending thread (again after stop()); a no-op while it runs."""
        if self._thread is not None:
            return self
        with self._lock:
            if self._thread is None:
                self._stop.clear()
                self._thread = threading.Thread(
                    target=self._run, name="config-client-outcomes", daemon=True
                )
                self._thread.start()
        return self

    def stop(self) -> None:
        """Stop the thread, then send what is left (one try each batch)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(self.timeout + 1)
            self._thread = None
        while self.flush():
            pass  # until nothing is left, or the server fails (what is left stays pending)

    def flush(self) -> bool:
        """Send one batch now; True when one was applied (or refused for good)."""
        with self._send_lock:
            with self._lock:
                if self._batch is None:
                    if not self._pending:
                        return False
                    self._batch = (str(uuid.uuid4()), self._take(MAX_ROWS))
                batch_key, buckets = self._batch
            try:
                status = self._post(batch_key, buckets)
            except Exception as exc:  # noqa: BLE001  (the server away: retried, same key)
                with self._lock:
                    self._failures += 1
                logger.warning("sending outcomes failed (will retry): %s", exc)
                return False
            records = sum(bucket[0] for bucket in buckets.values())
            with self._lock:
                self._batch = None
                if status < 300:
                    self._sent += records
                else:
                    self._dropped += records
            if status >= 300:
                logger.warning("the server refused %d outcome records (HTTP %d)", records, status)
            return True

    def _run(self) -> None:
        while not self._stop.wait(self.flush_interval):
            try:
                while self.flush() and not self._stop.is_set():
                    pass  # more than one batch waiting: send them back to back
            except Exception:  # the sender must outlive any surprise
                logger.exception("unexpected error while sending outcomes")

    def _take(self, limit: int) -> dict[Key, list[int]]:
        """Up to `limit` of the oldest buckets, out of pending (lock held); too old ones are
        dropped."""
        oldest_hour = int(time.time() // 3600) - MAX_AGE_HOURS
        taken: dict[Key, list[int]] = {}
        for key in list(self._pending)[: limit * 2]:
            bucket = self._pending.pop(key)
            if key[4] < oldest_hour:
                self._dropped += bucket[0]
                continue
            taken[key] = bucket
            if len(taken) == limit:
                break
        return taken

    def _post(self, batch_key: str, buckets: dict[Key, list[int]]) -> int:
        """The answer's status for 2xx and 4xx (4xx: refused for good); raises for anything
        worth retrying (no answer, 5xx, 429)."""
        rows = [_row(key, bucket) for key, bucket in buckets.items()]
        body = json.dumps({"outcomes": rows}).encode()
        request = urllib.request.Request(  # noqa: S310  (base_url is http(s), checked by ConfigClient)
            self.url,
            data=body,
            method="POST",
            headers={
                "Authorization": f"Bearer {self._api_key}",
                "Content-Type": "application/json",
                "Idempotency-Key": batch_key,
                "User-Agent": USER_AGENT,
            },
        )
        with _Deadline(self.timeout) as deadline:
            opener = urllib.request.build_opener(
                _NoRedirects, _HTTPHandler(deadline), _HTTPSHandler(deadline)
            )
            try:
                with opener.open(request, timeout=self.timeout) as response:
                    response.read()
                    return response.status
            except urllib.error.HTTPError as exc:
                exc.close()
                if exc.code >= 500 or exc.code == 429:
                    raise OSError(f"HTTP {exc.code} from {self.url}") from None
                return exc.code


def _record_values(assistant, revision, label, variant, at, counts) -> tuple[Key, list[int]]:
    if not isinstance(assistant, str) or not assistant:
        raise ValueError("assistant must be an id")
    if not isinstance(revision, int) or isinstance(revision, bool) or revision < 0:
        raise ValueError("revision must be an integer ≥ 0")
    if label is not None and not isinstance(label, str):
        raise ValueError("label must be a name or None")
    if variant not in _VARIANTS:
        raise ValueError("variant must be 'base', 'candidate' or None")
    unknown = set(counts) - set(COUNTERS)
    if unknown:
        raise ValueError(f"unknown counters {sorted(unknown)}")
    values = []
    for name in COUNTERS:
        value = counts.get(name, 0)
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise ValueError(f"{name} must be an integer ≥ 0")
        values.append(value)
    hour = int((time.time() if at is None else at) // 3600)
    return (assistant, revision, label, variant, hour), values


def _row(key: Key, bucket: list[int]) -> dict[str, Any]:
    assistant, revision, label, variant, hour = key
    return {
        "assistant": assistant,
        "revision": revision,
        "label": label,
        "variant": variant,
        "period_start": datetime.fromtimestamp(hour * 3600, UTC).isoformat(),
        **dict(zip(COUNTERS, bucket[1:], strict=True)),
    }


# The Agents SDK ---------------------------------------------------------------------------


Record = Callable[..., None]


def record_runs(agents_by_id: dict[str, Any], *, bundle: dict[str, Any], client: Any) -> None:
    """Make each agent (by assistant id) record its runs through `client.record_outcome`
    (a ConfigClient), at the bundle's revision (and variant, when it names one) under the
    client's label: sets the agent's hooks (keeping any it had) and wraps its function tools.

    What is recorded, per agent: a run (with its latency) when the agent produces its final
    output; tool calls, and tool errors for a tool that raised; the input and output tokens of
    each model call as it ends. A run that ends without a final output (a tool or the model
    raised, too many turns) is recorded as a run with an error: at once when one of its tools
    raised, else when the run's state is garbage-collected (the SDK has no agent hook for
    errors; the state sits in a cycle with the exception's frames until a full collection).
    """
    from agents.tool import FunctionTool

    for assistant_id, agent in agents_by_id.items():
        where = {
            "revision": bundle["revision"],
            "label": getattr(client, "label", None),
            "variant": bundle.get("variant"),
        }
        recorder = RunRecorder(client.record_outcome, assistant_id, where, inner=agent.hooks)
        agent.hooks = recorder
        for tool in agent.tools:
            if isinstance(tool, FunctionTool):
                tool.on_invoke_tool = recorder.tool(tool.on_invoke_tool)


class _Run:
    """One run of one agent: when it started, and what records its end if it never ends."""

    __slots__ = ("started", "finalizer")

    def __init__(self, started: float, finalizer: weakref.finalize) -> None:
        self.started = started
        self.finalizer = finalizer


class RunRecorder(_AgentHooks):  # type: ignore[misc,valid-type]
    """Agent hooks recording an agent's outcomes (record_runs); forwards to `inner` hooks."""

    def __init__(
        self, record: Record, assistant: str, where: dict[str, Any], inner: Any = None
    ) -> None:
        self._record = record
        self._assistant = assistant
        self._where = where
        self._inner = inner
        self._runs: dict[int, _Run] = {}  # by id() of the run's Usage, shared by its contexts

    def _add(self, **counts: int) -> None:
        try:
            self._record(self._assistant, **self._where, **counts)
        except Exception:  # noqa: BLE001  (recording must never fail a run)
            logger.debug("recording an outcome failed", exc_info=True)

    def _close(self, run_id: int, *, error: bool) -> None:
        run = self._runs.pop(run_id, None)
        if run is None:
            return
        run.finalizer.detach()
        latency = round((time.monotonic() - run.started) * 1000)
        self._add(runs=1, errors=int(error), latency_ms=latency)

    async def on_start(self, context: Any, agent: Any) -> None:
        usage = context.usage
        run_id = id(usage)
        if run_id not in self._runs:
            # The run's Usage lives as long as the run: when it goes without on_end, the run
            # failed (the SDK has no agent hook for an error).
            finalizer = weakref.finalize(usage, self._close, run_id, error=True)
            self._runs[run_id] = _Run(time.monotonic(), finalizer)
        if self._inner is not None:
            await self._inner.on_start(context, agent)

    async def on_end(self, context: Any, agent: Any, output: Any) -> None:
        self._close(id(context.usage), error=False)
        if self._inner is not None:
            await self._inner.on_end(context, agent, output)

    async def on_handoff(self, context: Any, agent: Any, source: Any) -> None:
        if self._inner is not None:
            await self._inner.on_handoff(context, agent, source)

    async def on_tool_start(self, context: Any, agent: Any, tool: Any) -> None:
        if self._inner is not None:
            await self._inner.on_tool_start(context, agent, tool)

    async def on_tool_end(self, context: Any, agent: Any, tool: Any, result: Any) -> None:
        if self._inner is not None:
            await self._inner.on_tool_end(context, agent, tool, result)

    async def on_llm_start(self, context: Any, agent: Any, system_prompt: Any, items: Any) -> None:
        if self._inner is not None:
            await self._inner.on_llm_start(context, agent, system_prompt, items)

    async def on_llm_end(self, context: Any, agent: Any, response: Any) -> None:
        usage = getattr(response, "usage", None)
        if usage is not None:
            self._add(input_tokens=usage.input_tokens or 0, output_tokens=usage.output_tokens or 0)
        if self._inner is not None:
            await self._inner.on_llm_end(context, agent, response)

    def tool(self, invoke: Callable[..., Any]) -> Callable[..., Any]:
        """`invoke` (a FunctionTool's on_invoke_tool), counting its calls and errors; a tool
        that raises fails the run (the SDK re-raises), so the run is recorded as failed."""

        async def counted(context: Any, arguments: str) -> Any:
            try:
                result = await invoke(context, arguments)
            except BaseException:
                self._add(tool_calls=1, tool_errors=1)
                self._close(id(getattr(context, "usage", None)), error=True)
                raise
            self._add(tool_calls=1)
            return result

        return counted
