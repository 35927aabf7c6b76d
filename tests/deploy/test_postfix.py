"""postfix/: the relay settings file, the header checks and the start-up hook.

The hook runs here with a stand-in `postconf` on PATH that records its arguments, so the
tests see exactly which settings the container would apply.
"""

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.deploy.support import PROJECT_DIR

POSTFIX_DIR = PROJECT_DIR / "postfix"
HOOK = POSTFIX_DIR / "cpr-relay.sh"
SETTING_LINE = re.compile(r"^(?P<name>[a-z][a-z0-9_]*) = (?P<value>\S.*)$")
BASH = shutil.which("bash") or "bash"


def relay_settings() -> list[str]:
    lines = (POSTFIX_DIR / "relay.cf").read_text().splitlines()
    return [line for line in lines if line.strip() and not line.lstrip().startswith("#")]


def header_check_patterns() -> list[tuple[re.Pattern, str]]:
    """Read smtp_header_checks as (pattern, action) pairs.

    Postfix regexp tables use POSIX extended expressions; the file keeps to the part of
    that syntax that Python's re reads the same way.
    """
    rules = []
    for line in (POSTFIX_DIR / "smtp_header_checks").read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        match = re.match(r"^/(?P<pattern>.*)/(?P<flags>[a-z]*)\s+(?P<action>.+)$", line)
        assert match, f"not a regexp table line: {line!r}"
        flags = 0 if "i" not in match["flags"] else re.IGNORECASE
        rules.append((re.compile(match["pattern"], flags), match["action"]))
    return rules


def header_action(header: str) -> str | None:
    for pattern, action in header_check_patterns():
        if pattern.search(header):
            return action
    return None


