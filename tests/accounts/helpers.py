"""Helpers for the sign-in tests: a Google stub, the emailed-code flow, session checks.

Google is replaced at its HTTP boundary. The sign-in runs through allauth's real views:
the login POST, the redirect to Google's authorization URL, and the callback that
exchanges the code. `responses` mocks the token endpoint and fails every other
outgoing HTTP request with ConnectionError. allauth skips the ID token's signature
check when it fetched the token itself over TLS (GoogleOAuth2Adapter._decode_id_token in
allauth 65.22), so the certificates URL is never requested and the token is signed with
a throwaway HMAC key. The issuer, audience and expiry are still checked.
"""

import re
import time
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

import jwt
import responses
from django.contrib.auth import SESSION_KEY
from django.core import mail
from django.urls import reverse

GOOGLE_CLIENT_ID = "1234567890-test.apps.googleusercontent.com"
GOOGLE_CLIENT_SECRET = "test-google-client-secret"
GOOGLE_AUTHORIZE_URL = "https://accounts.google.com/o/oauth2/v2/auth"
GOOGLE_TOKEN_URL = "https://oauth2.googleapis.com/token"
GOOGLE_ISSUER = "https://accounts.google.com"
# tests/accounts/test_logging.py checks that these values never reach a log record.
ACCESS_TOKEN = "ya29.test-access-token-value"
AUTHORIZATION_CODE = "4/0test-authorization-code"
ID_TOKEN_SIGNING_KEY = "test-id-token-signing-key-of-32-bytes"


@dataclass
class GoogleIdentity:
    """The person Google reports in the ID token."""

    sub: str
    email: str
    email_verified: bool = True
    given_name: str = "Ana"
    family_name: str = "Rivera"
    audience: str = GOOGLE_CLIENT_ID

    def claims(self) -> dict:
        now = int(time.time())
        return {
            "iss": GOOGLE_ISSUER,
            "azp": GOOGLE_CLIENT_ID,
            "aud": self.audience,
            "sub": self.sub,
            "email": self.email,
            "email_verified": self.email_verified,
            "given_name": self.given_name,
            "family_name": self.family_name,
            "name": f"{self.given_name} {self.family_name}",
            "iat": now,
            "exp": now + 3600,
        }

    def id_token(self) -> str:
        return jwt.encode(self.claims(), ID_TOKEN_SIGNING_KEY, algorithm="HS256")


class GoogleStub:
    """Drive a Google sign-in through the test client, with Google's token endpoint mocked."""

    def __init__(self, client, mock: responses.RequestsMock):
        self.client = client
        self.mock = mock
        self.id_tokens: list[str] = []

    def start(self) -> str:
        """POST the login form and return the `state` sent in the redirect to Google."""
        response = self.client.post(reverse("google_login"))
        assert response.status_code == 302, response.content[:500]
        location = urlsplit(response["Location"])
        assert f"{location.scheme}://{location.netloc}{location.path}" == GOOGLE_AUTHORIZE_URL
        query = parse_qs(location.query)
        assert query["client_id"] == [GOOGLE_CLIENT_ID]
        return query["state"][0]

    def callback(self, identity: GoogleIdentity, state: str):
        """Request the callback as Google's redirect would, and return the response."""
        id_token = identity.id_token()
        self.id_tokens.append(id_token)
        self.mock.post(
            GOOGLE_TOKEN_URL,
            json={
                "access_token": ACCESS_TOKEN,
                "id_token": id_token,
                "expires_in": 3599,
                "token_type": "Bearer",
                "scope": "openid https://www.googleapis.com/auth/userinfo.email "
                "https://www.googleapis.com/auth/userinfo.profile",
            },
        )
        return self.client.get(
            reverse("google_callback"), {"code": AUTHORIZATION_CODE, "state": state}
        )

    def sign_in(self, identity: GoogleIdentity):
        """Run the whole round trip and return the callback's response."""
        return self.callback(identity, self.start())

    def token_requests(self) -> list:
        return [call.request for call in self.mock.calls if call.request.url == GOOGLE_TOKEN_URL]


# allauth's login codes: 8 characters from an alphabet without look-alikes, shown as
# two groups of four ("KPJQ-PHCK") in the email.
LOGIN_CODE_PATTERN = re.compile(r"^([A-Z0-9]{4}-[A-Z0-9]{4})$", re.MULTILINE)


def signed_in_user_id(client) -> int | None:
    """Return the id of the user the client's session is signed in as, or None."""
    value = client.session.get(SESSION_KEY)
    return int(value) if value is not None else None


def last_login_code(email: str) -> str:
    """Return the sign-in code from the last message sent to `email`."""
    messages = [message for message in mail.outbox if email.lower() in message.to]
    assert messages, f"no email was sent to {email}"
    match = LOGIN_CODE_PATTERN.search(messages[-1].body)
    assert match, f"no sign-in code in the message to {email}: {messages[-1].body!r}"
    return match.group(1)


def request_login_code(client, email: str):
    """POST the request-code form and return the response."""
    return client.post(reverse("account_request_login_code"), {"email": email})


def sign_in_with_code(client, email: str):
    """Request a code for `email`, read it from the outbox and confirm it."""
    response = request_login_code(client, email)
    assert response.status_code == 302, response.content[:500]
    assert response["Location"] == reverse("account_confirm_login_code")
    return client.post(reverse("account_confirm_login_code"), {"code": last_login_code(email)})
