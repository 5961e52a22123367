"""Concurrent writers and readers against live app servers, with the stale-read check.

Used by bench/soak.py, the scale-out test and the database-restart test. Each writer owns some
assistants and tools and PATCHes their `instructions` / `description` to an increasing number,
through a random instance. With `seed_dependencies`, writers also rename delegates (the name
ends in the number: every delegating assistant's config shows it) and link or unlink a tool
(its config shows it or not). With `seed_snippets`, each assistant's instructions include a
snippet of its own, whose text writers PATCH to the number too (the expanded instructions show
both: `<assistant's number>|<snippet's number>`). A write counts as committed when its 2xx has
arrived. Before each read, a reader notes the highest committed number of every object; the
config it then gets (one assistant's, or the bundle, from a random instance) must show at least
those numbers (and a link as its last committed state, unless a later write of it is in
flight): anything older is a stale read. Every answer is tallied by method and status (or the
exception, for a connection error), with its latency.

`bogus_key_burst` is the other load: many requests with made-up keys sent at once (each on its
own connection, from one event loop), while valid reads and a readiness probe go on beside them.
"""

import asyncio
import http.client
import json
import random
import secrets
import threading
import time
import urllib.parse
from collections import Counter
from dataclasses import dataclass, field

ASSISTANTS = 6
TOOLS_PER_ASSISTANT = 3


def seed_rows(assistants: int = ASSISTANTS, tools_per_assistant: int = TOOLS_PER_ASSISTANT):
    """Assistants each linked to their own tools, a read and a write key (in one transaction);
    returns (assistant ids, tool ids, read key, write key)."""
    from django.db import transaction

    from assistants.models import Assistant
    from core.models import APIKey
    from tools.models import AssistantToolLink, Tool

    with transaction.atomic():
        rows = [
            Assistant.objects.create(name=f"load-{i}", model="m", instructions="0")
            for i in range(assistants)
        ]
        tools = []
        for i, assistant in enumerate(rows):
            for j in range(tools_per_assistant):
                tool = Tool.objects.create(
                    name=f"load_tool_{i}_{j}",
                    tool_type="time",
                    description="0",
                    input_schema={"type": "object"},
                )
                AssistantToolLink.objects.create(assistant=assistant, tool=tool)
                tools.append(tool)
        _, read = APIKey.objects.create_key(name="load reader", scope="read")
        _, write = APIKey.objects.create_key(name="load writer", scope="write")
    return [str(a.id) for a in rows], [str(t.id) for t in tools], read, write


def seed_dependencies(assistant_ids: list[str]) -> tuple[list[str], list[tuple[str, str]]]:
    """Per assistant, a delegate it reaches through a sub-assistant tool, and a tool to link
    and unlink (linked at first); returns (delegate ids, (assistant id, tool id) pairs)."""
    from django.db import transaction

    from assistants.models import Assistant
    from tools.models import AssistantToolLink, Tool

    delegates, pairs = [], []
    with transaction.atomic():
        for i, assistant_id in enumerate(assistant_ids):
            delegate = Assistant.objects.create(name=f"load-delegate-{i}-0", model="m")
            ask = Tool.objects.create(
                name=f"load_ask_{i}",
                tool_type="sub_assistant",
                assistant=delegate,
                input_schema={"type": "object"},
            )
            toggled = Tool.objects.create(
                name=f"load_toggle_{i}", tool_type="time", input_schema={"type": "object"}
            )
            for tool in (ask, toggled):
                AssistantToolLink.objects.create(assistant_id=assistant_id, tool=tool)
            delegates.append(str(delegate.id))
            pairs.append((assistant_id, str(toggled.id)))
    return delegates, pairs


def seed_snippets(assistant_ids: list[str]) -> dict[str, tuple[str, str]]:
    """Per assistant, a snippet its instructions include (`0|{{> load-snippet-<i> }}`);
    returns {assistant id: (snippet id, snippet name)}."""
    from django.db import transaction

    from assistants.models import Assistant
    from snippets.models import Snippet

    snippets = {}
    with transaction.atomic():
        for i, assistant_id in enumerate(assistant_ids):
            snippet = Snippet.objects.create(name=f"load-snippet-{i}", text="0")
            assistant = Assistant.objects.get(pk=assistant_id)
            assistant.instructions = f"0|{{{{> {snippet.name} }}}}"
            assistant.save()
            snippets[assistant_id] = (str(snippet.id), snippet.name)
    return snippets


