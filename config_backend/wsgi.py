"""WSGI entry point (gunicorn config_backend.wsgi).

Config GETs that the cache can answer are served by ConfigFastPath before Django's middleware
and DRF; everything else goes to Django as usual.
"""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config_backend.settings")

django_application = get_wsgi_application()

from core.reads.fast_path import ConfigFastPath  # noqa: E402  (needs Django set up)

application = ConfigFastPath(django_application)