@pytest.fixture
def fake_postconf(tmp_path) -> tuple[Path, Path]:
    """Put a `postconf` on PATH that appends each call's arguments to a log file."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "postconf.log"
    script = bin_dir / "postconf"
    script.write_text(f'#!/bin/sh\nprintf "%s\\n" "$*" >> "{log}"\n')
    script.chmod(0o755)
    return bin_dir, log


def run_hook(fake_postconf, command: list[str] | None = None, **variables):
    bin_dir, log = fake_postconf
    environment = {
        "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', os.defpath)}",
        "CPR_POSTFIX_CONFIG_DIR": str(POSTFIX_DIR),
        "CPR_POSTFIX_STATE_FILE": str(bin_dir.parent / "cpr-relay.keys"),
        "DEFAULT_FROM_EMAIL": "Code Puerto Rico <info@code.pr>",
        "ALLOWED_SENDER_DOMAINS": "code.pr",
        **variables,
    }
    result = subprocess.run(  # noqa: S603 - fixed arguments, no shell
        command or [BASH, str(HOOK)],
        env=environment,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    calls = log.read_text().splitlines() if log.exists() else []
    return result, calls


def test_relay_settings_format():
    for line in relay_settings():
        assert SETTING_LINE.match(line), f"not 'name = value': {line!r}"


def test_relay_settings_require_modern_tls():
    assert "smtp_tls_mandatory_protocols = >=TLSv1.2" in relay_settings()


def test_relay_settings_reference_mounted_files():
    mounted = {"/etc/cpr-postfix/smtp_header_checks": POSTFIX_DIR / "smtp_header_checks"}
    for line in relay_settings():
        for path in re.findall(r"(?:regexp|pcre):(\S+)", line):
            assert path in mounted, f"{path} is not mounted into the postfix service"
            assert mounted[path].is_file()


@pytest.mark.parametrize(
    "header",
    [
        "Received: from web.cpr-portal_default (cpr-portal-web-1.cpr-portal_default "
        "[172.18.0.5]) by portal.code.pr (Postfix) with ESMTP id 4Xyz",
        "Received: from worker (worker [10.0.3.7]) by portal.code.pr (Postfix)",
        "Received: from localhost (localhost [127.0.0.1]) by portal.code.pr (Postfix)",
        "Received: from app (app [192.168.1.20]) by portal.code.pr (Postfix)",
    ],
)
def test_header_checks_drop_internal_hops(header):
    assert header_action(header) == "IGNORE"


@pytest.mark.parametrize(
    "header",
    [
        "Received: from mail.example.org (mail.example.org [203.0.113.9]) by mx.example.com",
        "Received: from host (host [172.32.0.1]) by mx.example.com",
        "Subject: Your membership [172.18.0.5]",
        "From: Code Puerto Rico <info@code.pr>",
    ],
)
def test_header_checks_keep_other_headers(header):
    assert header_action(header) is None


def test_hook_syntax():
    result = subprocess.run(  # noqa: S603 - fixed arguments, no shell
        [BASH, "-n", str(HOOK)], capture_output=True, text=True, check=False
    )

    assert result.returncode == 0, result.stderr


def test_hook_applies_settings_then_sender(fake_postconf):
    result, calls = run_hook(fake_postconf)

    assert result.returncode == 0, result.stderr
    assert calls == [
        *(f"-e {line}" for line in relay_settings()),
        "-e sender_canonical_classes = envelope_sender",
        "-e sender_canonical_maps = static:info@code.pr",
    ]


def write_relay_settings(folder: Path, *lines: str) -> Path:
    folder.mkdir(exist_ok=True)
    (folder / "relay.cf").write_text("# settings\n" + "".join(f"{line}\n" for line in lines))
    return folder


def test_hook_records_applied_names(fake_postconf, tmp_path):
    result, _calls = run_hook(fake_postconf)

    assert result.returncode == 0, result.stderr
    names = [line.split(" = ")[0] for line in relay_settings()]
    assert (tmp_path / "cpr-relay.keys").read_text().split() == names


def test_hook_removes_dropped_setting(fake_postconf, tmp_path):
    # main.cf lives in the image's /etc/postfix volume, so it keeps what an earlier start
    # applied; a line deleted from relay.cf must be removed from it.
    config = tmp_path / "config"
    write_relay_settings(config, "smtp_tls_loglevel = 1", "disable_vrfy_command = yes")
    first, _calls = run_hook(fake_postconf, CPR_POSTFIX_CONFIG_DIR=str(config))
    assert first.returncode == 0, first.stderr
    fake_postconf[1].unlink()
    write_relay_settings(config, "smtp_tls_loglevel = 2")

    result, calls = run_hook(fake_postconf, CPR_POSTFIX_CONFIG_DIR=str(config))

    assert result.returncode == 0, result.stderr
    assert calls[:2] == ["-X disable_vrfy_command", "-e smtp_tls_loglevel = 2"]
    assert (tmp_path / "cpr-relay.keys").read_text().split() == ["smtp_tls_loglevel"]


def test_hook_keeps_environment_setting(fake_postconf, tmp_path):
    # The image writes POSTFIX_<name> variables into main.cf itself before the hook runs.
    config = tmp_path / "config"
    write_relay_settings(config, "smtp_tls_loglevel = 1", "message_size_limit = 1000")
    run_hook(fake_postconf, CPR_POSTFIX_CONFIG_DIR=str(config))
    fake_postconf[1].unlink()
    write_relay_settings(config, "smtp_tls_loglevel = 1")

    result, calls = run_hook(
        fake_postconf, CPR_POSTFIX_CONFIG_DIR=str(config), POSTFIX_message_size_limit="2000"
    )

    assert result.returncode == 0, result.stderr
    assert not any(call.startswith("-X") for call in calls)


def test_hook_bare_sender_address(fake_postconf):
    result, calls = run_hook(
        fake_postconf,
        DEFAULT_FROM_EMAIL="info@code.pr",
        ALLOWED_SENDER_DOMAINS="example.org code.pr",
    )

    assert result.returncode == 0, result.stderr
    assert calls[-1] == "-e sender_canonical_maps = static:info@code.pr"


def test_hook_rejects_disallowed_domain(fake_postconf):
    result, calls = run_hook(fake_postconf, ALLOWED_SENDER_DOMAINS="example.org")

    assert result.returncode != 0
    assert "code.pr" in result.stderr
    assert "ALLOWED_SENDER_DOMAINS" in result.stderr
    assert not any("sender_canonical" in call for call in calls)


def test_hook_rejects_missing_sender(fake_postconf):
    result, calls = run_hook(fake_postconf, DEFAULT_FROM_EMAIL="Code Puerto Rico")

    assert result.returncode != 0
    assert "DEFAULT_FROM_EMAIL" in result.stderr
    assert not any("sender_canonical" in call for call in calls)


def test_hook_missing_settings_file(fake_postconf, tmp_path):
    result, calls = run_hook(fake_postconf, CPR_POSTFIX_CONFIG_DIR=str(tmp_path / "absent"))

    assert result.returncode != 0
    assert "relay.cf" in result.stderr
    assert calls == []


def test_hook_sourced_leaves_caller_shell(fake_postconf):
    # The image sources executable hooks into its start-up shell, which runs with set -e.
    caller = f'set -e; . "{HOOK}"; echo "options=$-"; echo "still running"'

    result, calls = run_hook(fake_postconf, command=[BASH, "-c", caller])

    assert result.returncode == 0, result.stderr
    assert "still running" in result.stdout
    options = re.search(r"options=(\S*)", result.stdout)[1]
    assert "u" not in options
    assert calls[-1] == "-e sender_canonical_maps = static:info@code.pr"


def test_hook_sourced_failure_stops_caller(fake_postconf):
    caller = f'set -e; . "{HOOK}"; echo "still running"'

    result, _calls = run_hook(
        fake_postconf, command=[BASH, "-c", caller], ALLOWED_SENDER_DOMAINS="example.org"
    )

    assert result.returncode != 0
    assert "still running" not in result.stdout
