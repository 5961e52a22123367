"""Content codings of a config response, and its ETags.

An entry is stored in three content codings at once, identity, gzip and zstd (`encode`:
compressed when stored, never per request), under sibling keys (core.reads.entries), each
tagged alike and written in the same pipeline. Every body is compressed, small ones too (a few
bytes lost at worst), so a response's coding is a function of its request alone
(`response_coding`: zstd, else gzip, among the codings Accept-Encoding accepts with q > 0, else
identity) and a 304, which has no body, carries the ETag its 200 would. The hit's one MGET asks
for the chosen coding's key: still one round trip. Each coding has its own strong ETag
(`coded_etag`: `"<tag>-gzip"`: its bytes differ, as RFC 9110 wants of a strong validator), and
If-None-Match matches the config in any coding (`etag_matches`): a client holds the decoded
config, which is the same. Every config response varies on Accept-Encoding. No brotli: the
runtime clients (ours sends `gzip`; urllib3 and httpx decode zstd with `zstandard` installed)
gain nothing from a third compressed copy of every entry in Redis.
"""

import functools
import gzip
import re

import zstandard

IDENTITY, GZIP, ZSTD = "identity", "gzip", "zstd"
# A response picks the first of CODINGS the client accepts, else identity.
CODINGS = (ZSTD, GZIP)
ALL_CODINGS = (IDENTITY, *CODINGS)
GZIP_LEVEL, ZSTD_LEVEL = 6, 6  # 300 KB of config: 1.5 ms and 3.6 ms, once per build
VARY = "Authorization, Cookie, Accept-Encoding"


@functools.lru_cache(maxsize=256)  # a hit parses the few headers its clients send once
def response_coding(accept_encoding: str | None) -> str:
    """The coding for a request's Accept-Encoding: zstd, else gzip, if the client accepts it
    (listed, or `*`, with q > 0: `q=0` refuses), else identity. No header: identity. When
    the client refuses identity too, identity all the same (RFC 9110 allows it)."""
    if not accept_encoding:
        return IDENTITY
    weights = {}
    for item in accept_encoding.split(","):
        coding, _, params = item.partition(";")
        weight = 1.0
        for param in params.split(";"):
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    weight = float(value)
                except ValueError:
                    weight = 0.0  # unreadable: not a yes
        coding = coding.strip().lower()
        weights["gzip" if coding == "x-gzip" else coding] = weight
    for coding in CODINGS:
        if weights.get(coding, weights.get("*", 0.0)) > 0:
            return coding
    return IDENTITY


def encode(body: bytes, coding: str) -> bytes:
    """`body` in `coding`: called when an entry is stored, never for a hit."""
    if coding == GZIP:
        return gzip.compress(body, compresslevel=GZIP_LEVEL, mtime=0)
    if coding == ZSTD:
        # A compressor is not for concurrent use: one per call (its set-up is microseconds).
        return zstandard.ZstdCompressor(level=ZSTD_LEVEL).compress(body)
    return body


def content_encoding(coding: str) -> list[tuple[str, str]]:
    """The Content-Encoding header of a 200 in `coding` (identity: none)."""
    return [] if coding == IDENTITY else [("Content-Encoding", coding)]


def coded_etag(etag: str, coding: str) -> str:
    """A strong ETag (`"<tag>"`) for the same config in `coding`: `"<tag>-gzip"`, …"""
    return etag if coding == IDENTITY else f'{etag[:-1]}-{coding}"'


_CODING_SUFFIX = re.compile(r'-(?:gzip|zstd)"$')


def _same_config(tag: str) -> str:
    """An ETag without its coding suffix: the config it names, in whichever coding."""
    return _CODING_SUFFIX.sub('"', tag.strip().removeprefix("W/"))


def etag_matches(if_none_match: str | None, etag: str) -> bool:
    """Whether If-None-Match names this config, in any coding: the client holds the same
    config (decoded), so a 304 is right whichever coding it was sent in."""
    if not if_none_match:
        return False
    if if_none_match.strip() == "*":
        return True
    return _same_config(etag) in (_same_config(tag) for tag in if_none_match.split(","))
