# syntax=docker/dockerfile:1
# CPR Portal image. The default command serves cpr_portal.wsgi with gunicorn; the
# Celery worker and beat run from the same image with the commands that
# docker-compose.yml gives them.
FROM python:3.13-slim-trixie

# PYTHONPATH: the project is not pip-installed, so every entry point (gunicorn, celery,
# manage.py, the health probe) imports it from /app.
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PYTHONPATH=/app \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore \
    GUNICORN_CONTROL_SOCKET=/app/var/gunicorn.ctl

# pg_dump and pg_restore for the backup commands. Debian trixie packages PostgreSQL 17,
# the major version of the db service, and pg_dump must not be older than the server.
RUN apt-get update \
    && apt-get install -y --no-install-recommends postgresql-client \
    && rm -rf /var/lib/apt/lists/*

RUN groupadd --system app \
    && useradd --system --gid app --home-dir /app --no-create-home --no-log-init app

WORKDIR /app

# Dependencies get a layer of their own, rebuilt only when pyproject.toml changes.
COPY pyproject.toml ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" > /tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt

COPY . .

# The code stays owned by root, so the app user cannot change it. The app user writes
# only uploads (media), backups, and in var the beat schedule and gunicorn's control
# socket. Named volumes mounted on media and backups start with this ownership.
RUN mkdir -p /app/media /app/backups /app/var \
    && chown app:app /app/media /app/backups /app/var

# The translation catalogue is compiled at build time (polib, so no GNU gettext in the
# image); the repository holds only the .po files.
RUN python -m cpr_portal.catalogue compile --force

# Static files are collected at build time with throwaway settings: debug off (so the
# manifest storage runs), a dummy secret and an SQLite file that nothing reads. None of
# these values reach the running containers, which take theirs from .env.
RUN DJANGO_DEBUG=false \
    DJANGO_SECRET_KEY=collectstatic-build-only-not-a-secret \
    DJANGO_ALLOWED_HOSTS=localhost \
    DATABASE_URL=sqlite:////tmp/collectstatic.sqlite3 \
    python manage.py collectstatic --no-input

USER app

EXPOSE 8000

# cpr_portal/gunicorn_conf.py binds 0.0.0.0:8000 and reads GUNICORN_WORKERS,
# GUNICORN_THREADS, GUNICORN_TIMEOUT and GUNICORN_CONTROL_SOCKET from the environment.
CMD ["gunicorn", "--config", "python:cpr_portal.gunicorn_conf", "cpr_portal.wsgi"]
