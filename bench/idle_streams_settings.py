"""The project's settings with bench/idle_streams.py as URLconf."""

from config_backend.settings import *  # noqa: F403

ROOT_URLCONF = "bench.idle_streams"
