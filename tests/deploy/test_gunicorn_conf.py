"""cpr_portal/gunicorn_conf.py, loaded by gunicorn itself."""

import os
import re
import subprocess
import sys

import pytest

from tests.deploy.support import PROJECT_DIR


def gunicorn_settings(**variables: str) -> dict[str, str]:
    """Return the settings gunicorn prints for the image's config, under `variables`."""
    environment = {"PATH": os.environ.get("PATH", os.defpath), **variables}
    result = subprocess.run(  # noqa: S603 - fixed arguments, no shell
        [
            sys.executable,
            "-m",
            "gunicorn",
            "--config",
            "python:cpr_portal.gunicorn_conf",
            "--print-config",
            "cpr_portal.wsgi",
        ],
        cwd=PROJECT_DIR,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if result.returncode != 0:
        raise AssertionError(result.stdout + result.stderr)
    return dict(re.findall(r"^(\w+)\s+= (.*)$", result.stdout, flags=re.MULTILINE))


def test_defaults():
    settings = gunicorn_settings()

    assert settings["bind"] == "['0.0.0.0:8000']"
    assert settings["workers"] == "2"
    assert settings["threads"] == "4"
    assert settings["timeout"] == "30"
    # Outside the image nothing names a socket, so gunicorn creates none.
    assert settings["control_socket_disable"] == "True"


def test_control_socket_from_environment():
    settings = gunicorn_settings(GUNICORN_CONTROL_SOCKET="/srv/run/gunicorn.ctl")

    assert settings["control_socket"] == "/srv/run/gunicorn.ctl"
    assert settings["control_socket_disable"] == "False"


def test_reads_environment():
    settings = gunicorn_settings(GUNICORN_WORKERS="5", GUNICORN_THREADS="1", GUNICORN_TIMEOUT="90")

    assert settings["workers"] == "5"
    assert settings["threads"] == "1"
    assert settings["timeout"] == "90"


@pytest.mark.parametrize("value", ["0", "many", "-2"])
def test_invalid_value_names_variable(value):
    with pytest.raises(AssertionError) as failure:
        gunicorn_settings(GUNICORN_WORKERS=value)

    assert "GUNICORN_WORKERS" in str(failure.value)
    assert repr(value) in str(failure.value)
