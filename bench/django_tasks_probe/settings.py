"""Settings of the django-tasks probe (bench/django_tasks_probe/run.py): its own project."""

import os

SECRET_KEY = "probe-only"
INSTALLED_APPS = ["django_tasks", "django_tasks_db", "django_tasks_probe"]
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": "postgres",
        "HOST": "127.0.0.1",
        "PORT": os.environ.get("PGPORT", "5432"),
        "USER": "postgres",
    }
}
TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}}
USE_TZ = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