class MixedLoad:
    """Writer and reader threads against `base_urls` until stopped (a context manager)."""

    def __init__(
        self,
        base_urls: list[str],
        *,
        assistant_ids: list[str],
        tool_ids: list[str],
        read_key: str,
        write_key: str,
        writers: int = 2,
        readers: int = 4,
        list_reads: bool = False,
        allowed=(200,),
        timeout: float = 10,
        delegate_ids: list[str] = (),
        link_pairs: list[tuple[str, str]] = (),
        snippets: dict[str, tuple[str, str]] | None = None,
    ):
        self.addresses = [urllib.parse.urlsplit(url) for url in base_urls]
        self.assistant_ids = assistant_ids
        self.read_key, self.write_key = read_key, write_key
        self.list_reads = list_reads  # also GET /api/v1/assistants/ (always needs the database)
        self.allowed = allowed  # statuses that are not a problem (all are tallied)
        self.timeout = timeout
        objects = [("assistant", a) for a in assistant_ids] + [("tool", t) for t in tool_ids]
        objects += [("delegate", d) for d in delegate_ids]
        objects += [("link", f"{a}:{t}") for a, t in link_pairs]
        self.snippets = snippets or {}  # assistant id -> (the snippet it includes: id, name)
        objects += [("snippet", snippet_id) for snippet_id, _ in self.snippets.values()]
        random.shuffle(objects)
        self.tracked = {object_id for _, object_id in objects}
        self.links = {f"{a}:{t}": a for a, t in link_pairs}
        self.delegates = set(delegate_ids)
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.committed: dict[str, int] = {}  # object id -> its last acknowledged number
        self.attempted: dict[str, set[int]] = {}  # object id -> every number sent
        self.in_flight: dict[str, int] = {}  # object id -> a number sent, not yet answered
        self.linked: dict[str, bool] = dict.fromkeys(self.links, True)  # last committed
        self.statuses: Counter = Counter()  # ("PATCH", 200), ("GET", 503), ("GET", "TimeoutError")
        # (answered at, method, status, seconds taken)
        self.answers: list[tuple[float, str, int | str, float]] = []
        self.by_instance: Counter = Counter()  # (instance index, method) -> answers
        self.stale = 0
        self.checked = 0
        self.problems: list[str] = []
        self.threads = [
            threading.Thread(target=self._writer, args=(objects[i::writers],), daemon=True)
            for i in range(writers)
        ] + [threading.Thread(target=self._reader, daemon=True) for _ in range(readers)]

    @classmethod
    def over(cls, base_urls: list[str], rows, **options) -> "MixedLoad":
        """A load over the rows seed_rows() made: (assistant ids, tool ids, read key, write
        key); `options` as the constructor's."""
        assistant_ids, tool_ids, read_key, write_key = rows
        return cls(
            base_urls,
            assistant_ids=assistant_ids,
            tool_ids=tool_ids,
            read_key=read_key,
            write_key=write_key,
            **options,
        )

    def __enter__(self):
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc_info):
        self.stopping.set()
        for thread in self.threads:
            thread.join(timeout=self.timeout + 5)

    def run(self, seconds: float) -> "MixedLoad":
        with self:
            time.sleep(seconds)
        return self

    def count(self, method: str, status=None) -> int:
        """Answers of this method (and status); status "5xx" counts every 5xx."""

        def matches(answer) -> bool:
            if status == "5xx":
                return isinstance(answer, int) and answer >= 500
            return status is None or answer == status

        return sum(n for (m, s), n in self.statuses.items() if m == method and matches(s))

    def unexpected(self) -> dict:
        """Answers whose status is not allowed (connection errors included), by kind."""
        return {key: n for key, n in self.statuses.items() if key[1] not in self.allowed}

    def _problem(self, text: str) -> None:
        with self.lock:
            if len(self.problems) < 20:
                self.problems.append(text)

    def _request(self, connections, method, path, key, body=None):
        """(status or exception name, headers, body) of one request through a random instance."""
        index = random.randrange(len(self.addresses))
        address = self.addresses[index]
        if connections[index] is None:
            connections[index] = http.client.HTTPConnection(
                address.hostname, address.port, timeout=self.timeout
            )
        connection = connections[index]
        headers = {"Authorization": f"Bearer {key}"}
        if body is not None:
            headers["Content-Type"] = "application/json"
            body = json.dumps(body)
        started = time.monotonic()
        try:
            connection.request(method, path, body=body, headers=headers)
            response = connection.getresponse()
            status, response_headers, text = response.status, response.headers, response.read()
        except (OSError, http.client.HTTPException) as exc:
            connection.close()
            connections[index] = None
            status, response_headers, text = type(exc).__name__, {}, b""
        answered = time.monotonic()
        with self.lock:
            self.statuses[(method, status)] += 1
            self.by_instance[(index, method)] += 1
            self.answers.append((answered, method, status, answered - started))
        if status == 503 and response_headers.get("Retry-After") != "5":
            self._problem(f"{method} {path}: 503 without Retry-After: 5")
        if status not in self.allowed:
            self._problem(f"{method} {path} on instance {index + 1}: {status} {text[:200]!r}")
        return status, text, index

    def _writer(self, objects):
        connections = [None] * len(self.addresses)
        sequence = 0
        while not self.stopping.is_set():
            sequence += 1
            kind, object_id = random.choice(objects)
            method, body, link_to = "PATCH", None, None
            if kind == "assistant":
                instructions = str(sequence)
                if object_id in self.snippets:  # keeps including its snippet
                    instructions += f"|{{{{> {self.snippets[object_id][1]} }}}}"
                path, body = f"/api/v1/assistants/{object_id}/", {"instructions": instructions}
            elif kind == "snippet":
                path, body = f"/api/v1/snippets/{object_id}/", {"text": str(sequence)}
            elif kind == "tool":
                path, body = f"/api/v1/tools/{object_id}/", {"description": str(sequence)}
            elif kind == "delegate":
                path = f"/api/v1/assistants/{object_id}/"
                body = {"name": f"load-delegate-{object_id[:8]}-{sequence}"}
            else:
                assistant_id, tool_id = object_id.split(":")
                link_to = not self.linked[object_id]
                method = "POST" if link_to else "DELETE"
                path = f"/api/v1/assistants/{assistant_id}/tools/{tool_id}/"
            with self.lock:
                self.attempted.setdefault(object_id, set()).add(sequence)
                self.in_flight[object_id] = sequence
            status, _, _ = self._request(connections, method, path, self.write_key, body)
            with self.lock:
                del self.in_flight[object_id]
                if status in (200, 201, 204):
                    self.committed[object_id] = sequence  # this writer alone writes it
                    if link_to is not None:
                        self.linked[object_id] = link_to

    def _last_attempt(self, object_id) -> int:
        return max(self.attempted.get(object_id, {0}))

    def _reader(self):
        connections = [None] * len(self.addresses)
        while not self.stopping.is_set():
            with self.lock:
                floor = dict(self.committed)
                # A link's expected state, unless a write of it is in flight (then either).
                links = {
                    link: (state, self._last_attempt(link))
                    for link, state in self.linked.items()
                    if link not in self.in_flight
                }
            choice = random.random()
            if self.list_reads and choice < 0.3:
                self._request(connections, "GET", "/api/v1/assistants/", self.read_key)
                continue
            bundle = choice > 0.8
            path = (
                "/api/v1/config/"
                if bundle
                else f"/api/v1/assistants/{random.choice(self.assistant_ids)}/config/"
            )
            status, text, index = self._request(connections, "GET", path, self.read_key)
            if status != 200:
                continue
            body = json.loads(text)
            for config in body["assistants"] if bundle else [body]:
                self._check(config, floor, links, f"instance {index + 1} {path}")

    def _check(self, config, floor, links, where):
        # A delegate's number is in its name; everyone else's in the instructions.
        own = config["name"] if config["id"] in self.delegates else config["instructions"]
        seen = {}
        if config["id"] in self.snippets:  # "<its number>|<its snippet's number>", expanded
            own, seen[self.snippets[config["id"]][0]] = own.split("|")
        seen[config["id"]] = own.rsplit("-", 1)[-1]
        seen.update({tool["id"]: tool["description"] for tool in config["tools"]})
        for tool in config["tools"]:
            if tool["sub_assistant"]:
                delegate = tool["sub_assistant"]
                seen[delegate["id"]] = delegate["name"].rsplit("-", 1)[1]
        tool_ids = {tool["id"] for tool in config["tools"]}
        for link, (state, attempt) in links.items():
            assistant_id, tool_id = link.split(":")
            if assistant_id != config["id"] or (tool_id in tool_ids) == state:
                continue
            with self.lock:
                written_since = self._last_attempt(link) != attempt
                if not written_since:
                    self.stale += 1
            if not written_since:  # else the read may show either state
                self._problem(f"{where}: link {link} shown as {not state}, committed {state}")
        with self.lock:
            self.checked += 1
        for object_id, text in seen.items():
            if object_id not in self.tracked:
                continue  # a row this load does not write
            number = int(text)
            if number < floor.get(object_id, 0):
                with self.lock:
                    self.stale += 1
                self._problem(
                    f"{where}: {object_id} at {number}, committed {floor[object_id]} before"
                )


