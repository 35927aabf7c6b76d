"""A per-client fixed-window counter on Django's cache, for the public application form.

Production points CACHE_URL at Redis so that every gunicorn worker shares the counters.
The embedded default (local memory) counts per process, which is enough for one
development server.
"""

import hashlib
import ipaddress
import logging

from django.conf import settings
from django.core.cache import cache

logger = logging.getLogger(__name__)


def client_ip(request) -> str:
    """Return the client's IP address, from CPR_CLIENT_IP_HEADER when a trusted proxy sets it.

    Falls back to REMOTE_ADDR when the header is missing or its value is not an IP address,
    and returns "" when neither contains one.
    """
    header = settings.CPR_CLIENT_IP_HEADER
    if header:
        forwarded = request.META.get(header, "")
        # The trusted proxy appends the address it saw to X-Forwarded-For style headers.
        # Entries before it come from the client and can be forged, so only the last one
        # counts. A single-value header such as CF-Connecting-IP works the same way.
        proxied = _valid_ip(forwarded.split(",")[-1])
        if proxied:
            return proxied
        if forwarded:
            logger.warning("Ignoring %s=%r: the last entry is not an IP address", header, forwarded)
    return _valid_ip(request.META.get("REMOTE_ADDR", ""))


def _valid_ip(value: str) -> str:
    try:
        return str(ipaddress.ip_address(value.strip()))
    except ValueError:
        return ""


def client_key(ip_address: str) -> str:
    """Return the rate-limit key of an address: IPv4 as is, IPv6 by its /64 network.

    One IPv6 customer is usually assigned a whole /64, so keying on single addresses would give
    them an unlimited budget.
    """
    try:
        address = ipaddress.ip_address(ip_address)
    except ValueError:
        return ip_address or "unknown"
    if address.version == 6:
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return str(address)


def _cache_key(scope: str, key: str) -> str:
    digest = hashlib.sha256(key.encode()).hexdigest()[:32]
    return f"ratelimit:{scope}:{digest}"


def rate_limit_reached(*, scope: str, key: str, limit: int) -> bool:
    """Return True when `key` already has `limit` hits in `scope`'s current window."""
    return (cache.get(_cache_key(scope, key)) or 0) >= limit


def hit_rate_limit(*, scope: str, key: str, limit: int, window_seconds: int) -> bool:
    """Count one hit for `key` in `scope` and return True when the hit goes over `limit`.

    The window is fixed: it starts with the first hit and lasts `window_seconds`.
    """
    cache_key = _cache_key(scope, key)
    # add() creates the counter only if it is missing, so the window is not reset.
    cache.add(cache_key, 0, timeout=window_seconds)
    try:
        count = cache.incr(cache_key)
    except ValueError:
        # The counter expired between add() and incr(), so this hit opens a new window.
        cache.set(cache_key, 1, timeout=window_seconds)
        count = 1
    if count <= limit:
        return False
    # Only the first hit over the limit is logged, so a flood writes one line per window.
    if count == limit + 1:
        logger.warning(
            "Rate limit %s exceeded (limit %s per %s s); further hits in this window are "
            "rejected without logging",
            scope,
            limit,
            window_seconds,
        )
    return True
