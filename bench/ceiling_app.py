"""The ceiling for a config read: a bare one-file Django app, no middleware, no DRF.

`/redis/<n>/` returns the stored bytes after one Redis GET through django-redis: the least work
a read can do and stay consistent across instances. `/memory/<n>/` returns the same bytes from
process memory (no I/O), for context. Served by gunicorn exactly like the real app.
"""

import os

import django
from django.conf import settings

settings.configure(
    DEBUG=False,
    SECRET_KEY="bench-only",
    ALLOWED_HOSTS=["127.0.0.1", "localhost"],
    ROOT_URLCONF=__name__,
    MIDDLEWARE=[],
    INSTALLED_APPS=[],
    CACHES={
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": os.environ["REDIS_URL"],
        }
    },
)
django.setup()

from django.core.wsgi import get_wsgi_application  # noqa: E402
from django.http import HttpResponse  # noqa: E402
from django.urls import path  # noqa: E402
from django_redis import get_redis_connection  # noqa: E402

redis = get_redis_connection("default")
in_memory: dict[int, bytes] = {}


def from_redis(request, n):
    return HttpResponse(redis.get(f"bench:config:{n}"), content_type="application/json")


def from_memory(request, n):
    if n not in in_memory:
        in_memory[n] = redis.get(f"bench:config:{n}")
    return HttpResponse(in_memory[n], content_type="application/json")


urlpatterns = [path("redis/<int:n>/", from_redis), path("memory/<int:n>/", from_memory)]
application = get_wsgi_application()
