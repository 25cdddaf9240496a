"""The container and Kubernetes files stay true to the code, checked without Docker or a cluster.

docker-compose.yml runs the Kafka version deploy/kafka/pom.xml pins, and sets only real settings; the
Kubernetes ConfigMap's bridge.yaml loads and its templates parse; the Deployment's probes ask for paths the
HTTP server answers, its grace period outlasts the bridge's drain, and it mounts the config where the image's
CMD reads it; the image's HEALTHCHECK, run against a real server, tells healthy from stalled.
"""

from __future__ import annotations

import asyncio
import fnmatch
import json
import os
import re
import shlex
import sys
import urllib.error
import urllib.request
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import pytest_asyncio
import yaml
from pydantic import BaseModel, SecretStr

from bridge.config.settings import ENV_DELIMITER, ENV_PREFIX, BridgeSettings, load_settings
from bridge.service.health import Health
from bridge.service.http import HttpServer
from bridge.service.intake import Templates
from bridge.service.telemetry import Telemetry

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "deploy" / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
POM = ROOT / "deploy" / "kafka" / "pom.xml"
K8S = ROOT / "deploy" / "k8s"
EXAMPLE_MANIFESTS = "*.example.yaml"  # shown to users, never applied by kustomization.yaml
POD_NAME = "suggestion-bridge-7c9d8b6f5-x2k4q"  # stands in for a `fieldRef: metadata.name` value


@pytest.fixture(autouse=True)
def _no_bridge_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only the variables a test sets reach `load_settings`, never the developer's."""
    for name in list(os.environ):
        if name.upper().startswith(ENV_PREFIX):
            monkeypatch.delenv(name)


# ---- reading the files -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Dockerfile:
    """The final stage of deploy/Dockerfile: its instructions, continuation lines joined, comments dropped."""

    instructions: list[tuple[str, str]]

    @classmethod
    def read(cls, path: Path) -> Dockerfile:
        text = re.sub(r"\\\n", " ", path.read_text(encoding="utf-8"))
        stages: list[list[tuple[str, str]]] = [[]]
        for raw in text.splitlines():
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            keyword, _, rest = line.partition(" ")
            if keyword.upper() == "FROM":
                stages.append([])
            stages[-1].append((keyword.upper(), rest.strip()))
        return cls(stages[-1])

    def all(self, keyword: str) -> list[str]:
        return [rest for kw, rest in self.instructions if kw == keyword]

    def last(self, keyword: str) -> str:
        found = self.all(keyword)
        assert found, f"deploy/Dockerfile's final stage has no {keyword}"
        return found[-1]

    def exec_form(self, keyword: str) -> list[str]:
        """ENTRYPOINT or CMD, which must be in exec (JSON) form: a shell form would swallow SIGTERM."""
        value = json.loads(self.last(keyword))
        assert isinstance(value, list), f"{keyword} is not in exec form"
        return [str(v) for v in value]

    def healthcheck(self) -> tuple[dict[str, str], list[str]]:
        """The HEALTHCHECK's options and its exec-form command."""
        options, _, command = self.last("HEALTHCHECK").partition("CMD ")
        flags = dict(opt.removeprefix("--").split("=", 1) for opt in options.split())
        return flags, json.loads(command)

    def workdir(self) -> PurePosixPath:
        return PurePosixPath(self.last("WORKDIR"))

    def examples_dir(self) -> PurePosixPath:
        """Where the image holds the repository's examples/ (COPY's destination, relative to WORKDIR)."""
        for rest in self.all("COPY"):
            *sources, dest = [arg for arg in shlex.split(rest) if not arg.startswith("--")]
            if [s.rstrip("/") for s in sources] == ["examples"]:
                return self.workdir() / dest
        raise AssertionError("deploy/Dockerfile does not COPY examples into the image")


