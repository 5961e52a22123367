"""The production server as `make serve` starts it (config_backend.serve: Granian, ASGI): a
worker that dies is replaced and its live gauges stop counting; a server holding an event
stream open still stops promptly on SIGTERM."""

import os
import signal
import socket
import time

import pytest

from config_backend import serve
from core.models import APIKey
from tests.live import call, live_database_url, server

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def test_a_killed_worker_is_replaced_and_its_live_gauges_dropped(tmp_path):
    directory = tmp_path / "metrics"
    env = {
        "DATABASE_URL": live_database_url(),
        "METRICS_ENABLED": "1",
        "PROMETHEUS_MULTIPROC_DIR": str(directory),
    }
    with server(env=env, workers=1) as base_url:
        assert call("GET", base_url + "/healthz")[0] == 200  # the worker writes its gauge
        gauges = list(directory.glob("gauge_live*.db"))
        (pid,) = {int(gauge.stem.rpartition("_")[2]) for gauge in gauges}

        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if call("GET", base_url + "/healthz", timeout=2)[0] == 200:
                    break
            except OSError:
                pass
            time.sleep(0.2)
        else:
            pytest.fail("no worker answered after the kill")
        time.sleep(serve.SWEEP_SECONDS + 1)
        assert not any(gauge.exists() for gauge in gauges), "the dead worker's gauges count"
        assert list(directory.glob("gauge_live*.db"))  # the new worker's


def test_an_open_event_stream_does_not_hold_the_server_at_shutdown():
    _, key = APIKey.objects.create_key(name="runtime", scope="read")
    with server(env={"DATABASE_URL": live_database_url()}, workers=1) as base_url:
        port = int(base_url.rpartition(":")[2])
        stream = socket.create_connection(("127.0.0.1", port), timeout=10)
        stream.sendall(
            b"GET /api/v1/config/events/ HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            + f"Authorization: Bearer {key}\r\nAccept: text/event-stream\r\n\r\n".encode()
        )
        assert stream.recv(4096).startswith(b"HTTP/1.1 200")
        started = time.monotonic()
    # server() sent SIGTERM and waited for the exit (it kills after 10 s).
    assert time.monotonic() - started < serve.WORKERS_KILL_SECONDS + 3
    stream.close()
