FROM python:3.11-slim

# WEB_CONCURRENCY is also what the config_backend.W001 check reads.
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 WEB_CONCURRENCY=2
# JSON log lines; metric files of every worker (and of commands run in the container) in one
# directory, which the server (config_backend/serve.py) empties at each start.
ENV LOG_FORMAT=json PROMETHEUS_MULTIPROC_DIR=/tmp/config-backend-metrics
WORKDIR /app

# make: the container starts the server the way `make serve` does; postgresql-client:
# pg_dump / pg_restore for backup_service and restore_service; graphviz: `dot` draws the
# admin's delegation graph. (The admin's translations are compiled in the repo: no gettext.)
RUN apt-get update && apt-get install -y --no-install-recommends make postgresql-client graphviz \
    && rm -rf /var/lib/apt/lists/*

COPY requirements.txt .
COPY client ./client
RUN pip install --no-cache-dir -r requirements.txt

COPY . .
# collectstatic needs settings to load; the build-time key is never used at run time.
RUN SECRET_KEY=build-only python manage.py collectstatic --noinput \
    && useradd --system --no-create-home app
USER app

EXPOSE 8000
# `make serve`: Granian, ASGI (config_backend/serve.py). No server access log: the app writes
# one line per request itself (with its request id).
ENV PORT=8000 PYTHON=python
CMD ["sh", "-c", "python manage.py migrate --noinput && exec make --no-print-directory serve BIN=/usr/local/bin"]
