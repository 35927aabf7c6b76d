"""docker-compose.yml: services, health checks, volumes, ports and variables.

No Docker engine or compose plugin runs here, so `docker compose config` cannot run.
These tests do its offline part instead: substitute the variables from .env.example,
validate the result against the compose-spec JSON schema that check-jsonschema ships
(the schema compose itself validates against), and check what the stack promises.
"""

import json
from importlib import resources
from pathlib import PurePosixPath

import pytest
from django.urls import resolve
from jsonschema.validators import validator_for

from cpr_portal import healthcheck
from tests.deploy.support import (
    PROJECT_DIR,
    InterpolationError,
    interpolate,
    load_compose,
    load_dockerfile,
    read_env_example,
    variable_uses_in,
)

APP_SERVICES = ["migrate", "web", "worker", "beat"]
LONG_RUNNING_APP_SERVICES = ["web", "worker", "beat"]
EXPECTED_SERVICES = {*APP_SERVICES, "db", "redis", "postfix", "cloudflared"}
REQUIRED_OPERATORS = {":?", "?"}


@pytest.fixture(scope="module")
def compose():
    return load_compose()


@pytest.fixture(scope="module")
def services(compose):
    return compose["services"]


@pytest.fixture(scope="module")
def env_example():
    return read_env_example()


def example_variables(compose, env_example) -> dict[str, str]:
    """Return .env.example's values, with placeholders for empty secrets the stack requires.

    Only services that start without a profile count: a required variable that only a
    profile's service uses would still stop every `docker compose up`, and the
    interpolation below reports it.
    """
    variables = {name: entry.value for name, entry in env_example.items() if not entry.commented}
    always_started = {
        name: service
        for name, service in compose["services"].items()
        if not service.get("profiles")
    }
    for use in variable_uses_in(always_started):
        if use.operator in REQUIRED_OPERATORS and not variables.get(use.name):
            variables[use.name] = f"placeholder-{use.name.lower()}"
    return variables


def compose_spec_schema() -> dict:
    schema_file = resources.files("check_jsonschema.builtin_schemas.vendor") / "compose-spec.json"
    return json.loads(schema_file.read_text())


def named_volume_mounts(service: dict) -> dict[str, str]:
    """Map each container path of a service to the named volume mounted there."""
    mounts = {}
    for volume in service.get("volumes", []):
        source, target = volume.split(":")[:2]
        if not source.startswith((".", "/")):
            mounts[target] = source
    return mounts


def published_ports(service: dict) -> list[str]:
    return [str(port) for port in service.get("ports", [])]


def test_services_present(services):
    assert set(services) >= EXPECTED_SERVICES


def test_matches_compose_spec_schema(compose, env_example):
    interpolated = interpolate(compose, example_variables(compose, env_example))
    schema = compose_spec_schema()
    validator = validator_for(schema)(schema)

    errors = [
        f"{'/'.join(map(str, error.absolute_path))}: {error.message}"
        for error in validator.iter_errors(interpolated)
    ]

    assert errors == []


def test_schema_check_rejects_typo(compose, env_example):
    # Shows that the schema check above can fail: an unknown service key is an error.
    interpolated = interpolate(compose, example_variables(compose, env_example))
    interpolated["services"]["web"]["helthcheck"] = {}
    schema = compose_spec_schema()

    assert not validator_for(schema)(schema).is_valid(interpolated)


def test_variables_listed_in_env_example(compose, env_example):
    used = {use.name for use in variable_uses_in(compose)}

    assert sorted(used - set(env_example)) == []


def test_required_variables_set_in_env_example(compose, env_example):
    required = {use.name for use in variable_uses_in(compose) if use.operator in REQUIRED_OPERATORS}
    commented = sorted(name for name in required if env_example[name].commented)

    assert commented == []


def test_profile_services_require_no_variable(services):
    for name, service in services.items():
        if service.get("profiles"):
            required = [
                use.name for use in variable_uses_in(service) if use.operator in REQUIRED_OPERATORS
            ]
            assert required == [], f"{name} requires {required} even when its profile is off"


@pytest.mark.parametrize(
    "name",
    [
        "DJANGO_SECRET_KEY",
        "DJANGO_ALLOWED_HOSTS",
        "POSTGRES_PASSWORD",
        "DEFAULT_FROM_EMAIL",
        "RELAYHOST",
        "RELAYHOST_USERNAME",
        "RELAYHOST_PASSWORD",
        "ALLOWED_SENDER_DOMAINS",
    ],
)
def test_interpolation_reports_missing_required(compose, env_example, name):
    # The README's production steps name these as the values compose itself requires.
    variables = example_variables(compose, env_example)
    variables[name] = ""

    with pytest.raises(InterpolationError, match=name):
        interpolate(compose, variables)


def test_images_pinned(services):
    for name, service in services.items():
        image = service["image"]
        if "build" in service:
            continue
        repository, _, tag = image.rpartition(":")
        assert repository, f"{name}: image {image} has no tag"
        assert tag != "latest", f"{name}: image {image} is not pinned"
        assert any(character.isdigit() for character in tag), f"{name}: {image} tag has no version"


