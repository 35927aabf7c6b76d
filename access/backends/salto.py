"""Salto KS backend, talking to the Salto KS Connect API over HTTPS with `requests`.

NOTE: Salto publishes the full Connect API reference only to partners, so parts of the
request shapes below are assumed. Sources opened:

- developer.saltosystems.com/ks/connect-api/getting-authenticated: the token endpoint is
  `{identity server}/connect/token` (OpenID Connect). Client credentials go in the form
  body here (RFC 6749 section 2.3.1 allows that or HTTP Basic), without a scope.
- saltoks.com/developers/connect/add-remove-multiple-users-to-an-access-group:
  `PATCH /v1.1/sites/{site_id}/access_groups/{access_group_id}/users` with
  `{"add_ids": [...], "remove_ids": [...]}`.
- developers.qodex.ai walkthrough "1.3 Create User": `POST /v1.1/sites/{site_id}/users`
  with `first_name`, `last_name` and `email`.

Assumed, not found in a public source: the `external_id` field on site users and its
OData `$filter`, list pages shaped `{"items": [...], "next_page_link": url or null}`,
`access_group_ids` and `tags[].tag_number` on listed users, the tag calls
`POST /v1.1/sites/{site_id}/users/{user_id}/tags` and
`DELETE /v1.1/sites/{site_id}/users/{user_id}/tags/{number}`, and 409 for "already
exists" or "already a member". Check these against the partner reference before the
first production run.
"""

import logging
import threading
import time
from urllib.parse import quote, urljoin, urlsplit

import requests
from django.conf import settings

from .base import AccessBackend, AccessBackendError, BackendUser

logger = logging.getLogger(__name__)

API_VERSION = "v1.1"

#: Prefix of the `external_id` this integration writes, which distinguishes its users
#: from users that staff add in the Salto KS app.
EXTERNAL_ID_PREFIX = "cpr-member-"

#: Seconds before the token's `expires_in` at which a new token is requested.
TOKEN_EXPIRY_MARGIN_SECONDS = 60

#: Upper bound on pages read by `list_users`, which stops a `next_page_link` loop.
MAX_LIST_PAGES = 1000

HTTP_UNAUTHORIZED = 401
HTTP_NOT_FOUND = 404
HTTP_CONFLICT = 409


def external_id_for(member_id: int) -> str:
    """Return the Salto `external_id` that identifies our member."""
    return f"{EXTERNAL_ID_PREFIX}{member_id}"


def member_id_from(external_id: str | None) -> int | None:
    """Return our member id from a Salto `external_id`, or None for other users."""
    if not external_id or not external_id.startswith(EXTERNAL_ID_PREFIX):
        return None
    suffix = external_id.removeprefix(EXTERNAL_ID_PREFIX)
    return int(suffix) if suffix.isdigit() else None