def made_up_key() -> str:
    """A key of our keys' shape (8 + 1 + 32 characters) whose prefix no key has."""
    return f"{secrets.token_hex(4)}.{secrets.token_hex(16)}"


@dataclass
class Burst:
    """What a bogus-key burst and the requests beside it were answered (status, or the
    exception's name), counted."""

    bogus: Counter = field(default_factory=Counter)
    valid: Counter = field(default_factory=Counter)
    readiness: Counter = field(default_factory=Counter)  # ("200 ok", "200 degraded", "503 ...")


async def _get(address, path: str, key: str | None, timeout: float) -> tuple[int | str, bytes]:
    """One GET on a connection of its own: (status or exception name, body)."""
    request = f"GET {path} HTTP/1.1\r\nHost: {address.hostname}\r\nConnection: close\r\n"
    if key:
        request += f"Authorization: Bearer {key}\r\n"
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(address.hostname, address.port), timeout
        )
        try:
            writer.write(f"{request}\r\n".encode())
            answer = await asyncio.wait_for(reader.read(), timeout)  # until the server closes
        finally:
            writer.close()
    except (OSError, TimeoutError) as exc:
        return type(exc).__name__, b""
    head, _, body = answer.partition(b"\r\n\r\n")
    status = head.split(b" ", 2)[1:2]
    return (int(status[0]) if status else "EmptyAnswer"), body


