"""A Redis master, its replicas and three Sentinels on loopback free ports, for failover tests.

The same redis-server binary as the suite's Redis, run with `--sentinel` for the sentinels (the
Debian redis-sentinel package adds only a service around it). Failure detection is shortened
(down-after 1 s) so a failover completes in a few seconds.
"""

import contextlib
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
import redis

from tests.throwaway_servers import _wait_for_port, free_port

SERVICE = "mymaster"
DOWN_AFTER_MS = 1000
FAILOVER_TIMEOUT_MS = 5000


def _redis_binary() -> str:
    binary = shutil.which("redis-server")
    if not binary:
        raise pytest.UsageError("redis-server not found; run `make deps`.")
    return binary


def _client(port: int) -> redis.Redis:
    return redis.Redis("127.0.0.1", port, socket_connect_timeout=0.5, socket_timeout=0.5)


class SentinelGroup:
    """Started by `sentinel_group()`; ports and processes by role, and what a test does to them."""

    def __init__(self, workdir: Path, replicas: int):
        self.workdir = workdir
        self.procs: dict[int, subprocess.Popen] = {}
        self.master_port = free_port()
        self.replica_ports = [free_port() for _ in range(replicas)]
        self.sentinel_ports = [free_port() for _ in range(3)]

    @property
    def sentinels(self) -> str:
        """The value of REDIS_SENTINELS."""
        return ",".join(f"127.0.0.1:{port}" for port in self.sentinel_ports)

    def _spawn(self, port: int, *args: str) -> None:
        proc = subprocess.Popen(
            [_redis_binary(), *args],
            stdout=open(self.workdir / f"redis-{port}.log", "ab"),  # noqa: SIM115 (the server's)
            stderr=subprocess.STDOUT,
        )
        self.procs[port] = proc
        _wait_for_port(port, f"redis-server on {port}", proc)

    def spawn_node(self, port: int, *args: str) -> None:
        # No persistence; diskless replication without its default 5 s wait for more replicas.
        self._spawn(
            port,
            *("--port", str(port), "--bind", "127.0.0.1", "--dir", str(self.workdir)),
            *("--save", "", "--appendonly", "no"),
            *("--repl-diskless-sync", "yes", "--repl-diskless-sync-delay", "0"),
            *args,
        )

    def start_nodes(self) -> None:
        self.spawn_node(self.master_port)
        for port in self.replica_ports:
            self.spawn_node(port, "--replicaof", "127.0.0.1", str(self.master_port))
        wait_until(lambda: self.online_replicas(self.master_port) == len(self.replica_ports))
        # Online is not yet answering: a replica that has just loaded the master's snapshot can
        # take longer than a change's 150 ms WAIT to acknowledge its first write.
        master = _client(self.master_port)
        master.set("sentinel-group:warm-up", 1)
        master.wait(len(self.replica_ports), 10_000)

    def start_sentinels(self) -> None:
        # Sentinels learn the replicas from the master's INFO, asked at once and then every
        # 10 s: so they start once every replica is attached (start_nodes).
        for port in self.sentinel_ports:
            config = self.workdir / f"sentinel-{port}.conf"  # Sentinel rewrites it: one each
            config.write_text(
                f"port {port}\nbind 127.0.0.1\ndir {self.workdir}\n"
                f"sentinel monitor {SERVICE} 127.0.0.1 {self.master_port} 2\n"
                f"sentinel down-after-milliseconds {SERVICE} {DOWN_AFTER_MS}\n"
                f"sentinel failover-timeout {SERVICE} {FAILOVER_TIMEOUT_MS}\n"
                f"sentinel parallel-syncs {SERVICE} {len(self.replica_ports)}\n"
            )
            self._spawn(port, str(config), "--sentinel")
        wait_until(self.every_sentinel_sees_everyone)

    def online_replicas(self, port: int) -> int:
        info = _client(port).info("replication")
        return sum(
            1
            for name, value in info.items()
            if name.startswith("slave") and isinstance(value, dict) and value["state"] == "online"
        )

    def every_sentinel_sees_everyone(self) -> bool:
        for port in self.sentinel_ports:
            client = _client(port)
            if len(client.sentinel_slaves(SERVICE)) < len(self.replica_ports):
                return False
            if len(client.sentinel_sentinels(SERVICE)) < len(self.sentinel_ports) - 1:
                return False
        return True

    def watch_for_failover(self) -> None:
        """Subscribe to every sentinel's +switch-master, before causing one."""
        self._watchers = []
        for port in self.sentinel_ports:
            pubsub = _client(port).pubsub(ignore_subscribe_messages=True)
            pubsub.subscribe("+switch-master")
            self._watchers.append(pubsub)

    def wait_for_failover(self, timeout: float = 20) -> int:
        """Wait for the first sentinel to announce a new master (from then on it reports it
        to clients); returns the new master's port."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for pubsub in self._watchers:
                message = pubsub.get_message(timeout=0.01)
                if message:  # b"<service> <old ip> <old port> <new ip> <new port>"
                    return int(message["data"].split()[-1])
        raise AssertionError(f"no failover within {timeout}s")

    def kill(self, port: int) -> None:
        """SIGKILL: no shutdown, no final replication, connections reset."""
        self.procs[port].kill()
        self.procs[port].wait()

    def pause(self, port: int) -> None:
        self.procs[port].send_signal(signal.SIGSTOP)

    def resume(self, port: int) -> None:
        self.procs[port].send_signal(signal.SIGCONT)

    def client(self, port: int) -> redis.Redis:
        return _client(port)

    def stop(self) -> None:
        for pubsub in getattr(self, "_watchers", []):
            pubsub.close()
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGCONT)
                proc.kill()
                proc.wait()


def wait_until(condition, timeout: float = 15, every: float = 0.05):
    """Poll `condition` until it returns a true value, which is returned; fail after timeout."""
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(redis.RedisError):
            result = condition()
            if result:
                return result
        if time.monotonic() > deadline:
            raise AssertionError(f"{condition} not true within {timeout}s")
        time.sleep(every)


@contextlib.contextmanager
def sentinel_group(workdir: Path, *, replicas: int = 2, sentinels: bool = True):
    """Start a master, `replicas` replicas and (unless told not to) three sentinels; yield the
    SentinelGroup; kill every process at the end."""
    group = SentinelGroup(workdir, replicas)
    try:
        group.start_nodes()
        if sentinels:
            group.start_sentinels()
        yield group
    finally:
        group.stop()
