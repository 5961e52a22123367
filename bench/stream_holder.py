"""Idle event streams held open by a process of their own, so that holding them costs the
benchmark's process nothing (bench/server_bench.py, bench/sse_idle_bench.py,
bench/sse_scale_bench.py).

    hold_streams(port, path, key, count, first=b"\\n\\n")  ...  release_streams(holder)

The holder runs this file: it opens `count` streams (64 at a time: the listen backlog is
finite), prints `ready` once each has sent `first` (by default its first event or comment),
then reads nothing more until its stdin closes. Loopback only. With `record=PATH` it reads
every stream instead and, when released, writes to PATH (JSON) when each `revision` event
arrived on each stream: {revision number: [time.monotonic() of each arrival]}.
"""

import argparse
import asyncio
import json
import os
import resource
import select
import subprocess
import sys
import threading
import time
from collections import defaultdict


def _record_revisions(fds: list[int], arrivals: dict, stop: threading.Event) -> None:
    """Note when each `revision` event arrives on each stream: one epoll loop over the streams'
    sockets, in a thread (a read costs microseconds, so the last of 10,000 streams is not
    noted late because of the holder's own work, as it would be with asyncio's streams)."""
    poller = select.epoll()
    buffers = dict.fromkeys(fds, b"")
    for fd in fds:
        poller.register(fd, select.EPOLLIN)
    while not stop.is_set():
        for fd, _ in poller.poll(0.2):
            now = time.monotonic()
            try:
                data = os.read(fd, 65536)
            except BlockingIOError:  # woken for nothing
                continue
            if not data:
                poller.unregister(fd)
                continue
            # Events end with a blank line (the chunked encoding's size lines fall between).
            *events, buffers[fd] = (buffers[fd] + data).split(b"\n\n")
            for event in events:
                if b"event: revision" in event:
                    arrivals[json.loads(event.split(b"data: ", 1)[1])["revision"]].append(now)
    poller.close()


async def _hold(port: int, path: str, key: str, count: int, first: bytes, record: str) -> None:
    opened = []
    gate = asyncio.Semaphore(64)

    async def open_one():
        async with gate:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            request = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n"
            writer.write(f"{request}Authorization: Bearer {key}\r\n\r\n".encode())
            await writer.drain()
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 60)
            if not head.startswith(b"HTTP/1.1 200"):
                raise SystemExit(f"stream refused: {head[:200]!r}")
            await asyncio.wait_for(reader.readuntil(first), 60)
            opened.append(writer)

    await asyncio.gather(*(open_one() for _ in range(count)))
    arrivals: dict = defaultdict(list)
    stop = threading.Event()
    if record:  # read by the recorder's thread from now on, not by asyncio
        for writer in opened:
            writer.transport.pause_reading()
        fds = [writer.get_extra_info("socket").fileno() for writer in opened]
        recorder = threading.Thread(target=_record_revisions, args=(fds, arrivals, stop))
        recorder.start()
    print(f"ready {len(opened)}", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    if record:
        stop.set()
        recorder.join()
        with open(record, "w") as file:
            json.dump(arrivals, file)
    for writer in opened:
        writer.close()


def hold_streams(
    port: int, path: str, key: str, count: int, first: bytes = b"\n\n", record: str = ""
) -> subprocess.Popen:
    """A process holding `count` idle streams of `path` open (stop it with release_streams);
    `record`: a file to write the arrivals of `revision` events to (module docstring)."""
    command = [sys.executable, __file__, str(port), path, str(count), first.decode()]
    command += ["--record", record] if record else []
    holder = subprocess.Popen(
        command,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "BENCH_KEY": key},
    )
    line = holder.stdout.readline()
    if not line.startswith("ready"):
        holder.kill()
        raise SystemExit(f"could not hold {count} streams: {line!r}")
    holder.connected = int(line.split()[1])
    return holder


def release_streams(holder: subprocess.Popen, settle_seconds: float = 1.0) -> None:
    holder.stdin.close()
    holder.wait(timeout=30)
    time.sleep(settle_seconds)  # the server sees the disconnects


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("port", type=int)
    parser.add_argument("path")
    parser.add_argument("count", type=int)
    parser.add_argument("first")
    parser.add_argument("--record", default="")
    args = parser.parse_args()
    # A socket per stream: the soft limit of open files (often 1,024) up to the hard one.
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = 1_048_576 if hard == resource.RLIM_INFINITY else hard
    resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    key = os.environ["BENCH_KEY"]
    asyncio.run(_hold(args.port, args.path, key, args.count, args.first.encode(), args.record))
