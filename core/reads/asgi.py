"""The fast path under ASGI: a config GET decided in the event loop (core.asgi_app routes).

The same decision as the WSGI wrapper's (core.reads.fast_path, core.reads.fetch), with the
MGET made asynchronously by the caller's `get_many` (core.asgi_app's: the store's async read,
`aget_many`; None: the cache failed, as core.store.try_cache says). Nothing here names a cache
key.
"""

from core.ops import request_log
from core.reads.fast_path import FastPath, Target
from core.reads.fetch import keep, plan


def request_meta(headers) -> dict:
    """The request's headers as Django's META names them (HTTP_…, repeated ones joined by
    commas, as ASGIRequest does): the part of META the fast path reads."""
    meta: dict = {}
    for raw_name, raw_value in headers:
        name = "HTTP_" + raw_name.decode("latin1").upper().replace("-", "_")
        value = raw_value.decode("latin1")
        meta[name] = f"{meta[name]},{value}" if name in meta else value
    return meta


async def answer_hit(fast_path: FastPath, target: Target, scope, send, get_many) -> dict | None:
    """Answer the request from the cache if it holds a current answer (None: answered); else
    what the request carries on to Django in its META (what its MGET fetched, its start)."""
    meta = request_meta(scope["headers"])
    start = request_log.begin(meta)
    secure = fast_path.secure_if_servable(meta, scope.get("scheme"))
    what = None if secure is None else plan(meta, target.assistant_id, target.point)
    hit = None if what is None else keep(meta, what.fetched(await get_many(what.cache_names())))
    if hit is None:
        return {name: value for name, value in meta.items() if name[:5] != "HTTP_"}
    headers = fast_path.raw_hit_headers(hit, secure, start)
    await send({"type": "http.response.start", "status": hit.status, "headers": headers})
    await send({"type": "http.response.body", "body": hit.body})
    fast_path.log_hit(start, target, scope["path"], hit)
    return None
