"""docker-compose.yml stays valid and names the services users rely on (no Docker engine
runs here, so this checks the file itself)."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]


def load() -> dict[str, Any]:
    data = yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def test_compose_names_the_services() -> None:
    services = load()["services"]
    assert set(services) == {"kafka", "postgres", "migrate", "worker", "notifier", "api"}


def test_workers_scale_and_wait_for_kafka_and_migrations() -> None:
    worker = load()["services"]["worker"]
    assert worker["command"] == ["watchkeeper", "worker"]
    assert worker["deploy"]["replicas"] >= 2
    assert worker["depends_on"]["kafka"] == {"condition": "service_healthy"}
    assert worker["depends_on"]["migrate"] == {"condition": "service_completed_successfully"}
    env = worker["environment"]
    assert env["WATCHKEEPER_KAFKA_BOOTSTRAP"] == "kafka:9092"
    assert env["WATCHKEEPER_DATABASE_URL"].startswith("postgresql://")


def test_kafka_runs_in_kraft_mode_and_migrate_is_one_shot() -> None:
    services = load()["services"]
    assert services["kafka"]["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert services["migrate"]["command"][:3] == ["watchkeeper", "db", "upgrade"]
    assert services["migrate"]["restart"] == "no"


def test_the_image_build_copies_every_package() -> None:
    """Every package the distribution installs (pyproject's package list) is in the image."""
    dockerfile = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    found = pyproject["tool"]["setuptools"]["packages"]["find"]["include"]
    packages = [p.rstrip("*") for p in found]
    assert {"config", "stream", "alerts", "services", "watchkeeper"} <= set(packages)
    for package in packages:
        assert f"COPY {package} ./{package}" in dockerfile


def test_every_watchkeeper_command_in_compose_is_a_real_cli_command() -> None:
    from watchkeeper.cli import build_parser

    parser = build_parser()
    for name, service in load()["services"].items():
        command = service.get("command")
        if command and command[0] == "watchkeeper":
            args = parser.parse_args(command[1:])
            assert callable(args.func), name


def test_the_database_is_named_once_for_every_service() -> None:
    text = (ROOT / "docker-compose.yml").read_text(encoding="utf-8")
    assert text.count("postgresql://") == 1  # in the shared environment, nowhere else
    for name, service in load()["services"].items():
        if service.get("command", [""])[0] == "watchkeeper":
            assert "--db" not in service["command"], name
            assert service["environment"]["WATCHKEEPER_DATABASE_URL"].startswith(
                "postgresql://"), name
