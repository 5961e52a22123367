"""ASGI entry point (what `make serve` runs: config_backend.serve).

Config GETs that the cache can answer, and API keys' event streams, are served by
AsyncConfigFastPath in the event loop, before Django's middleware and DRF; everything else goes
to Django's ASGI handler as usual.
"""

import os

import django
from django.conf import settings

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config_backend.settings")
django.setup(set_prefix=False)  # as django.core.asgi.get_asgi_application() does

# Django's ASGI handler runs each request's synchronous code in a thread of that request's own,
# and a database connection belongs to its thread: a persistent one would outlive its thread,
# unused (Django's docs: disable persistent connections under ASGI). So under ASGI each request
# that needs the database takes a connection and lets it go when it ends (cache hits never
# do): with PostgreSQL, from the process's pool and back to it (settings.DATABASE_POOL).
for database in settings.DATABASES.values():
    database["CONN_MAX_AGE"] = 0

from core.asgi_app import AsyncConfigFastPath, DjangoASGIHandler  # noqa: E402  (needs Django)

application = AsyncConfigFastPath(DjangoASGIHandler())
