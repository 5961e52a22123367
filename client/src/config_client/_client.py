"""ConfigClient: serves the last good bundle while a background thread revalidates it.

Where a bundle can come from, in order: the last-known-good file (at start), then the server
(a conditional GET with the ETag held: 304 keeps the bundle, 200 replaces it and rewrites the
file). Nothing but a 200 with a well-formed bundle ever changes what is served, so the server
being down, refusing the key or answering garbage only counts an error.

One fetch path, many triggers: the poller thread waits on `_wake` for poll_interval ± jitter,
and anything that learns of a change early (the Server-Sent Events listener on
/api/v1/config/events/, `listen=True`: config_client._events) only sets `_wake` or calls
`refresh()`. The poll stays the truth: a missed or duplicated event costs at most one extra 304.

A client of a label also holds the label's rollout (its JSON's `rollout`, read after each
fetch) and the bundle of the rollout's candidate (fetched by revision when the candidate
changes): `assistant(name, user_id=U)` and `bundle_for(U)` pick the user's variant locally with
config_client.rollout.variant, the rule the server uses, with no request per user. A rollout
change is a `label` event, which wakes the fetch like any other.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any

from config_client import rollout as rollouts
from config_client._bundle import Bundle, UnknownAssistant, index_assistants
from config_client._events import EventListener
from config_client._http import (
    DEFAULT_MAX_BODY_BYTES,
    Fetched,
    FetchFailed,
    bundle_url,
    check_label,
    fetch_bundle,
    label_url,
    revision_url,
)
from config_client._store import UnusableFile, read_file, touch_file, write_file
from config_client.outcomes import OutcomeRecorder
from config_client.templates import render

logger = logging.getLogger("config_client")

ChangeCallback = Callable[[Bundle], object]
_CLIENT_LABEL = object()  # record_outcome's label when none is given: the client's


class ConfigUnavailable(Exception):
    """start() found no bundle: neither the cache file nor the server had one."""

    def __init__(self, url: str, cache_path: Path | None, server_problem: str, file_problem: str):
        self.url = url
        self.cache_path = cache_path
        where = f"the cache file {cache_path} {file_problem}" if cache_path else "no cache_path"
        super().__init__(
            f"no config bundle to serve: the server at {url} gave none ({server_problem}), "
            f"and {where}"
        )


class ConfigClient:
    """The runtime's view of the config backend (see client/README.md).

    `timeout` and `start_timeout` are deadlines for a whole fetch (connect, answer and body),
    in seconds; `max_body_bytes` (64 MiB by default) bounds an answer's body, compressed and
    after decompression: a larger one is a failed fetch, read no further than the bound.
    """

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        label: str | None = None,
        cache_path: str | Path | None = None,
        poll_interval: float = 30.0,
        jitter: float = 0.1,
        timeout: float = 10.0,
        start_timeout: float = 5.0,
        listen: bool = True,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    ) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise ValueError(f"base_url must start with http:// or https://, got {base_url!r}")
        if poll_interval <= 0:
            raise ValueError("poll_interval must be positive")
        if not 0 <= jitter < 1:
            raise ValueError("jitter is a fraction of poll_interval, from 0 to below 1")
        if max_body_bytes <= 0:
            raise ValueError("max_body_bytes must be positive")
        self.url = bundle_url(base_url, label)
        self.base_url = base_url.rstrip("/")
        self.listen = listen
        self.label = label
        self.cache_path = Path(cache_path) if cache_path is not None else None
        self.poll_interval = poll_interval
        self.jitter = jitter
        self.timeout = timeout
        self.start_timeout = start_timeout
        self.max_body_bytes = max_body_bytes
        self._api_key = api_key
        self._lock = threading.Lock()  # the served state below
        self._fetch_lock = threading.Lock()  # one request at a time, so ETags stay in order
        self._bundle: Bundle | None = None
        self._index: dict[str, dict[str, Any]] = {}
        # The label's rollout (None: none) and its candidate's bundle and index.
        self._rollout: dict[str, Any] | None = None
        self._candidate: Bundle | None = None
        self._candidate_index: dict[str, dict[str, Any]] = {}
        self._etag: str | None = None
        self._fresh_at: float | None = None  # time.monotonic() of the last confirmation
        self._file_current = False  # the file holds what is served (so a 304 may touch it)
        self._errors = 0
        self._last_error: str | None = None
        self._last_status: int | None = None
        self._file_errors = 0
        self._callbacks: list[ChangeCallback] = []
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._listener: EventListener | None = None
        # What record_outcome adds up and sends (config_client.outcomes); its thread starts
        # with the first record.
        self.outcomes = OutcomeRecorder(self.base_url, api_key, timeout=timeout)

    # What the runtime reads -------------------------------------------------------------

    @property
    def bundle(self) -> Bundle:
        """The last good bundle (treat it as read-only); kept through any server outage."""
        bundle = self._bundle
        if bundle is None:
            raise ConfigUnavailable(self.url, self.cache_path, "start() was not called", "")
        return bundle

    def assistant(self, name_or_id: str, user_id: str | None = None) -> dict[str, Any]:
        """The resolved config of an active assistant, by name or id: for `user_id`, their
        variant under the label's rollout (None: the base)."""
        with self._lock:
            bundle, index = self.bundle, self._index
            if user_id is not None and self._variant(user_id) == rollouts.CANDIDATE:
                bundle, index = self._candidate, self._candidate_index
        try:
            return index[name_or_id]
        except KeyError:
            raise UnknownAssistant(name_or_id, [a["name"] for a in bundle["assistants"]]) from None

    def render(self, name_or_id: str, /, **values: Any) -> str:
        """The assistant's instructions rendered with these variable values, offline from the
        bundle being served, exactly as the server's render endpoint renders them (one grammar:
        config_client.templates). Raises TemplateError naming a required variable left out, an
        undeclared one, or a value of the wrong type."""
        config = self.assistant(name_or_id)
        return render(config.get("instructions") or "", config.get("variables") or [], values)

    def bundle_for(self, user_id: str | None) -> Bundle:
        """The bundle `user_id` gets (their variant under the label's rollout; None: the
        base): what `build_agents` takes to build one user's agents."""
        with self._lock:
            bundle = self.bundle
            if user_id is not None and self._variant(user_id) == rollouts.CANDIDATE:
                return self._candidate
        return bundle

    def variant(self, user_id: str | None) -> str:
        """`base` or `candidate`: which variant of the label `user_id` gets."""
        with self._lock:
            return self._variant(user_id)

    @property
    def rollout(self) -> dict[str, Any] | None:
        """The label's rollout being served (`id`, `revision`, `percent`, `users`), or None."""
        return self._rollout

    def _variant(self, user_id: str | None) -> str:
        if self.label is None or self._candidate is None:
            return rollouts.BASE
        return rollouts.variant(self.label, self._rollout, user_id)

    @property
    def revision(self) -> int | None:
        return None if self._bundle is None else self._bundle["revision"]

    @property
    def age_seconds(self) -> float | None:
        """Seconds since the server last confirmed the bundle (200 or 304), or since the file
        was last written or confirmed when serving from it."""
        fresh_at = self._fresh_at
        return None if fresh_at is None else max(0.0, time.monotonic() - fresh_at)

    @property
    def errors(self) -> int:
        """Fetches that failed so far (server down, refused, bad answer)."""
        return self._errors

    @property
    def last_error(self) -> str | None:
        """Why the latest fetch failed; None once a fetch succeeds again."""
        return self._last_error

    @property
    def file_errors(self) -> int:
        """Cache files found unusable at start (corrupt, saved for another label, or failing
        the integrity check) and so not served."""
        return self._file_errors

    @property
    def listening(self) -> bool:
        """Whether the push stream (/api/v1/config/events/) is open now (`listen=True`)."""
        listener = self._listener
        return listener is not None and listener.connected

    @property
    def last_status(self) -> int | None:
        """200 or 304: the answer to the latest successful fetch."""
        return self._last_status

    def on_change(self, callback: ChangeCallback) -> None:
        """Call `callback(bundle)` after each change of the bundle served (from the poller's
        thread; an exception in it is logged and changes nothing else)."""
        self._callbacks.append(callback)

    # Outcomes --------------------------------------------------------------------------------

    def record_outcome(
        self,
        assistant: str,
        *,
        revision: int | None = None,
        label: str | None | object = _CLIENT_LABEL,
        variant: str | None = None,
        **counts: int,
    ) -> None:
        """Add an outcome (runs=1, errors=…, tool_calls=…, tool_errors=…, input_tokens=…,
        output_tokens=…, latency_ms=… (the sum), feedback_up=…, feedback_down=…) for an
        assistant (name or id) at a revision (the bundle's by default), under this client's
        label by default. Returns at once and never raises; see config_client.outcomes."""
        try:
            config = self._index.get(assistant)
            self.outcomes.start()
            self.outcomes.record(
                assistant=config["id"] if config else assistant,
                revision=self.revision if revision is None else revision,
                label=self.label if label is _CLIENT_LABEL else label,
                variant=variant,
                **counts,
            )
        except Exception:  # noqa: BLE001  (the runtime must never see it)
            logger.debug("record_outcome failed", exc_info=True)

    @property
    def outcomes_dropped(self) -> int:
        """Outcome records lost (memory bound while the server is away, or refused)."""
        return self.outcomes.dropped

    # Life cycle ----------------------------------------------------------------------------

    def start(self) -> ConfigClient:
        """Serve the file if there is a good one, fetch once, then poll in the background.

        Raises ConfigUnavailable only when neither the file nor the server gave a bundle.
        """
        if self._thread is not None:
            raise RuntimeError("this ConfigClient was already started")
        file_problem = self._load_file()
        try:
            self._fetch(self.start_timeout)
        except FetchFailed as exc:
            if self._bundle is None:
                raise ConfigUnavailable(self.url, self.cache_path, str(exc), file_problem) from None
            logger.warning(
                "serving revision %s from %s: the server is unavailable",
                self.revision,
                self.cache_path,
            )
        self._stop.clear()
        self._thread = threading.Thread(target=self._poll, name="config-client-poll", daemon=True)
        self._thread.start()
        if self.listen:
            self._listener = EventListener(self.base_url, self._api_key, wake=self._wake.set)
            self._listener.start()
        return self

    def refresh(self) -> bool:
        """Fetch now (outside the poll schedule); True when the bundle changed.

        Raises FetchFailed when the server gave nothing usable (counted in `errors` as well).
        """
        return self._fetch(self.timeout)

    def stop(self) -> None:
        """Stop polling and listening, and send the outcomes recorded; the bundle held stays
        readable."""
        self.outcomes.stop()
        self._stop.set()
        self._wake.set()
        if self._listener is not None:
            self._listener.stop()
            self._listener = None
        if self._thread is not None:
            self._thread.join(self.timeout + 1)
            self._thread = None

    def __enter__(self) -> ConfigClient:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    # Inside ----------------------------------------------------------------------------

    def _load_file(self) -> str:
        """Serve the cache file if it is good; returns what was wrong with it otherwise."""
        if self.cache_path is None:
            return ""
        try:
            stored = read_file(self.cache_path, label=self.label, api_key=self._api_key)
        except UnusableFile as exc:
            self._file_errors += 1
            logger.warning("ignoring the cache file %s: %s", self.cache_path, exc)
            return f"is unusable ({exc})"
        if stored is None:
            return "does not exist"
        if not stored.verified:
            logger.info(
                "the cache file %s has no integrity check (an older client's, or written by "
                "hand): served only until the server answers, and fetched unconditionally",
                self.cache_path,
            )
        age = max(0.0, time.time() - stored.mtime)
        with self._lock:
            self._serve(stored.bundle)
            self._serve_rollout(stored.rollout, stored.candidate)
            # Only an ETag this client stored and sealed may be confirmed by a 304.
            self._etag = stored.etag if stored.verified else None
            self._fresh_at = time.monotonic() - age
        self._file_current = stored.verified  # an unverified file is rewritten on the next 200
        return ""

    def _poll(self) -> None:
        while not self._stop.is_set():
            spread = self.poll_interval * self.jitter
            self._wake.wait(self.poll_interval + random.uniform(-spread, spread))
            if self._stop.is_set():
                return
            self._wake.clear()
            try:
                self._fetch(self.timeout)
            except FetchFailed:
                pass  # counted and logged; the bundle held is served meanwhile
            except Exception:  # the poller must outlive any surprise
                logger.exception("unexpected error while polling %s", self.url)

    def _fetch(self, timeout: float) -> bool:
        with self._fetch_lock:
            try:
                answer = fetch_bundle(
                    self.url,
                    self._api_key,
                    etag=self._etag,
                    timeout=timeout,
                    label=self.label,
                    max_body_bytes=self.max_body_bytes,
                )
                rollout, candidate = self._fetch_rollout(timeout)
            except FetchFailed as exc:
                failure = exc
            except Exception as exc:  # a failure fetch_bundle did not foresee is still a failure
                logger.debug("unexpected fetch failure", exc_info=True)
                failure = FetchFailed(f"fetching {self.url} failed: {type(exc).__name__}")
            else:
                return self._accept(answer, rollout, candidate)
            with self._lock:
                self._errors += 1
                self._last_error = str(failure)
            logger.warning("config fetch failed (%d so far): %s", self._errors, failure)
            raise failure from None

    def _fetch_rollout(self, timeout: float) -> tuple[dict[str, Any] | None, Bundle | None]:
        """The label's rollout and its candidate's bundle (fetched only when the candidate
        revision is not the one held); (None, None) for a client of no label."""
        if self.label is None:
            return None, None
        answer = fetch_bundle(
            label_url(self.base_url, self.label),
            self._api_key,
            etag=None,
            timeout=timeout,
            label=self.label,
            max_body_bytes=self.max_body_bytes,
            check=check_label,
        )
        rollout = (answer.bundle or {}).get("rollout")
        if rollout is None:
            return None, None
        held = self._candidate
        if held is not None and held["revision"] == rollout["revision"]:
            return rollout, held
        candidate = fetch_bundle(
            revision_url(self.base_url, rollout["revision"]),
            self._api_key,
            etag=None,
            timeout=timeout,
            label=None,
            max_body_bytes=self.max_body_bytes,
        )
        return rollout, candidate.bundle

    def _accept(
        self, answer: Fetched, rollout: dict[str, Any] | None, candidate: Bundle | None
    ) -> bool:
        with self._lock:
            self._fresh_at = time.monotonic()
            self._last_status = answer.status
            self._last_error = None
            served_before = self._bundle is not None
            rollout_changed = (rollout, candidate) != (self._rollout, self._candidate)
            if rollout_changed:
                self._serve_rollout(rollout, candidate)
            if answer.status == 304 or answer.bundle is None:
                changed, rewrite = False, False
            else:
                previous, etag_before = self._bundle, self._etag
                changed = previous is not None and answer.bundle != previous
                if previous is None or changed:
                    self._serve(answer.bundle)
                self._etag = answer.etag
                rewrite = changed or previous is None or answer.etag != etag_before
                rewrite = rewrite or not self._file_current
            changed = changed or (rollout_changed and served_before)
            rewrite = rewrite or rollout_changed
            bundle, etag = self._bundle, self._etag
        if self.cache_path is not None and bundle is not None:
            if rewrite:
                self._save(bundle, etag)
            elif self._file_current:
                touch_file(self.cache_path)
        if changed and bundle is not None:
            self._notify(bundle)
        return changed

    def _serve(self, bundle: Bundle) -> None:
        self._bundle = bundle
        self._index = index_assistants(bundle)

    def _serve_rollout(self, rollout: dict[str, Any] | None, candidate: Bundle | None) -> None:
        if rollout is None or candidate is None:
            rollout, candidate = None, None
        self._rollout, self._candidate = rollout, candidate
        self._candidate_index = index_assistants(candidate) if candidate is not None else {}

    def _save(self, bundle: Bundle, etag: str | None) -> None:
        assert self.cache_path is not None
        try:
            write_file(
                self.cache_path,
                bundle,
                etag=etag,
                label=self.label,
                api_key=self._api_key,
                rollout=self._rollout,
                candidate=self._candidate,
            )
        except (OSError, ValueError, RecursionError) as exc:  # full disk, unencodable text
            self._file_current = False
            logger.warning("could not write the cache file %s: %s", self.cache_path, exc)
        else:
            self._file_current = True

    def _notify(self, bundle: Bundle) -> None:
        for callback in list(self._callbacks):
            try:
                callback(bundle)
            except Exception:
                logger.exception("an on_change callback failed (the poller goes on)")
