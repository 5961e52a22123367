"""WSGI entry point (gunicorn config_backend.wsgi)."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config_backend.settings")

application = get_wsgi_application()
