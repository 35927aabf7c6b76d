"""The Dockerfile, read with the parser Docker's build uses, and its .dockerignore.

No Docker engine runs here, so the image is never built. The tests check the
instructions, and run the build's collectstatic step the way the image runs it.
"""

import os
import re
import shlex
import subprocess
import sys

import pytest

from tests.deploy.support import DOCKERIGNORE, PROJECT_DIR, load_dockerfile

ENV_ASSIGNMENT = re.compile(r"^[A-Z][A-Z0-9_]*=")


@pytest.fixture(scope="module")
def instructions():
    return load_dockerfile()


def instruction_index(instructions, command: str, predicate=lambda values: True) -> int:
    for index, instruction in enumerate(instructions):
        if instruction.cmd == command and predicate(instruction.value):
            return index
    raise AssertionError(f"no {command} instruction matches")


def run_lines(instructions) -> list[str]:
    return [
        line
        for instruction in instructions
        if instruction.cmd == "RUN"
        for line in instruction.value
    ]


def collectstatic_step(instructions) -> tuple[dict[str, str], list[str]]:
    """Split the build's collectstatic RUN line into its variables and its command."""
    line = next(line for line in run_lines(instructions) if "collectstatic" in line)
    words = shlex.split(line)
    variables = {}
    while words and ENV_ASSIGNMENT.match(words[0]):
        name, value = words.pop(0).split("=", 1)
        variables[name] = value
    return variables, words


def test_base_image(instructions):
    assert instructions[0].cmd == "FROM"
    assert instructions[0].value == ("python:3.13-slim-trixie",)


def test_installs_postgresql_client(instructions):
    assert any(
        "apt-get install" in line and "postgresql-client" in line
        for line in run_lines(instructions)
    )


def test_dependencies_layer_before_code(instructions):
    copy_pyproject = instruction_index(instructions, "COPY", lambda v: v[0] == "pyproject.toml")
    install = instruction_index(instructions, "RUN", lambda v: "pip install" in v[0])
    copy_code = instruction_index(instructions, "COPY", lambda v: v[0] == ".")

    assert copy_pyproject < install < copy_code


def test_runs_as_app_user(instructions):
    users = [instruction.value[0] for instruction in instructions if instruction.cmd == "USER"]
    create_user = instruction_index(instructions, "RUN", lambda v: "useradd" in v[0])
    cmd = instruction_index(instructions, "CMD")

    assert users[-1] == "app"
    assert create_user < instruction_index(instructions, "USER") < cmd


def test_collectstatic_at_build(instructions):
    variables, command = collectstatic_step(instructions)
    collect = instruction_index(instructions, "RUN", lambda v: "collectstatic" in v[0])
    copy_code = instruction_index(instructions, "COPY", lambda v: v[0] == ".")

    assert command == ["python", "manage.py", "collectstatic", "--no-input"]
    assert variables["DJANGO_DEBUG"] == "false"
    assert copy_code < collect


def test_collectstatic_step_builds_manifest(instructions, tmp_path):
    """Run the build step with its own variables; the manifest storage must succeed."""
    variables, command = collectstatic_step(instructions)
    static_root = tmp_path / "staticfiles"
    environment = {
        "PATH": os.environ.get("PATH", os.defpath),
        **variables,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'collectstatic.sqlite3'}",
        "DJANGO_STATIC_ROOT": str(static_root),
    }

    result = subprocess.run(  # noqa: S603 - fixed arguments, no shell
        [sys.executable, *command[1:]],
        cwd=PROJECT_DIR,
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )

    assert result.returncode == 0, result.stdout + result.stderr
    manifest = (static_root / "staticfiles.json").read_text()
    assert '"css/site.css"' in manifest


def test_gunicorn_command(instructions):
    cmd = instructions[instruction_index(instructions, "CMD")]

    assert cmd.json
    assert cmd.value == (
        "gunicorn",
        "--config",
        "python:cpr_portal.gunicorn_conf",
        "cpr_portal.wsgi",
    )


def image_environment(instructions) -> dict[str, str]:
    values = {}
    for instruction in instructions:
        if instruction.cmd == "ENV":
            pairs = instruction.value
            values.update(zip(pairs[::2], pairs[1::2], strict=True))
    return values


def test_control_socket_in_writable_folder(instructions):
    socket_path = image_environment(instructions)["GUNICORN_CONTROL_SOCKET"]
    owned = next(line for line in run_lines(instructions) if "chown app:app" in line)

    assert os.path.dirname(socket_path) == "/app/var"
    assert "/app/var" in owned.split("chown app:app", 1)[1].split()


def test_exposes_gunicorn_port(instructions):
    assert instructions[instruction_index(instructions, "EXPOSE")].value == ("8000",)


@pytest.mark.parametrize(
    "pattern",
    [".git", ".venv", ".env", "media", "backups", "staticfiles", "**/__pycache__", ".pytest_cache"],
)
def test_dockerignore_excludes(pattern):
    patterns = [
        line.strip()
        for line in DOCKERIGNORE.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]

    assert pattern in patterns
