"""The Dockerfile and docker-compose.yml say what the CLI and the settings really have: every
command they run parses with `leadheat`'s own parser, every LEADHEAT_ variable they set is a
setting, and the compose file has production's shape. (Building the image needs Docker and
its registry, which the test machines lack.)"""

import argparse
import json
import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml

from app.cli import build_parser
from tests.helpers import setting_of

ROOT = Path(__file__).resolve().parent.parent


def is_setting(variable: str) -> bool:
    return setting_of(variable) is not None


def parse_command(command: list[str]) -> argparse.Namespace:
    assert command[0] == "leadheat", command
    try:
        return build_parser().parse_args(command[1:])
    except SystemExit:
        pytest.fail(f"`{shlex.join(command)}` is no leadheat command")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return loaded


def leadheat_services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        name: service
        for name, service in compose["services"].items()
        if service.get("image") == "leadheat"
    }


def test_compose_runs_postgresql_two_api_replicas_and_one_worker(compose):
    services = leadheat_services(compose)
    commands = {name: parse_command(service["command"]) for name, service in services.items()}
    serving = [name for name, args in commands.items() if args.command == "serve"]
    assert len(serving) == 2
    assert [name for name, args in commands.items() if args.command == "worker"] == ["worker"]
    assert [name for name, args in commands.items() if args.command == "migrate"] == ["migrate"]
    assert compose["services"]["db"]["image"].startswith("postgres:")
    for name in serving:
        environment = services[name]["environment"]
        assert environment["LEADHEAT_RUN_BACKGROUND"] == "false"  # the worker does it
        assert services[name]["depends_on"]["migrate"]["condition"] == (
            "service_completed_successfully"
        )
    # One database and one secrets key for every process.
    for variable in ("LEADHEAT_DATABASE_URL", "LEADHEAT_SECRETS_KEY"):
        values = {service["environment"][variable] for service in services.values()}
        assert len(values) == 1, variable
    (url,) = {service["environment"]["LEADHEAT_DATABASE_URL"] for service in services.values()}
    assert url.startswith("postgresql+asyncpg://")
    assert "@db:" in url


def test_compose_sets_only_real_settings(compose):
    for name, service in leadheat_services(compose).items():
        for variable in service["environment"]:
            assert is_setting(variable), f"{name}: {variable} is no setting"


def _final_stage(dockerfile: str) -> list[str]:
    lines = dockerfile.replace("\\\n", " ").splitlines()
    stages = [i for i, line in enumerate(lines) if line.startswith("FROM ")]
    assert len(stages) >= 2, "a build stage and a final stage"
    return [line for line in lines[stages[-1] :] if line and not line.startswith("#")]


def test_the_image_installs_the_wheel_and_runs_leadheat_unprivileged():
    final = _final_stage((ROOT / "Dockerfile").read_text())
    instructions = [line.split(None, 1) for line in final]
    installs = [rest for op, rest in instructions if op == "RUN" and "pip install" in rest]
    assert installs, "the final stage installs the wheel"
    assert all(" -e " not in rest and "--editable" not in rest for rest in installs)
    assert not [rest for op, rest in instructions if op == "COPY" and "from=build" not in rest]
    users = [rest.strip() for op, rest in instructions if op == "USER"]
    assert users, "the final stage names a user"
    assert users[-1] not in ("root", "0")
    (cmd,) = [rest for op, rest in instructions if op == "CMD"]
    assert parse_command(json.loads(cmd)).command == "serve"
    for op, rest in instructions:
        if op == "ENV":
            for variable in re.findall(r"\b(LEADHEAT_\w+)=", rest):
                assert is_setting(variable), variable


def test_the_checker_finds_a_misspelt_setting():
    assert is_setting("LEADHEAT_RUN_BACKGROUND")
    assert is_setting("LEADHEAT_HTTP__HEADER_TIMEOUT_SECONDS")
    assert not is_setting("LEADHEAT_RUN_BACKGROUNDS")
    assert not is_setting("LEADHEAT_PORT__X")
    assert not is_setting("LEADHEAT_HTTP__NOPE")