def _yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def _manifests() -> dict[str, dict[str, Any]]:
    """Every Kubernetes object in deploy/k8s by kind (one of each kind), the example Secret included."""
    objects: dict[str, dict[str, Any]] = {}
    for path in sorted(K8S.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            assert doc["kind"] not in objects, f"two {doc['kind']}s in deploy/k8s"
            objects[doc["kind"]] = doc
    return objects


@pytest.fixture(scope="module")
def dockerfile() -> Dockerfile:
    return Dockerfile.read(DOCKERFILE)


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = _yaml(COMPOSE)
    assert isinstance(data, dict)
    return data


@pytest.fixture(scope="module")
def k8s() -> dict[str, dict[str, Any]]:
    return _manifests()


@pytest.fixture
def deployment(k8s: dict[str, dict[str, Any]]) -> dict[str, Any]:
    return k8s["Deployment"]


@pytest.fixture
def container(deployment: dict[str, Any]) -> dict[str, Any]:
    (only,) = deployment["spec"]["template"]["spec"]["containers"]
    return only


@pytest.fixture
def configmap_file(k8s: dict[str, dict[str, Any]], tmp_path: Path) -> Path:
    """The ConfigMap's bridge.yaml, written out as the pod sees it."""
    path = tmp_path / "bridge.yaml"
    path.write_text(k8s["ConfigMap"]["data"]["bridge.yaml"], encoding="utf-8")
    return path


@pytest.fixture
def clock() -> list[float]:
    """A monotonic clock's reading that moves only when a test moves it."""
    return [1000.0]


@pytest_asyncio.fixture
async def health_server(clock: list[float]) -> AsyncIterator[tuple[HttpServer, Health]]:
    """The bridge's real HTTP server on a free port, with a health whose clock the test moves."""
    health = Health(stall_after_s=30.0, clock=lambda: clock[0])
    async with HttpServer("127.0.0.1", 0, health, Telemetry()) as server:
        yield server, health


def _pinned_kafka_version() -> str:
    ns = {"m": "http://maven.apache.org/POM/4.0.0"}
    version = ET.parse(POM).getroot().findtext("m:properties/m:kafka.version", namespaces=ns)
    assert version, "deploy/kafka/pom.xml pins no kafka.version"
    return version.strip()


def _environment(service: Mapping[str, Any]) -> dict[str, str]:
    """A compose service's `environment`, in either of its forms, as strings."""
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {str(k): "" if v is None else str(v).lower() if isinstance(v, bool) else str(v) for k, v in env.items()}


def _seconds(duration: str | int) -> float:
    """A compose duration ("1m30s", "45s") in seconds."""
    if isinstance(duration, int):
        return float(duration)
    units = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001, "us": 1e-6}
    parts = re.findall(r"(\d+(?:\.\d+)?)(h|ms|us|m|s)", duration)
    assert parts and "".join(n + u for n, u in parts) == duration, f"not a compose duration: {duration}"
    return sum(float(n) * units[u] for n, u in parts)


def _published_container_ports(service: Mapping[str, Any]) -> set[int]:
    ports = set()
    for entry in service.get("ports", []):
        target = entry["target"] if isinstance(entry, dict) else str(entry).rsplit(":", 1)[-1].split("/")[0]
        ports.add(int(target))
    return ports


