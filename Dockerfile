# tourapp: one image for every app process (web, worker, beat, kafka-consumer); compose picks the command.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    DJANGO_SETTINGS_MODULE=tourapp.settings \
    LOG_FORMAT=json \
    PROMETHEUS_MULTIPROC_DIR=/var/run/tourapp/prometheus

WORKDIR /app

# Unprivileged user; the metrics directory is its own so a named volume mounted there stays writable.
RUN groupadd --system tourapp \
    && useradd --system --gid tourapp --home-dir /app --no-create-home tourapp \
    && mkdir -p /var/run/tourapp/prometheus \
    && chown -R tourapp:tourapp /var/run/tourapp

COPY requirements.txt .
RUN pip install -r requirements.txt

COPY --chown=tourapp:tourapp . .
# collectstatic only reads settings and files: no database or broker is needed at build time.
RUN python manage.py collectstatic --noinput -v0 && chown -R tourapp:tourapp /app/staticfiles

USER tourapp
EXPOSE 8000
CMD ["gunicorn", "tourapp.wsgi", "-c", "tourapp/gunicorn.conf.py", "--bind", "0.0.0.0:8000"]
