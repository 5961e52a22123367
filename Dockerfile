FROM python:3.11-slim

# WEB_CONCURRENCY is also what the config_backend.W001 check reads.
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 WEB_CONCURRENCY=2
WORKDIR /app

COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt

COPY . .
# collectstatic needs settings to load; the build-time key is never used at run time.
RUN SECRET_KEY=build-only python manage.py collectstatic --noinput \
    && useradd --system --no-create-home app
USER app

EXPOSE 8000
CMD ["sh", "-c", "python manage.py migrate --noinput && exec gunicorn config_backend.wsgi --bind 0.0.0.0:8000 --workers ${WEB_CONCURRENCY} --access-logfile -"]
