"""System checks for set-ups that would serve stale configs."""

import os
import re

from django.conf import settings
from django.core import checks


@checks.register(checks.Tags.caches)
def local_memory_cache_with_several_processes(app_configs, **kwargs):
    """A local-memory cache is private to one process: other workers would never see changes."""
    backend = settings.CACHES["default"]["BACKEND"]
    if not backend.endswith("LocMemCache"):
        return []
    counts = [os.environ.get("WEB_CONCURRENCY", "")]
    counts += re.findall(r"(?:-w|--workers)[= ]?(\d+)", os.environ.get("GUNICORN_CMD_ARGS", ""))
    if not any(count.strip().isdigit() and int(count) > 1 for count in counts):
        return []
    return [
        checks.Warning(
            "A local-memory cache is used with several server processes.",
            hint="Each process would cache its own copy and miss the others' changes. "
            "Set REDIS_URL so every process shares one cache.",
            id="config_backend.W001",
        )
    ]
