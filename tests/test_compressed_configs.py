"""Config responses in gzip and zstd, compressed once when the entry is stored, never per
request (docs/contract.md "Runtime delivery": Compression)."""

import asyncio
import gzip

import pytest
import zstandard
from django.test import Client

from assistants.services import assistant_update
from core import store
from core.asgi_app import AsyncConfigFastPath
from core.models import APIKey
from core.reads.codings import response_coding
from core.reads.entries import counter_name, live_entry_key, split_entry
from tests.factories import asgi_get, assistant_with_tools
from tests.test_cache_hits import wsgi_get

pytestmark = pytest.mark.django_db

DECODE = {"gzip": gzip.decompress, "zstd": zstandard.decompress}


@pytest.fixture
def runtime():
    """A client with a read key (`.key`), sending the Accept-Encoding a test gives."""
    _, key = APIKey.objects.create_key(name="runtime", scope="read")
    client = Client(HTTP_AUTHORIZATION=f"Bearer {key}")
    client.key = key
    return client


@pytest.fixture
def url():
    return f"/api/v1/assistants/{assistant_with_tools(20).id}/config/"


@pytest.mark.parametrize("coding", ["gzip", "zstd"])
def test_a_compressed_config_decodes_to_exactly_the_identity_body(runtime, url, coding):
    identity = runtime.get(url)
    miss = runtime.get(url, HTTP_ACCEPT_ENCODING=coding)
    hit = runtime.get(url, HTTP_ACCEPT_ENCODING=coding)

    assert identity["X-Config-Cache"] == "miss" and "Content-Encoding" not in identity
    for response in (miss, hit):
        assert response["Content-Encoding"] == coding
        assert DECODE[coding](response.content) == identity.content
        assert len(response.content) < len(identity.content)
    assert hit["X-Config-Cache"] == "hit"


def test_a_miss_in_a_coding_answers_in_it_and_stores_every_coding(runtime, url):
    miss = runtime.get(url, HTTP_ACCEPT_ENCODING="gzip")
    assert miss["X-Config-Cache"] == "miss" and miss["Content-Encoding"] == "gzip"
    assistant_id = url.split("/")[4]
    entries = store.store().get_many(
        [live_entry_key(assistant_id, coding) for coding in ("identity", "gzip", "zstd")]
    )
    tags = {split_entry(entry)[0] for entry in entries}
    assert tags == {store.committed_counter(counter_name(assistant_id))}  # one revision tag
    identity, gzipped, zstd = (split_entry(entry)[1] for entry in entries)
    assert gzip.decompress(gzipped) == identity == zstandard.decompress(zstd)
    assert gzipped == miss.content


def test_a_gzip_hit_costs_one_mget_no_query_and_compresses_nothing(
    runtime,
    url,
    monkeypatch,
    django_assert_num_queries,
    redis_commands,  # noqa: F811
):
    stored = runtime.get(url, HTTP_ACCEPT_ENCODING="gzip").content
    redis_commands.clear()

    def no_compressing(*args, **kwargs):
        raise AssertionError("compressed during a hit")

    monkeypatch.setattr(gzip, "compress", no_compressing)
    monkeypatch.setattr(zstandard, "ZstdCompressor", no_compressing)
    with django_assert_num_queries(0):
        hit = runtime.get(url, HTTP_ACCEPT_ENCODING="gzip, deflate")

    assert redis_commands == ["MGET"]
    assert hit["X-Config-Cache"] == "hit" and hit["Content-Encoding"] == "gzip"
    assert hit.content == stored


def test_a_hit_through_the_wsgi_fast_path_is_compressed_too(runtime, url):
    runtime.get(url, HTTP_ACCEPT_ENCODING="zstd")  # stored
    identity = runtime.get(url).content

    status, headers, body = wsgi_get(url, runtime.key, HTTP_ACCEPT_ENCODING="zstd, gzip")
    assert status == "200 OK" and headers["X-Config-Cache"] == "hit"
    assert headers["Content-Encoding"] == "zstd"
    assert headers["Content-Length"] == str(len(body))
    assert zstandard.decompress(body) == identity
    assert "Accept-Encoding" in headers["Vary"]


