"""Concurrency soak: writers edit through the API while readers on two app instances check that
no read begun after a write's commit returns older data.

    .venv/bin/python bench/soak.py                # about a minute
    .venv/bin/python bench/soak.py --seconds 5    # a short check (the test suite runs this)

Starts PostgreSQL, Redis and two app instances (gunicorn, 2 workers each) on loopback. Each
writer owns some assistants and tools and PATCHes their `instructions` / `description` to an
increasing sequence number, through either instance. A write counts as committed when its 200
has arrived. Before each read, a reader notes the highest committed number of every object;
the config it then gets (one assistant's, or the bundle, from either instance) must show at
least those numbers. Prints the counts; exits 1 on any 5xx, stale read or unexpected status.
"""

import argparse
import http.client
import json
import random
import sys
import threading
import time

from common import setup_django, start_gunicorn, start_services, stop, stop_services

from tests.throwaway_servers import free_port

ASSISTANTS = 6
TOOLS_PER_ASSISTANT = 3


class Counts:
    def __init__(self):
        self.lock = threading.Lock()
        self.values = {"writes": 0, "reads": 0, "checked": 0, "stale": 0, "5xx": 0, "other": 0}
        self.problems: list[str] = []

    def add(self, name, problem=None):
        with self.lock:
            self.values[name] += 1
            if problem and len(self.problems) < 20:
                self.problems.append(problem)


def seed():
    from django.db import transaction

    from assistants.models import Assistant
    from core.models import APIKey
    from tools.models import AssistantToolLink, Tool

    with transaction.atomic():
        assistants = [
            Assistant.objects.create(name=f"soak-{i}", model="m", instructions="0")
            for i in range(ASSISTANTS)
        ]
        tools = []
        for i, assistant in enumerate(assistants):
            for j in range(TOOLS_PER_ASSISTANT):
                tool = Tool.objects.create(
                    name=f"soak_tool_{i}_{j}",
                    tool_type="time",
                    description="0",
                    input_schema={"type": "object"},
                )
                AssistantToolLink.objects.create(assistant=assistant, tool=tool)
                tools.append(tool)
        _, read = APIKey.objects.create_key(name="soak reader", scope="read")
        _, write = APIKey.objects.create_key(name="soak writer", scope="write")
    return [str(a.id) for a in assistants], [str(t.id) for t in tools], read, write


def request(connection, method, path, key, body=None):
    headers = {"Authorization": f"Bearer {key}"}
    if body is not None:
        headers["Content-Type"] = "application/json"
        body = json.dumps(body)
    connection.request(method, path, body=body, headers=headers)
    response = connection.getresponse()
    return response.status, response.read()


def writer(ports, objects, key, committed, counts, deadline):
    """PATCH each owned object to the next number, alternating between the instances."""
    connections = [http.client.HTTPConnection("127.0.0.1", port, timeout=10) for port in ports]
    sequence = 0
    while time.monotonic() < deadline:
        sequence += 1
        kind, object_id = random.choice(objects)
        if kind == "assistant":
            path, body = f"/api/v1/assistants/{object_id}/", {"instructions": str(sequence)}
        else:
            path, body = f"/api/v1/tools/{object_id}/", {"description": str(sequence)}
        status, text = request(random.choice(connections), "PATCH", path, key, body)
        if status == 200:
            with counts.lock:
                committed[object_id] = sequence  # this writer alone writes this object
            counts.add("writes")
        elif status >= 500:
            counts.add("5xx", f"PATCH {path}: {status} {text[:200]!r}")
        else:
            counts.add("other", f"PATCH {path}: {status} {text[:200]!r}")


def check(config, floor, counts, where):
    counts.add("checked")
    seen = {config["id"]: int(config["instructions"])}
    seen.update({tool["id"]: int(tool["description"]) for tool in config["tools"]})
    for object_id, number in seen.items():
        if number < floor.get(object_id, 0):
            counts.add(
                "stale", f"{where}: {object_id} at {number}, committed {floor[object_id]} before"
            )


def reader(ports, assistant_ids, key, committed, counts, deadline):
    connections = [http.client.HTTPConnection("127.0.0.1", port, timeout=10) for port in ports]
    while time.monotonic() < deadline:
        with counts.lock:
            floor = dict(committed)
        instance = random.randrange(len(ports))
        bundle = random.random() < 0.2
        path = (
            "/api/v1/config/"
            if bundle
            else (f"/api/v1/assistants/{random.choice(assistant_ids)}/config/")
        )
        status, text = request(connections[instance], "GET", path, key)
        counts.add("reads")
        if status >= 500:
            counts.add("5xx", f"GET {path}: {status}")
            continue
        if status != 200:
            counts.add("other", f"GET {path}: {status} {text[:200]!r}")
            continue
        body = json.loads(text)
        for config in body["assistants"] if bundle else [body]:
            check(config, floor, counts, f"instance {instance + 1} {path}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--writers", type=int, default=2)
    parser.add_argument("--readers", type=int, default=4)
    args = parser.parse_args()
    args.seconds = min(args.seconds, 300.0)  # bounded, whatever is asked

    servers = []
    try:
        setup_django(start_services())
        assistant_ids, tool_ids, read_key, write_key = seed()
        ports = [free_port(), free_port()]
        servers = [start_gunicorn("config_backend.wsgi", port) for port in ports]

        objects = [("assistant", a) for a in assistant_ids] + [("tool", t) for t in tool_ids]
        random.shuffle(objects)
        shares = [objects[i :: args.writers] for i in range(args.writers)]
        committed: dict[str, int] = {}
        counts = Counts()
        deadline = time.monotonic() + args.seconds
        threads = [
            threading.Thread(
                target=writer, args=(ports, share, write_key, committed, counts, deadline)
            )
            for share in shares
        ] + [
            threading.Thread(
                target=reader, args=(ports, assistant_ids, read_key, committed, counts, deadline)
            )
            for _ in range(args.readers)
        ]
        started = time.monotonic()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.monotonic() - started
    finally:
        stop(servers)
        stop_services()

    values = counts.values
    print(
        f"soak: {elapsed:.0f} s, {args.writers} writers, {args.readers} readers, 2 instances: "
        f"{values['writes']} writes, {values['reads']} reads "
        f"({values['checked']} configs checked), {values['stale']} stale, "
        f"{values['5xx']} 5xx, {values['other']} other non-200"
    )
    for problem in counts.problems:
        print("  " + problem)
    ok = values["stale"] == values["5xx"] == values["other"] == 0 and values["writes"] > 0
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
