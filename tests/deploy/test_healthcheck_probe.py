"""cpr_portal.healthcheck, the probe the web container's health check runs."""

import http.server
import socket
import threading

import pytest

from cpr_portal import healthcheck


@pytest.fixture
def unhealthy_server():
    """Serve 503 on every path from a local HTTP server; yield its base URL."""

    class Unhealthy(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(503)
            self.end_headers()

        def log_message(self, format, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Unhealthy)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize(
    ("allowed_hosts", "expected"),
    [
        ("portal.code.pr", "portal.code.pr"),
        (" portal.code.pr , www.code.pr", "portal.code.pr"),
        (".code.pr", "code.pr"),
        ("*,portal.code.pr", "portal.code.pr"),
        ("", "localhost"),
        ("*", "localhost"),
    ],
)
def test_probe_host(allowed_hosts, expected):
    assert healthcheck.probe_host(allowed_hosts) == expected


@pytest.mark.django_db(transaction=True)
def test_check_live_server(live_server):
    healthy, outcome = healthcheck.check(f"{live_server.url}/healthz/", "localhost")

    assert healthy
    assert outcome == "HTTP 200"


@pytest.mark.django_db(transaction=True)
def test_check_disallowed_host(live_server):
    # Django returns 400 for a Host outside ALLOWED_HOSTS, which is why the probe sends one.
    healthy, outcome = healthcheck.check(f"{live_server.url}/healthz/", "not-allowed.example")

    assert not healthy
    assert outcome == "HTTP 400"


def test_check_unhealthy(unhealthy_server):
    healthy, outcome = healthcheck.check(f"{unhealthy_server}/healthz/", "localhost")

    assert not healthy
    assert outcome == "HTTP 503"


def test_check_nothing_listening():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]

    healthy, outcome = healthcheck.check(f"http://127.0.0.1:{port}/healthz/", "localhost", 2)

    assert not healthy
    assert outcome.startswith("request failed:")


@pytest.mark.django_db(transaction=True)
def test_main_exit_status(live_server, monkeypatch, capsys):
    monkeypatch.setattr(healthcheck, "HEALTHZ_URL", f"{live_server.url}/healthz/")
    monkeypatch.setenv("DJANGO_ALLOWED_HOSTS", "localhost,127.0.0.1")

    assert healthcheck.main() == 0
    assert "(Host: localhost): HTTP 200" in capsys.readouterr().out


def test_main_exit_status_unhealthy(unhealthy_server, monkeypatch):
    monkeypatch.setattr(healthcheck, "HEALTHZ_URL", f"{unhealthy_server}/healthz/")

    assert healthcheck.main() == 1
