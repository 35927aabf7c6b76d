"""Container health probe: request /healthz/ from gunicorn and exit 0 only on HTTP 200.

docker-compose.yml runs `python -m cpr_portal.healthcheck` inside the web container. The
probe itself uses only the standard library, but importing it runs
cpr_portal/__init__.py first, which creates the Celery app: that imports celery and
django.conf, though it neither sets up Django nor connects to anything. The probe sends
the first host name of DJANGO_ALLOWED_HOSTS as the Host header, because Django returns
400 for any other host.
"""

import os
import sys
import urllib.error
import urllib.request

HEALTHZ_URL = "http://127.0.0.1:8000/healthz/"
TIMEOUT_SECONDS = 8


def probe_host(allowed_hosts: str) -> str:
    """Pick the Host header to send from a DJANGO_ALLOWED_HOSTS value."""
    for entry in allowed_hosts.split(","):
        host = entry.strip()
        if host and host != "*":
            # ".example.org" allows example.org and its subdomains.
            return host.lstrip(".")
    return "localhost"


def check(url: str, host: str, timeout: float = TIMEOUT_SECONDS) -> tuple[bool, str]:
    """Request `url` with the given Host header; return (healthy, what happened)."""
    request = urllib.request.Request(url, headers={"Host": host})  # noqa: S310 - http URL from code
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            return response.status == 200, f"HTTP {response.status}"
    except urllib.error.HTTPError as error:
        return False, f"HTTP {error.code}"
    except (urllib.error.URLError, OSError) as error:
        return False, f"request failed: {error}"


def main() -> int:
    host = probe_host(os.environ.get("DJANGO_ALLOWED_HOSTS", ""))
    healthy, outcome = check(HEALTHZ_URL, host)
    print(f"{HEALTHZ_URL} (Host: {host}): {outcome}")
    return 0 if healthy else 1


if __name__ == "__main__":
    sys.exit(main())