def test_app_services_use_built_image(services):
    images = {services[name]["image"] for name in APP_SERVICES}

    assert len(images) == 1
    for name in APP_SERVICES:
        assert services[name]["build"] == "."


def test_web_healthcheck_requests_healthz(services):
    healthcheck_test = services["web"]["healthcheck"]["test"]

    assert healthcheck_test == ["CMD", "python", "-m", "cpr_portal.healthcheck"]
    path = healthcheck.HEALTHZ_URL.split("8000", 1)[1]
    assert path == "/healthz/"
    assert resolve(path).url_name == "healthz"


def test_db_healthcheck(services):
    healthcheck_test = services["db"]["healthcheck"]["test"]

    assert healthcheck_test[0] == "CMD-SHELL"
    assert healthcheck_test[1].startswith("pg_isready ")


def test_redis_healthcheck(services):
    assert services["redis"]["healthcheck"]["test"] == ["CMD", "redis-cli", "ping"]


def test_db_named_volume(services):
    assert named_volume_mounts(services["db"]) == {"/var/lib/postgresql/data": "db"}


def test_redis_persistence(services):
    command = services["redis"]["command"]

    assert named_volume_mounts(services["redis"]) == {"/data": "redis"}
    assert command[command.index("--appendonly") + 1] == "yes"


def test_app_named_volumes(services):
    for name in APP_SERVICES:
        mounts = named_volume_mounts(services[name])
        assert mounts == {"/app/media": "media", "/app/backups": "backups"}, name
        assert services[name]["environment"]["DJANGO_MEDIA_ROOT"] == "/app/media"


def test_named_volumes_declared(compose, services):
    declared = set(compose["volumes"])
    used = {
        volume for service in services.values() for volume in named_volume_mounts(service).values()
    }

    assert {"db", "redis", "media", "backups"} <= declared
    assert used <= declared


def test_app_services_wait_for_healthy_data(services):
    for name in APP_SERVICES:
        depends_on = services[name]["depends_on"]
        assert depends_on["db"]["condition"] == "service_healthy", name
    for name in LONG_RUNNING_APP_SERVICES:
        depends_on = services[name]["depends_on"]
        assert depends_on["redis"]["condition"] == "service_healthy", name
        assert depends_on["migrate"]["condition"] == "service_completed_successfully", name


def test_migrate_runs_once(services):
    migrate = services["migrate"]

    assert migrate["command"] == ["python", "manage.py", "migrate", "--no-input"]
    assert migrate["restart"] == "no"


def test_worker_command(services):
    assert services["worker"]["command"][:3] == ["celery", "--app=cpr_portal", "worker"]


def test_beat_command_writable_schedule(services):
    command = services["beat"]["command"]
    schedule = next(part for part in command if part.startswith("--schedule="))
    schedule_dir = str(PurePosixPath(schedule.split("=", 1)[1]).parent)
    chown_lines = [
        line
        for instruction in load_dockerfile()
        if instruction.cmd == "RUN"
        for line in instruction.value
        if "chown app:app" in line
    ]

    assert command[:3] == ["celery", "--app=cpr_portal", "beat"]
    assert any(schedule_dir in line.split("chown app:app", 1)[1] for line in chown_lines)


def test_app_services_stack_addresses(services):
    for name in APP_SERVICES:
        environment = services[name]["environment"]
        assert environment["EMAIL_URL"] == "smtp://postfix:587", name
        assert environment["CELERY_BROKER_URL"].startswith("redis://redis:6379/"), name
        assert environment["CACHE_URL"].startswith("redis://redis:6379/"), name
        assert "@db:5432/" in environment["DATABASE_URL"], name


def test_postfix_publishes_no_ports(services):
    postfix = services["postfix"]

    assert "ports" not in postfix
    assert "network_mode" not in postfix


def test_published_ports_on_loopback(services):
    for name, service in services.items():
        for port in published_ports(service):
            assert port.startswith("127.0.0.1:"), f"{name} publishes {port} on every interface"


def test_postfix_relay_environment(services):
    environment = services["postfix"]["environment"]

    for name in ("RELAYHOST", "RELAYHOST_USERNAME", "RELAYHOST_PASSWORD"):
        assert environment[name] == f"${{{name}:?Set {name} in .env}}"
    assert environment["ALLOWED_SENDER_DOMAINS"].startswith("${ALLOWED_SENDER_DOMAINS")
    assert environment["POSTFIX_smtp_tls_security_level"] == "secure"


def test_postfix_mounts_exist(services):
    for volume in services["postfix"]["volumes"]:
        source = volume.split(":")[0]
        if source.startswith("./"):
            assert (PROJECT_DIR / source).is_file(), f"{source} is mounted but missing"


def test_cloudflared_only_in_tunnel_profile(services):
    assert services["cloudflared"]["profiles"] == ["tunnel"]
    for name, service in services.items():
        if name != "cloudflared":
            assert "profiles" not in service, name
            assert "cloudflared" not in service.get("depends_on", {}), name