class SaltoBackend(AccessBackend):
    """Access through Salto KS access groups that this integration alone manages.

    Suspend removes the member from those groups, because Salto KS has no call that
    blocks a user, and restore adds them back. Other groups are never changed.
    """

    name = "salto"

    def __init__(self) -> None:
        self._token: str | None = None
        self._token_expires_at = 0.0
        self._token_lock = threading.Lock()
        self._user_ids: dict[int, str] = {}

    # Configuration

    def configuration_problems(self) -> list[str]:
        problems = []
        required = [
            ("SALTO_API_BASE", "the Connect API base URL"),
            ("SALTO_TOKEN_URL", "the identity server token URL"),
            ("SALTO_CLIENT_ID", "the OAuth2 client id Salto issued"),
            ("SALTO_CLIENT_SECRET", "the OAuth2 client secret Salto issued"),
            ("SALTO_SITE_ID", "the Salto KS site id"),
            ("SALTO_ACCESS_GROUP_IDS", "a comma-separated list of access group ids"),
        ]
        for setting_name, expected in required:
            if not getattr(settings, setting_name, None):
                problems.append(f"{setting_name} is missing: set it to {expected}.")
        return problems

    def _require_configuration(self) -> None:
        problems = self.configuration_problems()
        if problems:
            raise AccessBackendError("Salto backend is not configured. " + " ".join(problems))

    @property
    def _site_path(self) -> str:
        return f"/{API_VERSION}/sites/{quote(str(settings.SALTO_SITE_ID), safe='')}"

    @property
    def _timeout(self) -> int:
        return settings.SALTO_TIMEOUT_SECONDS

    # Interface

    def ensure_user(self, *, member_id: int, name: str, email: str) -> None:
        self._require_configuration()
        if self._find_user_id(member_id) is not None:
            return
        first_name, _, last_name = name.strip().partition(" ")
        body = {
            "first_name": first_name,
            "last_name": last_name,
            "email": email,
            "external_id": external_id_for(member_id),
        }
        response = self._request(
            "POST", f"{self._site_path}/users", member_id=member_id, json=body, ok={HTTP_CONFLICT}
        )
        if response.status_code == HTTP_CONFLICT:
            return
        user_id = _json(response, "POST", f"{self._site_path}/users").get("id")
        if user_id:
            self._user_ids[member_id] = str(user_id)

    def grant_access(self, *, member_id: int) -> None:
        self._require_configuration()
        self._change_groups(member_id=member_id, add=True)

    def remove_access(self, *, member_id: int) -> None:
        self._require_configuration()
        self._change_groups(member_id=member_id, add=False)

    def suspend(self, *, member_id: int) -> None:
        self.remove_access(member_id=member_id)

    def restore(self, *, member_id: int) -> None:
        self.grant_access(member_id=member_id)

    def assign_credential(self, *, member_id: int, number: str, kind: str) -> None:
        self._require_configuration()
        user_id = self._require_user_id(member_id)
        path = f"{self._site_path}/users/{quote(user_id, safe='')}/tags"
        body = {"tag_number": number, "tag_type": kind}
        self._request("POST", path, member_id=member_id, json=body, ok={HTTP_CONFLICT})

    def cancel_credential(self, *, member_id: int, number: str) -> None:
        self._require_configuration()
        user_id = self._find_user_id(member_id)
        if user_id is None:
            # A user that does not exist has no tag, so there is nothing to cancel.
            return
        path = (
            f"{self._site_path}/users/{quote(user_id, safe='')}/tags/{quote(str(number), safe='')}"
        )
        self._request("DELETE", path, member_id=member_id, ok={HTTP_NOT_FOUND})

    def list_users(self) -> list[BackendUser]:
        self._require_configuration()
        group_ids = {str(group_id) for group_id in settings.SALTO_ACCESS_GROUP_IDS}
        params = {"$filter": f"startswith(external_id,'{EXTERNAL_ID_PREFIX}')"}
        users = []
        for item in self._iterate_pages(f"{self._site_path}/users", params=params):
            member_id = member_id_from(item.get("external_id"))
            if member_id is None:
                continue
            member_groups = {str(group_id) for group_id in item.get("access_group_ids") or []}
            credentials = [
                str(tag["tag_number"]) for tag in item.get("tags") or [] if tag.get("tag_number")
            ]
            users.append(
                BackendUser(
                    member_id=member_id,
                    has_access=group_ids <= member_groups,
                    credentials=credentials,
                )
            )
        return users

    def health_check(self) -> bool:
        try:
            self._require_configuration()
            self._request("GET", self._site_path)
        except AccessBackendError as error:
            logger.warning("Salto health check failed: %s", error)
            return False
        return True

    # Users and groups

    def _find_user_id(self, member_id: int) -> str | None:
        if member_id in self._user_ids:
            return self._user_ids[member_id]
        path = f"{self._site_path}/users"
        params = {"$filter": f"external_id eq '{external_id_for(member_id)}'"}
        response = self._request("GET", path, member_id=member_id, params=params)
        items = _json(response, "GET", path).get("items") or []
        if not items:
            return None
        user_id = str(items[0]["id"])
        self._user_ids[member_id] = user_id
        return user_id

    def _require_user_id(self, member_id: int) -> str:
        user_id = self._find_user_id(member_id)
        if user_id is None:
            raise AccessBackendError(
                f"Salto has no user with external_id {external_id_for(member_id)!r} "
                f"on site {settings.SALTO_SITE_ID}: call ensure_user first."
            )
        return user_id

    def _change_groups(self, *, member_id: int, add: bool) -> None:
        if add:
            user_id = self._require_user_id(member_id)
        else:
            user_id = self._find_user_id(member_id)
            if user_id is None:
                # A user that does not exist is in no group, so there is nothing to remove.
                return
        body = (
            {"add_ids": [user_id], "remove_ids": []}
            if add
            else {"add_ids": [], "remove_ids": [user_id]}
        )
        accepted = {HTTP_CONFLICT} if add else {HTTP_NOT_FOUND}
        for group_id in settings.SALTO_ACCESS_GROUP_IDS:
            path = f"{self._site_path}/access_groups/{quote(str(group_id), safe='')}/users"
            self._request("PATCH", path, member_id=member_id, json=body, ok=accepted)

    def _iterate_pages(self, path: str, *, params: dict[str, str]):
        url: str | None = path
        page_params: dict[str, str] | None = params
        for _ in range(MAX_LIST_PAGES):
            response = self._request("GET", url, params=page_params)
            payload = _json(response, "GET", url)
            yield from payload.get("items") or []
            url = self._next_page_path(payload.get("next_page_link"))
            if url is None:
                return
            # The link already carries the query of the first request.
            page_params = None
        raise AccessBackendError(
            f"Salto GET {path} returned more than {MAX_LIST_PAGES} pages, so paging stopped."
        )

    def _next_page_path(self, link: str | None) -> str | None:
        if not link:
            return None
        base = urlsplit(settings.SALTO_API_BASE)
        target = urlsplit(urljoin(settings.SALTO_API_BASE, link))
        if (target.scheme, target.netloc) != (base.scheme, base.netloc):
            # Following a link to another host would send it our bearer token.
            raise AccessBackendError(
                f"Salto next_page_link points to {target.netloc!r}, not to the "
                f"SALTO_API_BASE host {base.netloc!r}, so it was not followed."
            )
        return target.path + (f"?{target.query}" if target.query else "")

    # HTTP

    def _request(
        self,
        method: str,
        path: str,
        *,
        member_id: int | None = None,
        ok: frozenset[int] | set[int] = frozenset(),
        **kwargs,
    ) -> requests.Response:
        """Send one API call with a bearer token, requesting a new token once on a 401.

        Statuses in `ok` count as success besides 2xx (409 "already exists" on adds, 404
        "not found" on removals). Anything else raises AccessBackendError naming the
        method, path and status, never the token or the client secret.
        """
        url = settings.SALTO_API_BASE.rstrip("/") + path
        logger.debug("Salto %s %s (member %s)", method, path, member_id)
        response = self._send(method, url, path, member_id, **kwargs)
        if response.status_code == HTTP_UNAUTHORIZED:
            logger.info("Salto returned 401 for %s %s, so a new token is requested", method, path)
            self._forget_token()
            response = self._send(method, url, path, member_id, **kwargs)
        if response.ok or response.status_code in ok:
            return response
        logger.warning(
            "Salto %s %s failed for member %s: HTTP %s",
            method,
            path,
            member_id,
            response.status_code,
        )
        raise AccessBackendError(f"Salto {method} {path} failed: HTTP {response.status_code}.")

    def _send(self, method, url, path, member_id, **kwargs) -> requests.Response:
        headers = {"Authorization": f"Bearer {self._access_token()}", "Accept": "application/json"}
        try:
            return requests.request(method, url, headers=headers, timeout=self._timeout, **kwargs)
        except requests.Timeout as error:
            logger.warning(
                "Salto %s %s timed out for member %s after %ss",
                method,
                path,
                member_id,
                self._timeout,
            )
            raise AccessBackendError(
                f"Salto {method} {path} timed out after {self._timeout}s."
            ) from error
        except requests.RequestException as error:
            logger.warning(
                "Salto %s %s failed for member %s: %s",
                method,
                path,
                member_id,
                type(error).__name__,
            )
            raise AccessBackendError(
                f"Salto {method} {path} failed: {type(error).__name__} (connection error)."
            ) from error

    # OAuth2 client credentials

    def _access_token(self) -> str:
        with self._token_lock:
            if self._token is None or time.monotonic() >= self._token_expires_at:
                self._token, lifetime = self._request_token()
                self._token_expires_at = time.monotonic() + max(
                    lifetime - TOKEN_EXPIRY_MARGIN_SECONDS, 0
                )
            return self._token

    def _forget_token(self) -> None:
        with self._token_lock:
            self._token = None
            self._token_expires_at = 0.0

    def _request_token(self) -> tuple[str, int]:
        token_url = settings.SALTO_TOKEN_URL
        form = {
            "grant_type": "client_credentials",
            "client_id": settings.SALTO_CLIENT_ID,
            "client_secret": settings.SALTO_CLIENT_SECRET,
        }
        logger.debug("Salto token request to %s", token_url)
        try:
            response = requests.post(token_url, data=form, timeout=self._timeout)
        except requests.Timeout as error:
            logger.warning("Salto token request to %s timed out", token_url)
            raise AccessBackendError(
                f"Salto token request to {token_url} timed out after {self._timeout}s."
            ) from error
        except requests.RequestException as error:
            logger.warning("Salto token request to %s failed: %s", token_url, type(error).__name__)
            raise AccessBackendError(
                f"Salto token request to {token_url} failed: {type(error).__name__} "
                "(connection error)."
            ) from error
        if not response.ok:
            logger.warning(
                "Salto token request to %s failed: HTTP %s", token_url, response.status_code
            )
            raise AccessBackendError(
                f"Salto token request to {token_url} failed: HTTP {response.status_code}. "
                "Check SALTO_CLIENT_ID and SALTO_CLIENT_SECRET."
            )
        payload = _json(response, "POST", token_url)
        token = payload.get("access_token")
        if not token:
            raise AccessBackendError(f"Salto token response from {token_url} has no access_token.")
        try:
            lifetime = int(payload.get("expires_in", 0))
        except (TypeError, ValueError):
            lifetime = 0
        return token, lifetime


def _json(response: requests.Response, method: str, path: str) -> dict:
    if not response.content:
        return {}
    try:
        payload = response.json()
    except ValueError as error:
        raise AccessBackendError(
            f"Salto {method} {path} returned a body that is not JSON (HTTP {response.status_code})."
        ) from error
    if not isinstance(payload, dict):
        raise AccessBackendError(f"Salto {method} {path} returned JSON that is not an object.")
    return payload