@pytest.mark.parametrize(
    ("accept_encoding", "coding"),
    [
        (None, "identity"),
        ("", "identity"),
        ("gzip", "gzip"),
        ("gzip;q=0", "identity"),
        ("gzip; q=0.0, deflate", "identity"),
        ("zstd, gzip", "zstd"),
        ("gzip;q=1.0, zstd;q=0.1", "zstd"),  # the server's preference, among those accepted
        ("zstd;q=0, gzip", "gzip"),
        ("ZSTD;Q=0, x-gzip", "gzip"),
        ("br", "identity"),
        ("*", "zstd"),
        ("*;q=0, gzip", "gzip"),
        ("*;q=0", "identity"),
        ("gzip;q=zero", "identity"),
        ("identity", "identity"),
    ],
)
def test_the_coding_follows_accept_encoding(accept_encoding, coding):
    assert response_coding(accept_encoding) == coding


def test_gzip_refused_with_q_0_gets_identity(runtime, url):
    identity = runtime.get(url)
    for _ in range(2):  # miss, then hit
        response = runtime.get(url, HTTP_ACCEPT_ENCODING="gzip;q=0")
        assert "Content-Encoding" not in response
        assert response.content == identity.content
        assert response["ETag"] == identity["ETag"]


def test_vary_names_accept_encoding_on_misses_hits_and_304s(runtime, url):
    miss = runtime.get(url, HTTP_ACCEPT_ENCODING="gzip")
    hit = runtime.get(url, HTTP_ACCEPT_ENCODING="gzip")
    not_modified = runtime.get(url, HTTP_ACCEPT_ENCODING="gzip", HTTP_IF_NONE_MATCH=hit["ETag"])
    plain = runtime.get(url)

    assert not_modified.status_code == 304
    for response in (miss, hit, not_modified, plain):
        vary = [name.strip() for name in response["Vary"].split(",")]
        assert {"Authorization", "Cookie", "Accept-Encoding"} <= set(vary), vary


def test_each_coding_has_its_own_etag_and_any_of_them_gets_a_304(runtime, url):
    etags = {
        coding: runtime.get(url, HTTP_ACCEPT_ENCODING=coding)["ETag"]
        for coding in ("identity", "gzip", "zstd")
    }
    base = etags["identity"].strip('"')
    assert etags == {"identity": f'"{base}"', "gzip": f'"{base}-gzip"', "zstd": f'"{base}-zstd"'}

    for held in etags.values():
        response = runtime.get(url, HTTP_ACCEPT_ENCODING="gzip", HTTP_IF_NONE_MATCH=held)
        assert response.status_code == 304
        assert response["ETag"] == etags["gzip"]  # the tag the 200 would have carried
        assert "Content-Encoding" not in response


def test_after_an_edit_no_coding_matches_the_old_etag(runtime, url):
    held = runtime.get(url, HTTP_ACCEPT_ENCODING="zstd")["ETag"]
    assistant = assistant_with_tools(1, name="Other")  # another assistant: this one unchanged
    assert runtime.get(url, HTTP_ACCEPT_ENCODING="zstd", HTTP_IF_NONE_MATCH=held).status_code == 304

    from assistants.models import Assistant

    assistant_update(assistant=Assistant.objects.get(pk=url.split("/")[4]), name="Renamed")
    for coding in ("identity", "gzip", "zstd"):
        response = runtime.get(url, HTTP_ACCEPT_ENCODING=coding, HTTP_IF_NONE_MATCH=held)
        assert response.status_code == 200
        body = response.content if coding == "identity" else DECODE[coding](response.content)
        assert b'"Renamed"' in body
    assert assistant.name == "Other"


def test_the_bundle_is_compressed_too(runtime):
    for index in range(3):
        assistant_with_tools(5, name=f"a{index}")
    identity = runtime.get("/api/v1/config/").content
    miss = runtime.get("/api/v1/config/", HTTP_ACCEPT_ENCODING="gzip")
    hit = runtime.get("/api/v1/config/", HTTP_ACCEPT_ENCODING="gzip")
    assert gzip.decompress(miss.content) == gzip.decompress(hit.content) == identity
    assert hit["X-Config-Cache"] == "hit" and hit["ETag"].endswith('-gzip"')


def test_a_hit_through_the_asgi_fast_path_is_compressed_too(runtime, url):
    runtime.get(url, HTTP_ACCEPT_ENCODING="gzip")  # stored
    identity = runtime.get(url).content

    headers = {"Authorization": f"Bearer {runtime.key}", "Accept-Encoding": "gzip, br"}
    fast_path = AsyncConfigFastPath(None)  # a hit never reaches Django
    status, headers, body = asyncio.run(asgi_get(fast_path, url, headers))

    assert status == 200 and headers["x-config-cache"] == "hit"
    assert headers["content-encoding"] == "gzip"
    assert gzip.decompress(body) == identity
