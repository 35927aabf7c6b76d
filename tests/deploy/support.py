"""Readers for the deployment files: .env.example, docker-compose.yml and the Dockerfile.

No Docker engine or compose plugin runs here, so these helpers do what `docker compose
config` does before it talks to an engine: read the .env file, substitute variables as
the compose specification describes, and hand the result to the schema check.
"""

import re
from dataclasses import dataclass
from pathlib import Path

import dockerfile
import yaml

PROJECT_DIR = Path(__file__).resolve().parents[2]
COMPOSE_FILE = PROJECT_DIR / "docker-compose.yml"
ENV_EXAMPLE_FILE = PROJECT_DIR / ".env.example"
DOCKERFILE = PROJECT_DIR / "Dockerfile"
DOCKERIGNORE = PROJECT_DIR / ".dockerignore"

ENV_LINE = re.compile(r"^(?P<name>[A-Za-z_][A-Za-z0-9_]*)=(?P<value>.*)$")
# `# NAME=value` documents an optional variable and its default.
COMMENTED_ENV_LINE = re.compile(r"^#\s?(?P<name>[A-Z][A-Z0-9_]*)=(?P<value>.*)$")
# One compose substitution: "$$", "${...}" or "$NAME".
SUBSTITUTION = re.compile(
    r"\$(?:(?P<escaped>\$)|\{(?P<braced>[^}]*)\}|(?P<named>[A-Za-z_][A-Za-z0-9_]*))"
)
BRACED = re.compile(r"^(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<operator>:?[-?+])(?P<word>.*))?$")


@dataclass(frozen=True)
class EnvEntry:
    value: str
    # True for "# NAME=value" lines: listed, but not set.
    commented: bool


class InterpolationError(ValueError):
    pass


@dataclass(frozen=True)
class VariableUse:
    name: str
    # "", ":-", "-", ":?", "?", ":+" or "+", as written after the name.
    operator: str


def unquote(value: str) -> str:
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        return value[1:-1]
    return value


def read_env_example(path: Path = ENV_EXAMPLE_FILE) -> dict[str, EnvEntry]:
    """Parse .env.example into {name: entry}; raise on a line that is neither."""
    entries: dict[str, EnvEntry] = {}
    for number, raw_line in enumerate(path.read_text().splitlines(), start=1):
        line = raw_line.strip()
        if not line:
            continue
        if match := ENV_LINE.match(line):
            commented = False
        elif match := COMMENTED_ENV_LINE.match(line):
            commented = True
        elif line.startswith("#"):
            continue
        else:
            raise ValueError(f"{path.name}:{number}: not NAME=value: {raw_line!r}")
        name = match["name"]
        if name in entries and not entries[name].commented:
            raise ValueError(f"{path.name}:{number}: {name} is set twice")
        entries[name] = EnvEntry(value=unquote(match["value"]), commented=commented)
    return entries


def variable_uses(text: str) -> list[VariableUse]:
    uses = []
    for match in SUBSTITUTION.finditer(text):
        if match["escaped"]:
            continue
        if match["named"]:
            uses.append(VariableUse(match["named"], ""))
            continue
        braced = BRACED.match(match["braced"])
        if braced is None:
            raise InterpolationError(f"invalid substitution ${{{match['braced']}}}")
        uses.append(VariableUse(braced["name"], braced["operator"] or ""))
    return uses


def interpolate_string(text: str, variables: dict[str, str]) -> str:
    """Substitute variables in one string as compose does, raising for a missing required one."""

    def substitute(match: re.Match) -> str:
        if match["escaped"]:
            return "$"
        if match["named"]:
            return variables.get(match["named"], "")
        braced = BRACED.match(match["braced"])
        if braced is None:
            raise InterpolationError(f"invalid substitution ${{{match['braced']}}}")
        name, operator, word = braced["name"], braced["operator"] or "", braced["word"] or ""
        if "$" in word:
            raise InterpolationError(f"nested substitution in ${{{match['braced']}}}")
        value = variables.get(name)
        unset_or_empty = not value
        missing = unset_or_empty if operator.startswith(":") else value is None
        if operator in (":-", "-"):
            return word if missing else value
        if operator in (":?", "?"):
            if missing:
                raise InterpolationError(f"required variable {name} has no value: {word}")
            return value
        if operator in (":+", "+"):
            return "" if missing else word
        return value or ""

    return SUBSTITUTION.sub(substitute, text)


def interpolate(node, variables: dict[str, str]):
    """Substitute variables in every string value of a parsed compose file."""
    if isinstance(node, dict):
        return {key: interpolate(value, variables) for key, value in node.items()}
    if isinstance(node, list):
        return [interpolate(item, variables) for item in node]
    if isinstance(node, str):
        return interpolate_string(node, variables)
    return node


def string_values(node):
    """Yield every string value in a parsed YAML document."""
    if isinstance(node, dict):
        for value in node.values():
            yield from string_values(value)
    elif isinstance(node, list):
        for item in node:
            yield from string_values(item)
    elif isinstance(node, str):
        yield node


def load_compose(path: Path = COMPOSE_FILE) -> dict:
    return yaml.safe_load(path.read_text())


def variable_uses_in(node) -> list[VariableUse]:
    """List the variables that the string values of a parsed YAML node substitute."""
    return [use for text in string_values(node) for use in variable_uses(text)]


def load_dockerfile(path: Path = DOCKERFILE) -> tuple:
    return dockerfile.parse_file(str(path))
