"""``compose.yaml`` and ``deploy/haproxy.cfg`` hold together: no Docker runs here, so the files are
read as what they are (YAML and an HAProxy configuration that HAProxy itself checks)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import yaml

from wirehub.config import load_settings, unknown_env_keys

ROOT = Path(__file__).parent.parent.parent
COMPOSE = yaml.safe_load((ROOT / "compose.yaml").read_text(encoding="utf-8"))
SERVICES: dict[str, Any] = COMPOSE["services"]
GATEWAYS = [name for name, service in SERVICES.items() if "wirehub" in service.get("command", [])]


def test_two_gateways_run_on_redis_and_a_mongodb_replica_set() -> None:
    assert GATEWAYS == ["gateway1", "gateway2"]
    for name in GATEWAYS:
        env = SERVICES[name]["environment"]
        assert env["WIREHUB_BROKER_URL"].startswith("redis://redis:")
        assert env["WIREHUB_STORE_URL"].startswith("mongodb://mongo:")
        assert "replicaSet=" in env["WIREHUB_STORE_URL"]
    assert "--replSet" in SERVICES["mongo"]["command"]


def test_every_wirehub_variable_is_a_setting_with_a_valid_value(tmp_path: Path) -> None:
    for name in GATEWAYS:
        env = {key: str(value) for key, value in SERVICES[name]["environment"].items()}
        assert unknown_env_keys(env) == []
        files = {key: value for key, value in env.items() if key.endswith("_FILE")}
        for key, path in files.items():  # written by the secrets service: stand one in
            assert path.startswith("/run/wirehub-secrets/"), key
            (tmp_path / Path(path).name).write_text("x" * 32)
            env[key] = str(tmp_path / Path(path).name)
        load_settings(env=env)  # raises ConfigError naming any bad value


def test_gateways_wait_for_healthy_backends_and_the_generated_secrets() -> None:
    written = re.findall(r'"(\w+)"', SERVICES["secrets"]["command"][-1].split("for name in")[1].split(":")[0])
    for name in GATEWAYS:
        service = SERVICES[name]
        assert service["depends_on"] == {
            "secrets": {"condition": "service_completed_successfully"},
            "redis": {"condition": "service_healthy"},
            "mongo": {"condition": "service_healthy"},
        }
        assert "/ready" in " ".join(service["healthcheck"]["test"])
        read = sorted(Path(v).name for k, v in service["environment"].items() if k.endswith("_FILE"))
        assert read == sorted(written)


def test_every_long_running_service_has_a_healthcheck() -> None:
    for name, service in SERVICES.items():
        assert "healthcheck" in service, name
        assert service.get("restart") in ("unless-stopped", "no"), name


def test_the_load_balancer_checks_readiness_of_every_gateway() -> None:
    config = (ROOT / "deploy" / "haproxy.cfg").read_text(encoding="utf-8")
    backends = re.findall(r"^backend (\S+)\n(.*?)(?=^\S|\Z)", config, flags=re.MULTILINE | re.DOTALL)
    assert len(backends) == 3
    for name, body in backends:
        assert "option httpchk GET /ready" in body, name
        servers = re.findall(r"^\s+server (\S+) (\S+):(\d+) check", body, flags=re.MULTILINE)
        assert [server for server, _, _ in servers] == GATEWAYS, name
        assert all(host == server for server, host, _ in servers)
    published = {port.split(":")[-1] for port in SERVICES["lb"]["ports"]}
    assert published == {"8000", "8001", "8002"}
    assert "127.0.0.1:8002:8002" in SERVICES["lb"]["ports"]  # the operators' port stays local


def test_haproxy_accepts_the_configuration() -> None:
    haproxy = shutil.which("haproxy")
    assert haproxy is not None, "scripts/test installs Debian's haproxy"
    result = subprocess.run(  # noqa: S603 - a fixed command on the repository's own file
        [haproxy, "-c", "-f", str(ROOT / "deploy" / "haproxy.cfg")],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "Configuration file is valid" in result.stdout + result.stderr
