"""Concurrent writers and readers against live app servers, with the stale-read check.

Used by bench/soak.py, the scale-out test and the database-restart test. Each writer owns some
assistants and tools and PATCHes their `instructions` / `description` to an increasing number,
through a random instance. A write counts as committed when its 200 has arrived. Before each
read, a reader notes the highest committed number of every object; the config it then gets
(one assistant's, or the bundle, from a random instance) must show at least those numbers: a
lower one is a stale read. Every answer is tallied by method and status (or the exception, for
a connection error), with its latency.
"""

import http.client
import json
import random
import threading
import time
import urllib.parse
from collections import Counter

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
    ):
        self.addresses = [urllib.parse.urlsplit(url) for url in base_urls]
        self.assistant_ids = assistant_ids
        self.read_key, self.write_key = read_key, write_key
        self.list_reads = list_reads  # also GET /api/v1/assistants/ (always needs the database)
        self.allowed = allowed  # statuses that are not a problem (all are tallied)
        self.timeout = timeout
        objects = [("assistant", a) for a in assistant_ids] + [("tool", t) for t in tool_ids]
        random.shuffle(objects)
        self.tracked = {object_id for _, object_id in objects}
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.committed: dict[str, int] = {}  # object id -> its last acknowledged number
        self.attempted: dict[str, set[int]] = {}  # object id -> every number sent
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
            if kind == "assistant":
                path, body = f"/api/v1/assistants/{object_id}/", {"instructions": str(sequence)}
            else:
                path, body = f"/api/v1/tools/{object_id}/", {"description": str(sequence)}
            with self.lock:
                self.attempted.setdefault(object_id, set()).add(sequence)
            status, _, _ = self._request(connections, "PATCH", path, self.write_key, body)
            if status == 200:
                with self.lock:
                    self.committed[object_id] = sequence  # this writer alone writes this object

    def _reader(self):
        connections = [None] * len(self.addresses)
        while not self.stopping.is_set():
            with self.lock:
                floor = dict(self.committed)
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
                self._check(config, floor, f"instance {index + 1} {path}")

    def _check(self, config, floor, where):
        seen = {config["id"]: config["instructions"]}
        seen.update({tool["id"]: tool["description"] for tool in config["tools"]})
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
