"""An event-stream stand-in for measuring idle subscribers without the push endpoint's work.

`python -m config_backend.serve` with DJANGO_SETTINGS_MODULE=bench.idle_streams_settings serves
the project unchanged plus GET /bench/idle-stream/ (this URLconf): an idle subscriber as
docs/contract.md "Runtime delivery" describes it, built as the push endpoint is (an ordinary
Django view returning a StreamingHttpResponse over an *async* iterator, through all of Django's
middleware), but with no key check and no hub: a `text/event-stream` that says `: connected`,
then nothing but a comment every 15 s. (bench/server_bench.py measures the real endpoint;
bench/RESULTS.md "Push" compares the two.)
"""

import asyncio

from django.http import StreamingHttpResponse
from django.urls import path

from config_backend.urls import handler404, handler500
from config_backend.urls import urlpatterns as project_urlpatterns

HEARTBEAT_SECONDS = 15


async def _idle_events():
    yield b": connected\n\n"
    while True:
        await asyncio.sleep(HEARTBEAT_SECONDS)
        yield b": heartbeat\n\n"


def idle_stream(request):
    response = StreamingHttpResponse(_idle_events(), content_type="text/event-stream")
    response["Cache-Control"] = "no-cache"
    return response


urlpatterns = [path("bench/idle-stream/", idle_stream), *project_urlpatterns]
__all__ = ["handler404", "handler500", "urlpatterns"]
