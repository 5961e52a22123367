"""A burst of requests with made-up API keys against the production server (2 workers) is
overload, not an outage: valid cached reads beside it all answer 200, /readyz stays ok (the
cache breaker never opens), PostgreSQL never runs out of connections (each worker borrows from
its pool, and works on a bounded number of requests at once), and every bogus request is
answered 401, or 503 when it waited too long for its turn. (1,500 at once, on PostgreSQL's
default max_connections: bench/overload_bench.py, bench/RESULTS.md "Bogus-key burst".)"""

import pytest

from tests.live import call, own_services_for, server, server_output
from tests.load import bogus_key_burst

pytestmark = pytest.mark.slow

# Fewer connections than a burst of this size opens without a pool, more than the pools hold.
MAX_CONNECTIONS = 50
BOGUS = 400


@pytest.fixture(scope="module")
def services():
    settings = {"log_connections": "on", "max_connections": str(MAX_CONNECTIONS)}
    with own_services_for(settings) as services:
        yield services


def test_valid_reads_and_readiness_hold_through_a_burst_of_made_up_keys(services):
    path = f"/api/v1/assistants/{services.assistant_id}/config/"
    with server(env=services.env, workers=2) as base_url:
        for _ in range(4):  # the entry and the key record stored, both workers answering
            assert call("GET", base_url + path, key=services.key)[0] == 200
        accepted_before = services.postgres.connections_accepted()

        burst = bogus_key_burst(base_url, path, bogus=BOGUS, valid_key=services.key)

        opened = services.postgres.connections_accepted() - accepted_before
        logged = server_output(base_url)
    said = [line for line in logged.splitlines() if " WARNING " in line and "Unauth" not in line]

    assert sum(burst.bogus.values()) == BOGUS
    assert set(burst.bogus) <= {401, 503}, burst.bogus
    assert burst.bogus[401] > 0
    assert sum(burst.valid.values()) >= 8 and set(burst.valid) == {200}, (burst.valid, said)
    assert burst.readiness and set(burst.readiness) == {"200 ok"}, (burst.readiness, said)
    assert "Cache unreachable" not in logged, said
    pg_log = (services.postgres.workdir / "pg.log").read_text(errors="replace")
    assert "too many clients" not in pg_log and "remaining connection slots" not in pg_log
    assert opened < MAX_CONNECTIONS
