import logging

from django.conf import settings
from django.db import DatabaseError, connection
from django.http import JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe
from kombu.exceptions import OperationalError as BrokerError

from .celery import app as celery_app

logger = logging.getLogger(__name__)

OK = "ok"
UNAVAILABLE = "unavailable"
NOT_USED = "not used"
# Seconds the broker check may spend. A quick failure, such as a refused connection, is
# retried once within that time. An attempt already under way at the deadline may run
# for up to this long again, so the check takes at most about twice this.
BROKER_TIMEOUT_SECONDS = 2.0


def check_database() -> str:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except DatabaseError:
        logger.exception("Health check: the database is unreachable")
        return UNAVAILABLE
    return OK


def check_broker() -> str:
    """Connect to the Celery broker, giving up after a short timeout and at most one retry."""
    if settings.CELERY_TASK_ALWAYS_EAGER:
        # Tasks run inline, so no broker is in use.
        return NOT_USED
    timeout = BROKER_TIMEOUT_SECONDS
    try:
        with celery_app.connection_for_write(
            url=settings.CELERY_BROKER_URL,
            connect_timeout=timeout,
            # The Redis transport takes its timeouts from the transport options.
            transport_options={"socket_connect_timeout": timeout, "socket_timeout": timeout},
        ) as broker:
            broker.ensure_connection(
                max_retries=1, interval_start=0, interval_step=0, timeout=timeout
            )
    except (BrokerError, OSError):
        logger.exception("Health check: the Celery broker is unreachable")
        return UNAVAILABLE
    return OK


@never_cache
@require_safe
def healthz(request):
    """Report whether this process reaches its database and Celery broker.

    Accepts GET and HEAD, since proxies and uptime monitors probe with either.
    Returns 200 when both work (or the broker is not used, in eager mode) and 503 when
    either fails, so a proxy or container runtime can act on the status code. The body
    names each check and its result only: the endpoint is public, so it shows no host,
    URL, version or error text. The errors go to the log.
    """
    checks = {"database": check_database(), "broker": check_broker()}
    healthy = all(result in (OK, NOT_USED) for result in checks.values())
    return JsonResponse(
        {"status": OK if healthy else "error", "checks": checks},
        status=200 if healthy else 503,
    )
