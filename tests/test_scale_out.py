"""Scale-out: three app instances (one gunicorn worker each) against one PostgreSQL and one
Redis keep the round-1 guarantees: a change through any instance is the next read on every
other one, and under writers and readers on all three at once no read is stale and none fails.
"""

import json

import pytest

from tests.live import call, live_database_url, server
from tests.load import MixedLoad, seed_rows

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

INSTANCES = 3


@pytest.fixture(scope="module")
def three_instances(django_db_setup):
    env = {"DATABASE_URL": live_database_url()}
    with (
        server(env=env, workers=1) as first,
        server(env=env, workers=1) as second,
        server(env=env, workers=1) as third,
    ):
        yield [first, second, third]


@pytest.fixture
def rows():
    return seed_rows(assistants=3, tools_per_assistant=2)


def instructions_on(base_url, key, assistant_id) -> str:
    status, _, body = call("GET", f"{base_url}/api/v1/assistants/{assistant_id}/config/", key=key)
    assert status == 200, body
    return json.loads(body)["instructions"]


def test_a_change_through_any_instance_is_the_next_read_on_every_other(three_instances, rows):
    assistant_ids, _, read, write = rows
    assistant = assistant_ids[0]
    for writer_index, writer in enumerate(three_instances):
        for reader in three_instances:  # twice each: every instance now serves a cached entry
            instructions_on(reader, read, assistant)
            instructions_on(reader, read, assistant)

        new = f"through instance {writer_index + 1}"
        status, _, body = call(
            "PATCH",
            f"{writer}/api/v1/assistants/{assistant}/",
            key=write,
            body={"instructions": new},
        )
        assert status == 200, body
        for reader in three_instances:
            assert instructions_on(reader, read, assistant) == new


def test_writers_and_readers_on_three_instances_see_no_stale_read_and_no_error(
    three_instances, rows, capsys
):
    load = MixedLoad.over(three_instances, rows, writers=3, readers=3).run(4)

    assert load.stale == 0, load.problems
    assert load.unexpected() == {}, load.problems
    writes = load.count("PATCH", 200)
    assert writes > 0 and load.checked > 0
    for index in range(INSTANCES):  # every instance took writes and reads
        assert load.by_instance[(index, "PATCH")] > 0
        assert load.by_instance[(index, "GET")] > 0
    with capsys.disabled():
        print(
            f"\n[scale-out] 3 instances, 3 writers, 3 readers, 4 s: {writes} writes, "
            f"{load.count('GET')} reads ({load.checked} configs checked), {load.stale} stale, "
            f"{load.count('PATCH', '5xx') + load.count('GET', '5xx')} 5xx"
        )
