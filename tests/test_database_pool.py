"""PostgreSQL connections come from a pool in each worker (settings.DATABASE_POOL): a stream of
writes and database reads against the production server opens no more connections than the
pools hold, however many requests reach the database. (Restarts with the pool:
tests/test_database_outage.py; a burst: tests/test_bogus_key_burst.py.)"""

import time

import pytest

from tests.live import call, own_services_for, server
from tests.load import MixedLoad

pytestmark = pytest.mark.slow

POOL = {"DATABASE_POOL_MIN_SIZE": "2", "DATABASE_POOL_MAX_SIZE": "4"}
WORKERS = 2


@pytest.fixture(scope="module")
def services():
    with own_services_for({"log_connections": "on"}) as services:
        yield services


def test_writes_and_database_reads_borrow_pooled_connections(services):
    _, _, read_key, _ = services.load_rows
    postgres = services.postgres
    with server(env={**services.env, **POOL}, workers=WORKERS) as base_url:
        for _ in range(2 * WORKERS):  # each worker's pool opened
            assert call("GET", base_url + "/api/v1/assistants/", key=read_key)[0] == 200
        time.sleep(0.5)  # (its minimum is opened in the background)
        accepted_before = postgres.connections_accepted()

        load = MixedLoad.over(
            [base_url],
            services.load_rows,
            writers=2,
            readers=2,
            list_reads=True,  # GET /api/v1/assistants/ needs the database every time
        )
        with load:
            deadline = time.monotonic() + 60
            while load.count("PATCH", 200) < 100:
                assert time.monotonic() < deadline, load.statuses
                time.sleep(0.1)
        opened = postgres.connections_accepted() - accepted_before

    assert load.unexpected() == {}, load.problems
    assert load.stale == 0, load.problems
    # 100 writes and the reads beside them (a third of them lists, from the database): each
    # worker's pool grows from its minimum to at most its maximum, and that is all. Without a
    # pool, every one of those requests opened a connection.
    assert opened <= WORKERS * (int(POOL["DATABASE_POOL_MAX_SIZE"]) - 2), opened