def bogus_key_burst(
    base_url: str, path: str, *, bogus: int, valid_key: str, readers: int = 4, timeout=60.0
) -> Burst:
    """`bogus` GETs of `path`, each with a made-up key, sent at once, while `readers` loops GET
    `path` with `valid_key` and one polls /readyz, until every bogus request is answered."""
    address = urllib.parse.urlsplit(base_url)
    burst = Burst()

    async def bogus_one():
        status, _ = await _get(address, path, made_up_key(), timeout)
        burst.bogus[status] += 1

    async def read_until(done: asyncio.Event):
        while not done.is_set():
            status, _ = await _get(address, path, valid_key, timeout)
            burst.valid[status] += 1

    async def probe_until(done: asyncio.Event):
        while not done.is_set():
            status, body = await _get(address, "/readyz", None, timeout)
            cache = json.loads(body).get("cache") if status in (200, 503) else ""
            burst.readiness[f"{status} {cache}"] += 1
            await asyncio.sleep(0.05)

    async def run():
        done = asyncio.Event()
        beside = [read_until(done) for _ in range(readers)] + [probe_until(done)]
        beside = [asyncio.ensure_future(task) for task in beside]
        await asyncio.gather(*(bogus_one() for _ in range(bogus)))
        done.set()
        await asyncio.gather(*beside)

    asyncio.run(run())
    return burst