def _status(port: int, path: str) -> int:
    """GET `path` from the server on 127.0.0.1:`port`; the status code, whatever it is."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # no developer proxy for 127.0.0.1
    try:
        with opener.open(f"http://127.0.0.1:{port}{path}", timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        with error:
            return error.code


def _in_repo(image_path: str, dockerfile: Dockerfile) -> Path:
    """The repository file the image holds at `image_path` (under the image's copy of examples/)."""
    relative = PurePosixPath(image_path).relative_to(dockerfile.examples_dir())
    return ROOT / "examples" / relative


# ---- settings from the environment ------------------------------------------------------------------------


def _setting_path(variable: str) -> list[str]:
    """`BRIDGE_KAFKA__BOOTSTRAP_SERVERS` -> ["kafka", "bootstrap_servers"], or an error naming what is wrong.

    Checked here because the environment source skips a top-level variable naming no setting (a typo such as
    BRIDGE_WORK_DIR would silently do nothing).
    """
    assert variable.startswith(ENV_PREFIX), f"{variable} is not a bridge setting (no {ENV_PREFIX} prefix)"
    path = variable.removeprefix(ENV_PREFIX).lower().split(ENV_DELIMITER)
    model: Any = BridgeSettings
    for depth, key in enumerate(path):
        fields = model.model_fields if isinstance(model, type) and issubclass(model, BaseModel) else {}
        assert key in fields, f"{variable}: `{'.'.join(path[: depth + 1])}` is not a setting"
        model = fields[key].annotation
    return path


def _value(settings: BridgeSettings, path: list[str]) -> str:
    node: Any = settings
    for key in path:
        node = getattr(node, key)
    return node.get_secret_value() if isinstance(node, SecretStr) else str(node)


def _load_with(monkeypatch: pytest.MonkeyPatch, config: Path, environment: Mapping[str, str]) -> BridgeSettings:
    """Load `config` with exactly `environment` set, checking that every variable is a setting that took."""
    paths = {name: _setting_path(name) for name in environment}
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    settings = load_settings(config)
    for name, path in paths.items():
        assert _value(settings, path) == environment[name], f"{name} did not reach {'.'.join(path)}"
    return settings


# ---- docker-compose.yml -----------------------------------------------------------------------------------


def test_compose_runs_the_kafka_version_pinned_in_the_pom(compose: dict[str, Any]) -> None:
    assert compose["services"]["kafka"]["image"] == f"apache/kafka:{_pinned_kafka_version()}"


def test_compose_kafka_is_one_kraft_node_whose_internal_topics_fit_on_it(compose: dict[str, Any]) -> None:
    kafka = compose["services"]["kafka"]
    env = _environment(kafka)
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    assert env["CLUSTER_ID"], "the image refuses KRaft mode without CLUSTER_ID"
    for replicas in (
        "OFFSETS_TOPIC_REPLICATION_FACTOR",
        "TRANSACTION_STATE_LOG_REPLICATION_FACTOR",
        "TRANSACTION_STATE_LOG_MIN_ISR",
    ):
        assert env[f"KAFKA_{replicas}"] == "1", f"one broker cannot hold {replicas} > 1"
    check = kafka["healthcheck"]["test"]
    command = check[-1] if check[0] == "CMD-SHELL" else " ".join(check[1:])
    assert command.startswith("/opt/kafka/bin/"), "the healthcheck should use the image's own Kafka scripts"
    assert "--bootstrap-server localhost:9092" in command
    assert "PLAINTEXT://:9092" in env["KAFKA_LISTENERS"].split(",")


def test_compose_bridge_environment_is_real_settings_that_load(
    compose: dict[str, Any], dockerfile: Dockerfile, monkeypatch: pytest.MonkeyPatch
) -> None:
    bridge = compose["services"]["bridge"]
    command = bridge["command"]
    assert command[:2] == ["serve", "-c"]
    config = _in_repo(command[2], dockerfile)
    assert config.is_file(), f"compose serves {command[2]}, but the repository has no {config}"

    env = _environment(bridge)
    settings = _load_with(monkeypatch, config, env)

    host, _, port = settings.kafka.bootstrap_servers.partition(":")
    advertised = _environment(compose["services"]["kafka"])["KAFKA_ADVERTISED_LISTENERS"]
    assert f"PLAINTEXT://{host}:{port}" in advertised.split(","), "the bridge must reach Kafka's listener"
    assert host in compose["services"], f"{host} is not a compose service"
    assert settings.http.port in _published_container_ports(bridge)
    assert settings.http.host == "0.0.0.0", "published ports reach only a server bound to every interface"


def test_compose_starts_each_service_once_the_one_before_is_healthy(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert services["bridge"]["depends_on"] == {
        "kafka": {"condition": "service_healthy"},
        "ray-head": {"condition": "service_healthy"},
    }
    assert services["ray-worker"]["depends_on"] == {"ray-head": {"condition": "service_healthy"}}
    assert "healthcheck" in services["ray-head"]
    assert services["optimizer"]["depends_on"] == {"bridge": {"condition": "service_healthy"}}
    assert "healthcheck" in services["kafka"]
    bridge_check = services["bridge"].get("healthcheck", {})
    assert not bridge_check.get("disable"), "the bridge's healthcheck (the image's) gates the optimizer"


def test_compose_builds_one_image_for_the_bridge_and_the_optimizer(compose: dict[str, Any]) -> None:
    bridge, optimizer = compose["services"]["bridge"], compose["services"]["optimizer"]
    assert bridge["build"]["dockerfile"] == "deploy/Dockerfile"
    assert (ROOT / bridge["build"]["context"] / bridge["build"]["dockerfile"]).resolve() == DOCKERFILE
    assert optimizer["image"] == bridge["image"]
    assert optimizer["build"] == bridge["build"]


def test_compose_optimizer_runs_the_optuna_example_against_the_bridges_kafka(
    compose: dict[str, Any], dockerfile: Dockerfile
) -> None:
    optimizer = compose["services"]["optimizer"]
    entrypoint = optimizer["entrypoint"]
    assert entrypoint[:2] == ["python", "examples/optuna/optimize.py"]
    assert PurePosixPath(optimizer["working_dir"]) / "examples" == dockerfile.examples_dir()
    servers = entrypoint[entrypoint.index("--bootstrap-servers") + 1]
    assert servers == _environment(compose["services"]["bridge"])["BRIDGE_KAFKA__BOOTSTRAP_SERVERS"]
    assert (ROOT / entrypoint[1]).is_file(), f"the image would have no {entrypoint[1]} to run"


def test_compose_stop_grace_outlasts_the_bridges_drain(
    compose: dict[str, Any], dockerfile: Dockerfile, monkeypatch: pytest.MonkeyPatch
) -> None:
    bridge = compose["services"]["bridge"]
    settings = _load_with(monkeypatch, _in_repo(bridge["command"][2], dockerfile), _environment(bridge))
    # Docker's default is 10 s, then SIGKILL: runs still in flight would be cut short and run again.
    assert _seconds(bridge["stop_grace_period"]) > settings.shutdown_grace_s


# ---- deploy/Dockerfile and .dockerignore ------------------------------------------------------------------


def test_dockerfile_runs_bridge_serve_as_a_numeric_non_root_user(
    dockerfile: Dockerfile, deployment: dict[str, Any]
) -> None:
    assert dockerfile.exec_form("ENTRYPOINT") == ["bridge"]
    assert dockerfile.exec_form("CMD")[:2] == ["serve", "-c"]
    user = dockerfile.last("USER").split(":")[0]
    assert user.isdigit(), "Kubernetes' runAsNonRoot can only verify a numeric USER"
    uid = int(user)
    assert uid != 0
    pod = deployment["spec"]["template"]["spec"]["securityContext"]
    assert pod["runAsNonRoot"] is True
    assert pod["runAsUser"] == uid


def test_dockerfile_installs_the_examples_extra_on_python_311_slim(dockerfile: Dockerfile) -> None:
    text = DOCKERFILE.read_text(encoding="utf-8")
    froms = re.findall(r"^FROM (\S+)", text, flags=re.MULTILINE)
    assert len(froms) >= 2, "a build stage and a runtime stage"
    assert re.search(r"^ARG PYTHON_IMAGE=python:3\.11-slim$", text, flags=re.MULTILINE)
    assert all(image.startswith(("${PYTHON_IMAGE}", "python:3.11-slim")) for image in froms)
    assert re.search(r"pip install [^\n]*\.\[examples,ray\]", text)
    assert dockerfile.examples_dir() == PurePosixPath("/app/examples")


def test_dockerignore_keeps_what_the_image_copies() -> None:
    patterns = [
        line.strip()
        for line in DOCKERIGNORE.read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]
    for needed in ("pyproject.toml", "README.md", "bridge", "examples", "examples/quick-start/model.py"):
        hits = [p for p in patterns if not p.startswith("!") and fnmatch.fnmatch(needed, p.removeprefix("**/"))]
        assert not hits, f".dockerignore drops {needed} (by {hits}), which deploy/Dockerfile copies"


async def _run_healthcheck(command: list[str], port: int) -> int:
    argv = [sys.executable if command[0] in ("python", "python3") else command[0], *command[1:]]
    env = {**os.environ, "BRIDGE_HTTP__PORT": str(port)}
    proc = await asyncio.create_subprocess_exec(
        *argv, env=env, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL
    )
    return await asyncio.wait_for(proc.wait(), timeout=30)


async def test_dockerfile_healthcheck_passes_while_the_loop_beats_and_fails_once_it_stalls(
    dockerfile: Dockerfile, health_server: tuple[HttpServer, Health], clock: list[float]
) -> None:
    server, health = health_server
    options, command = dockerfile.healthcheck()
    assert "/healthz" in " ".join(command)
    assert _seconds(options["timeout"]) < _seconds(options["interval"])

    assert await _run_healthcheck(command, server.port) == 0
    clock[0] += health.stall_after_s + 1  # no beat for longer than the stall window
    assert await _run_healthcheck(command, server.port) == 1
    health.beat()
    assert await _run_healthcheck(command, server.port) == 0


# ---- deploy/k8s -------------------------------------------------------------------------------------------


def test_configmap_bridge_yaml_loads_and_its_templates_parse(configmap_file: Path) -> None:
    settings = load_settings(configmap_file)
    templates = Templates(settings)  # a bad template stops the bridge at start; here, the test
    assert "quick-start" in templates.names(), "examples/optuna/optimize.py suggests for `quick-start`"
    assert settings.workdir.is_absolute(), "the config dir is a read-only mount: the workdir must be elsewhere"


def test_configmap_templates_run_where_the_image_has_their_scripts(
    configmap_file: Path, dockerfile: Dockerfile
) -> None:
    templates = Templates(load_settings(configmap_file))
    for name in templates.names():
        op = templates.get(name)
        assert op is not None
        assert op.component is not None
        assert op.component.run is not None
        container = op.component.run.container
        # Without workingDir a run's cwd is the config's dir, /etc/bridge, which holds no script.
        assert container.working_dir, f"template {name} needs a workingDir inside the image"
        scripts = [arg for arg in container.command or [] if arg.endswith(".py")]
        assert scripts, f"template {name} runs no script of the image's examples"
        for script in scripts:
            in_image = PurePosixPath(container.working_dir) / script
            assert _in_repo(str(in_image), dockerfile).is_file(), f"the image has no {in_image}"


def test_dockerfile_cmd_reads_the_config_where_the_deployment_mounts_it(
    dockerfile: Dockerfile, k8s: dict[str, dict[str, Any]], container: dict[str, Any]
) -> None:
    cmd = dockerfile.exec_form("CMD")
    config = PurePosixPath(cmd[cmd.index("-c") + 1])
    assert "command" not in container, "the Deployment keeps the image's ENTRYPOINT"
    assert "args" not in container, "the Deployment keeps the image's CMD, whose config path is checked here"

    volumes = {v["name"]: v for v in k8s["Deployment"]["spec"]["template"]["spec"]["volumes"]}
    mounts = [m for m in container["volumeMounts"] if "configMap" in volumes[m["name"]]]
    (mount,) = mounts
    assert volumes[mount["name"]]["configMap"]["name"] == k8s["ConfigMap"]["metadata"]["name"]
    if "subPath" in mount:
        assert PurePosixPath(mount["mountPath"]) == config
        key = mount["subPath"]
    else:
        assert PurePosixPath(mount["mountPath"]) == config.parent
        key = config.name
    assert key in k8s["ConfigMap"]["data"], f"the ConfigMap has no {key} for {config}"
    assert mount.get("readOnly") is True


async def test_deployment_probes_ask_for_paths_the_http_server_answers(
    container: dict[str, Any], configmap_file: Path, health_server: tuple[HttpServer, Health]
) -> None:
    server, health = health_server
    health.set_ready(True)
    settings = load_settings(configmap_file)
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}

    probes = {kind: container[kind]["httpGet"] for kind in ("livenessProbe", "readinessProbe")}
    assert probes["livenessProbe"]["path"] == "/healthz", "liveness is consumption progress"
    assert probes["readinessProbe"]["path"] == "/readyz", "readiness is connected with partitions"
    for kind, probe in probes.items():
        port = ports.get(probe["port"], probe["port"])
        assert port == settings.http.port, f"{kind} asks port {port}; the bridge listens on {settings.http.port}"
        status = await asyncio.to_thread(_status, server.port, probe["path"])
        assert status == 200, f"{kind}: GET {probe['path']} answered {status}"
    assert await asyncio.to_thread(_status, server.port, "/nowhere") == 404  # the server does tell paths apart


def test_deployment_grace_period_outlasts_the_bridges_drain(deployment: dict[str, Any], configmap_file: Path) -> None:
    settings = load_settings(configmap_file)
    grace = deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    # SIGTERM, then up to shutdown_grace_s for running runs, then publish and commit: SIGKILL must wait longer.
    assert grace > settings.shutdown_grace_s


def test_deployment_runs_two_replicas_with_bounded_resources_and_no_privileges(
    deployment: dict[str, Any], container: dict[str, Any]
) -> None:
    assert deployment["spec"]["replicas"] == 2
    assert {"cpu", "memory"} <= set(container["resources"]["requests"])
    assert "memory" in container["resources"]["limits"]
    security = container["securityContext"]
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"]["drop"] == ["ALL"]
    if security.get("readOnlyRootFilesystem"):
        writable = {m["mountPath"] for m in container["volumeMounts"] if not m.get("readOnly")}
        assert "/tmp" in writable


def test_deployment_environment_and_the_sasl_example_secret_are_real_settings(
    k8s: dict[str, dict[str, Any]], container: dict[str, Any], configmap_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = {e["name"]: e.get("value", POD_NAME) for e in container.get("env", [])}
    secret = k8s["Secret"]
    (source,) = container["envFrom"]
    assert source["secretRef"] == {"name": secret["metadata"]["name"], "optional": True}

    plain = _load_with(monkeypatch, configmap_file, env)  # the Deployment as applied: no Secret
    assert plain.kafka.security_protocol == "PLAINTEXT"
    sasl = _load_with(monkeypatch, configmap_file, {**env, **secret["stringData"]})  # with the Secret
    assert sasl.kafka.security_protocol.startswith("SASL_")
    assert "BRIDGE_KAFKA__SASL_PASSWORD" in secret["stringData"]
    assert secret["stringData"]["BRIDGE_KAFKA__SASL_PASSWORD"] not in repr(sasl), "a password must stay masked"


def test_metrics_service_selects_the_pods_and_is_scraped_on_the_http_port(
    k8s: dict[str, dict[str, Any]], container: dict[str, Any], configmap_file: Path
) -> None:
    service, deployment = k8s["Service"], k8s["Deployment"]
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()
    assert deployment["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    port = load_settings(configmap_file).http.port
    (service_port,) = service["spec"]["ports"]
    named = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert named.get(service_port["targetPort"], service_port["targetPort"]) == port
    annotations = service["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/port"] == str(port)
    assert annotations["prometheus.io/path"] == "/metrics"


def test_kustomization_applies_every_manifest_but_the_examples() -> None:
    kustomization = _yaml(K8S / "kustomization.yaml")
    expected = sorted(
        p.name
        for p in K8S.glob("*.yaml")
        if p.name != "kustomization.yaml" and not fnmatch.fnmatch(p.name, EXAMPLE_MANIFESTS)
    )
    assert sorted(kustomization["resources"]) == expected
    assert any(fnmatch.fnmatch(p.name, EXAMPLE_MANIFESTS) for p in K8S.glob("*.yaml")), "the SASL example"
    image = _manifests()["Deployment"]["spec"]["template"]["spec"]["containers"][0]["image"]
    assert [i["name"] for i in kustomization.get("images", [])] == [image.split(":")[0]]


# ---- runs over Ray nodes, replicas over partitions --------------------------------------------------------------


def _ray_pin() -> str:
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    match = re.search(r'^ray = \["ray(?:\[[a-z,]+\])?==([0-9.]+)"\]', pyproject, flags=re.MULTILINE)
    assert match, "pyproject.toml pins Ray in its `ray` extra"
    return match.group(1)


def test_compose_bridge_runs_on_the_compose_ray_cluster_from_the_same_image(
    compose: dict[str, Any], dockerfile: Dockerfile, monkeypatch: pytest.MonkeyPatch
) -> None:
    services = compose["services"]
    bridge = services["bridge"]
    settings = _load_with(monkeypatch, _in_repo(bridge["command"][2], dockerfile), _environment(bridge))
    assert settings.executor.kind == "ray"
    host, _, port = (settings.executor.address or "").partition(":")
    head = services[host]
    assert head["image"] == bridge["image"] and head["build"] == bridge["build"]  # the nodes have the bridge
    assert head["entrypoint"][:3] == ["ray", "start", "--head"] and f"--port={port}" in head["entrypoint"]
    worker = services["ray-worker"]
    assert worker["image"] == bridge["image"]
    assert f"--address={host}:{port}" in worker["entrypoint"]


def test_raycluster_runs_the_pinned_ray_on_the_bridges_image(k8s: dict[str, dict[str, Any]]) -> None:
    cluster = k8s["RayCluster"]
    assert cluster["spec"]["rayVersion"] == _ray_pin()
    image = k8s["Deployment"]["spec"]["template"]["spec"]["containers"][0]["image"]
    groups = [cluster["spec"]["headGroupSpec"], *cluster["spec"]["workerGroupSpecs"]]
    for group in groups:
        (container,) = group["template"]["spec"]["containers"]
        assert container["image"] == image, "every node runs the bridge's image (the run actor imports bridge)"
        assert group["template"]["spec"]["securityContext"]["runAsNonRoot"] is True


def test_every_ray_node_starts_with_grpcs_fork_handlers_off(
    compose: dict[str, Any], k8s: dict[str, dict[str, Any]]
) -> None:
    # With them on, a child the Ray Client proxy or a slot starts with a preexec_fn sometimes dies before its exec
    # (tests/ray/test_ray_cluster_spawns.py).
    for name in ("ray-head", "ray-worker"):
        assert compose["services"][name]["environment"]["GRPC_ENABLE_FORK_SUPPORT"] == "0", name
    cluster = k8s["RayCluster"]["spec"]
    for group in [cluster["headGroupSpec"], *cluster["workerGroupSpecs"]]:
        (node,) = group["template"]["spec"]["containers"]
        assert {"name": "GRPC_ENABLE_FORK_SUPPORT", "value": "0"} in node.get("env", []), node["name"]


def test_raycluster_custom_resources_are_what_a_run_can_ask_for(k8s: dict[str, dict[str, Any]]) -> None:
    pytest.importorskip("ray")
    from bridge.executors.ray import ray_options

    for group in k8s["RayCluster"]["spec"]["workerGroupSpecs"]:
        declared = group["rayStartParams"].get("resources")
        if declared is None:
            continue
        custom = json.loads(json.loads(declared))  # rayStartParams holds the flag's value, quoted
        for name, amount in custom.items():
            asked = ray_options({"requests": {f"ray.io/{name}": amount}})
            assert asked["resources"] == {name: float(amount)}


def test_keda_scales_the_deployment_on_the_lag_of_the_configmaps_topic_and_group(
    k8s: dict[str, dict[str, Any]], configmap_file: Path
) -> None:
    settings = load_settings(configmap_file)
    scaled = k8s["ScaledObject"]
    assert scaled["spec"]["scaleTargetRef"]["name"] == k8s["Deployment"]["metadata"]["name"]
    (trigger,) = scaled["spec"]["triggers"]
    assert trigger["type"] == "kafka"
    meta = trigger["metadata"]
    assert meta["topic"] == settings.topics.suggestions
    assert meta["consumerGroup"] == settings.kafka.group_id
    assert meta["bootstrapServers"] == settings.kafka.bootstrap_servers
    # Past one replica per partition a replica has nothing to consume and is never ready.
    assert scaled["spec"]["maxReplicaCount"] <= settings.kafka.topic_partitions
    assert meta["allowIdleConsumers"] == "false"
