"""Gunicorn settings for the container image, read from the environment.

The Dockerfile starts `gunicorn --config python:cpr_portal.gunicorn_conf cpr_portal.wsgi`.
The defaults are a starting point for a small server, not a measured optimum: raise
GUNICORN_WORKERS with the CPU count and GUNICORN_THREADS for requests that wait on I/O.
"""

import os


def positive_int_from_env(name: str, default: int) -> int:
    """Return a whole number of at least 1 from the environment, or raise naming the variable."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        raise ValueError(f"{name} must be a whole number of at least 1, got {raw!r}.")
    return value


bind = "0.0.0.0:8000"
workers = positive_int_from_env("GUNICORN_WORKERS", 2)
# More than one thread switches gunicorn to its gthread worker.
threads = positive_int_from_env("GUNICORN_THREADS", 4)
# Seconds a request may run before gunicorn kills and replaces its worker.
timeout = positive_int_from_env("GUNICORN_TIMEOUT", 30)
# Workers signal liveness by calling fchmod on a temporary file, which gunicorn's
# worker_tmp_dir documentation says can block on a disk-backed directory. /dev/shm is
# memory-backed.
worker_tmp_dir = "/dev/shm"  # noqa: S108 - memory-backed, not a shared temporary folder
accesslog = "-"
errorlog = "-"
# Socket of `gunicornc` (gunicorn 25.1 and newer), created only where
# GUNICORN_CONTROL_SOCKET names a path. The image sets it to /app/var/gunicorn.ctl, which
# its user may write. Elsewhere no socket is created, instead of gunicorn's default in
# $XDG_RUNTIME_DIR or $HOME/.gunicorn.
control_socket_path = os.environ.get("GUNICORN_CONTROL_SOCKET", "").strip()
if control_socket_path:
    control_socket = control_socket_path
else:
    control_socket_disable = True
