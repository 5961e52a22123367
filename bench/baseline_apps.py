"""The baselines bench/server_bench.py measures our cache hit against: the least a server can do
to answer a config read from Redis. Each does one Redis GET of the same bytes (stored at
BENCH_KEY by the benchmark) and answers them with the two headers that matter to the checks
(Content-Type, X-Config-Cache: hit), at any path. Redis clients as ours: redis-py with hiredis,
one pool per process (and event loop), the same 0.25 s socket timeouts.

- `fastapi_app`: FastAPI, one `redis.asyncio` GET (under uvicorn and Granian, ASGI).
- `bare_wsgi`: a WSGI callable, one redis-py GET (under gunicorn and Granian, WSGI).
- `bare_asgi`: an ASGI callable, one `redis.asyncio` GET (under Granian and uvicorn, ASGI).
"""

import os

import redis
import redis.asyncio

BENCH_KEY = "bench:config"
TIMEOUTS = {"socket_connect_timeout": 0.25, "socket_timeout": 0.25}

sync_redis = redis.Redis.from_url(os.environ["REDIS_URL"], **TIMEOUTS)
# Connections are made on first use, in the worker's event loop.
async_redis = redis.asyncio.Redis.from_url(os.environ["REDIS_URL"], **TIMEOUTS)

HEADERS = [("Content-Type", "application/json"), ("X-Config-Cache", "hit")]
RAW_HEADERS = [(name.lower().encode(), value.encode()) for name, value in HEADERS]


def bare_wsgi(environ, start_response):
    body = sync_redis.get(BENCH_KEY)
    start_response("200 OK", [*HEADERS, ("Content-Length", str(len(body)))])
    return [body]


async def bare_asgi(scope, receive, send):
    if scope["type"] != "http":
        return  # started without lifespan; nothing else is expected
    body = await async_redis.get(BENCH_KEY)
    headers = [*RAW_HEADERS, (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _fastapi_app():
    from fastapi import FastAPI, Response

    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)

    @app.get("/{path:path}")
    async def config(path: str) -> Response:
        body = await async_redis.get(BENCH_KEY)
        return Response(body, media_type="application/json", headers={"X-Config-Cache": "hit"})

    return app


fastapi_app = _fastapi_app()
