"""The deployment (docker-compose.yml, deploy/) checked against the code it runs.

Nothing here starts a container: the compose file is parsed, its `${VAR:-default}`
interpolation resolved to the defaults (what a plain `docker compose up` without
a `.env` gets), and every setting, topic, port and path is compared with
`stream.config`, `stream.metrics` and `pyproject.toml`, so a renamed setting, topic
or metric breaks a test instead of a deployment. Prometheus's own `promtool`
(Debian's `prometheus` package, which `.ci/run` installs) checks the scrape
config, the alert rules, their unit tests (deploy/alerts.test.yml) and every
dashboard query; these tests fail, not skip, when it is missing.
"""

from __future__ import annotations

import dataclasses
import json
import re
import shlex
import shutil
import subprocess
import tomllib
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import yaml
from faust.sensors.prometheus import FaustMetrics
from prometheus_client import CollectorRegistry

from stream import health
from stream.broker import topic_configs
from stream.config import _KNOWN, Settings, Topics
from stream.metrics import LATENCY_BUCKETS, Metrics

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
DEPLOY = ROOT / "deploy"
DOCKERFILE = DEPLOY / "Dockerfile"
PROMETHEUS_CONFIG = DEPLOY / "prometheus.yml"
ALERTS = DEPLOY / "alerts.yml"
ALERT_TESTS = DEPLOY / "alerts.test.yml"
DASHBOARDS = DEPLOY / "grafana" / "dashboards"

WORKERS = ("worker-1", "worker-2")
WORKER = WORKERS[0]
JOB = "cross-sell-stream"
KAFKA_DEFAULT_RETENTION_MS = 7 * 24 * 3600 * 1000

# --- compose interpolation -------------------------------------------------------------------

# `$$` (a literal `$`), `${VAR}`, `${VAR:-default}`, `${VAR-default}`, `${VAR:?err}`, `$VAR`.
_INTERPOLATION = re.compile(
    r"\$\$|\$\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?+])(?P<arg>[^}]*))?\}"
    r"|\$(?P<bare>[A-Za-z_][A-Za-z0-9_]*)"
)


def _resolve_str(text: str) -> str:
    """Interpolate like Compose does with an empty environment (every variable unset)."""

    def substitute(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        op = match.group("op")
        if op in {":-", "-"}:
            return match.group("arg")
        if op in {":?", "?"}:
            name = match.group("braced")
            raise AssertionError(f"${{{name}}} is required: `docker compose up` fails without it")
        return ""  # ${VAR}, $VAR, ${VAR:+x}, ${VAR+x} with VAR unset

    return _INTERPOLATION.sub(substitute, text)


def _resolve(value: Any) -> Any:
    if isinstance(value, str):
        return _resolve_str(value)
    if isinstance(value, list):
        return [_resolve(item) for item in value]
    if isinstance(value, dict):
        return {key: _resolve(item) for key, item in value.items()}
    return value


def _variables(value: Any) -> Iterator[tuple[str, str | None]]:
    """Every interpolated variable in `value` (recursively), with its default if any."""
    if isinstance(value, str):
        for match in _INTERPOLATION.finditer(value):
            name = match.group("braced") or match.group("bare")
            if name:
                default = match.group("arg") if match.group("op") in {":-", "-"} else None
                yield name, default
    elif isinstance(value, list):
        for item in value:
            yield from _variables(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from _variables(item)


# --- compose helpers -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def raw_compose() -> dict[str, Any]:
    document = yaml.safe_load(COMPOSE_FILE.read_text())
    assert isinstance(document, dict)
    return document


@pytest.fixture(scope="module")
def compose(raw_compose: dict[str, Any]) -> dict[str, Any]:
    resolved: dict[str, Any] = _resolve(raw_compose)
    return resolved


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    result: dict[str, dict[str, Any]] = compose["services"]
    return result


def _environment(service: dict[str, Any]) -> dict[str, str]:
    """A service's `environment` (mapping or `KEY=value` list) as strings."""
    env = service.get("environment") or {}
    if isinstance(env, list):
        pairs = (item.split("=", 1) for item in env)
        return {pair[0]: pair[1] if len(pair) > 1 else "" for pair in pairs}
    return {key: "" if value is None else str(value) for key, value in env.items()}


@pytest.fixture(scope="module")
def worker_env(services: dict[str, dict[str, Any]]) -> dict[str, str]:
    return _environment(services[WORKER])


@pytest.fixture(scope="module")
def worker_settings(worker_env: dict[str, str]) -> Settings:
    return Settings.from_env(worker_env)


def _container_ports(service: dict[str, Any]) -> list[int]:
    """Container-side ports of `ports` (short or long syntax) and `expose`."""
    ports: list[int] = []
    for entry in service.get("ports") or []:
        if isinstance(entry, dict):
            ports.append(int(entry["target"]))
        else:
            ports.append(int(str(entry).rsplit(":", 1)[-1].split("/")[0]))
    ports.extend(int(str(entry).split("/")[0]) for entry in service.get("expose") or [])
    return ports


def _bind_mounts(service: dict[str, Any]) -> dict[str, Path]:
    """Container path -> host path of every bind mount (host paths relative to the compose file)."""
    mounts: dict[str, Path] = {}
    for entry in service.get("volumes") or []:
        if isinstance(entry, dict):
            if entry.get("type") != "bind":
                continue
            source, target = entry["source"], entry["target"]
        else:
            source, target = str(entry).split(":")[:2]
            if not source.startswith((".", "/", "~")):
                continue  # a named volume
        mounts[target] = (COMPOSE_FILE.parent / source).resolve()
    return mounts


def _volume_targets(service: dict[str, Any]) -> set[str]:
    targets = set()
    for entry in service.get("volumes") or []:
        targets.add(entry["target"] if isinstance(entry, dict) else str(entry).split(":")[1])
    return targets


def _argv(value: str | list[str] | None) -> list[str]:
    if value is None:
        return []
    return shlex.split(value) if isinstance(value, str) else [str(item) for item in value]


def _healthcheck_text(service: dict[str, Any]) -> str:
    test = service["healthcheck"]["test"]
    return test if isinstance(test, str) else " ".join(test)


# --- kafka-init ------------------------------------------------------------------------------


@dataclasses.dataclass
class _CreateTopic:
    topic: str
    options: dict[str, str]
    flags: set[str]
    configs: dict[str, str]


_VALUE_OPTIONS = {"--bootstrap-server", "--topic", "--partitions", "--replication-factor"}


def _topic_creations(service: dict[str, Any]) -> list[_CreateTopic]:
    """The `kafka-topics.sh --create` commands of a service's shell script, one per topic."""
    argv = _argv(service.get("entrypoint")) + _argv(service.get("command"))
    assert argv[0].endswith(("sh", "bash")), f"kafka-init should run a shell script: {argv}"
    script = argv[-1].replace("\\\n", " ")
    creations = []
    for line in script.splitlines():
        tokens = shlex.split(line, comments=True)
        if not tokens or not tokens[0].endswith("kafka-topics.sh") or "--create" not in tokens:
            continue
        options: dict[str, str] = {}
        flags: set[str] = set()
        configs: dict[str, str] = {}
        rest = iter(tokens[1:])
        for token in rest:
            if token in _VALUE_OPTIONS:
                options[token] = next(rest)
            elif token == "--config":
                key, _, value = next(rest).partition("=")
                configs[key] = value
            else:
                flags.add(token)
        creations.append(_CreateTopic(options["--topic"], options, flags, configs))
    return creations


# --- Dockerfile ------------------------------------------------------------------------------


def _dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    instructions = []
    for line in text.splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            keyword, _, args = stripped.partition(" ")
            instructions.append((keyword.upper(), args.strip()))
    return instructions


def _dockerfile_env() -> dict[str, str]:
    env: dict[str, str] = {}
    for keyword, args in _dockerfile_instructions():
        if keyword == "ENV":
            for token in shlex.split(args):
                key, _, value = token.partition("=")
                env[key] = value
    return env


# --- PromQL ----------------------------------------------------------------------------------

_PROMQL_KEYWORDS = {"and", "or", "unless", "bool", "offset", "inf", "nan", "Inf", "NaN"}


def _metric_names(expr: str) -> set[str]:
    """Metric names in a PromQL expression (functions, labels, keywords and strings removed)."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'', '""', expr)
    text = re.sub(r"\{[^}]*\}", " ", text)
    text = re.sub(r"\[[^\]]*\]", " ", text)
    text = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    words = re.findall(r"(?<![\w.])([A-Za-z_:][\w:]*)\b(?!\s*\()", text)
    return {word for word in words if word not in _PROMQL_KEYWORDS}


def _alert_rules() -> list[dict[str, Any]]:
    document = yaml.safe_load(ALERTS.read_text())
    return [rule for group in document["groups"] for rule in group["rules"]]


def _dashboard_exprs() -> list[str]:
    exprs: list[str] = []
    for path in sorted(DASHBOARDS.glob("*.json")):
        for panel in json.loads(path.read_text())["panels"]:
            exprs.extend(target["expr"] for target in panel.get("targets", []))
    return exprs


def _prometheus_config() -> dict[str, Any]:
    config: dict[str, Any] = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    return config


def _scrape_job(config: dict[str, Any], target: str) -> dict[str, Any]:
    for job in config["scrape_configs"]:
        for static in job.get("static_configs", []):
            if target in static.get("targets", []):
                result: dict[str, Any] = job
                return result
    raise AssertionError(f"no scrape job targets {target}")


# --- tests -----------------------------------------------------------------------------------


def test_compose_has_the_stack(services: dict[str, dict[str, Any]]) -> None:
    """The compose file runs Kafka, the topic initialiser, two workers, Prometheus and Grafana."""
    assert {"kafka", "kafka-init", *WORKERS, "prometheus", "grafana"} <= set(services)
    assert services["kafka-init"]["image"] == services["kafka"]["image"]
    runs_stream = {
        name
        for name, service in services.items()
        if _argv(service.get("command"))[:3] == ["python", "-m", "stream"]
    }
    assert runs_stream == set(WORKERS)


def test_workers_differ_only_in_state_and_host_port(services: dict[str, dict[str, Any]]) -> None:
    """The workers run the same image, command and settings, each on its own volume and port."""
    first, *others = (services[name] for name in WORKERS)
    for other in others:
        for key in ("build", "image", "command", "environment", "healthcheck", "depends_on"):
            assert other[key] == first[key], key
    volumes = [str(entry).split(":")[0] for name in WORKERS for entry in services[name]["volumes"]]
    assert len(set(volumes)) == len(volumes), f"workers share a volume: {volumes}"
    host_ports = [
        str(entry).rsplit(":", 1)[0] for name in WORKERS for entry in services[name]["ports"]
    ]
    assert len(set(host_ports)) == len(host_ports), f"workers share a host port: {host_ports}"


def test_every_stream_variable_is_a_known_setting(
    raw_compose: dict[str, Any], services: dict[str, dict[str, Any]]
) -> None:
    """Every STREAM_* name in a service environment, an interpolation or the Dockerfile is known."""
    used = {
        key
        for service in services.values()
        for key in _environment(service)
        if key.startswith("STREAM_")
    }
    used |= {name for name, _ in _variables(raw_compose) if name.startswith("STREAM_")}
    used |= {key for key in _dockerfile_env() if key.startswith("STREAM_")}
    assert used, "the worker reads STREAM_* variables; none found"
    assert used <= _KNOWN, f"unknown to stream/config.py: {sorted(used - _KNOWN)}"


def test_stream_names_in_deploy_docs_are_known() -> None:
    """Every STREAM_* name written in the compose file, deploy/README.md or Dockerfile is known."""
    for path in (COMPOSE_FILE, DEPLOY / "README.md", DOCKERFILE):
        names = set(re.findall(r"\bSTREAM_[A-Z0-9_]+\b(?!\*)", path.read_text()))
        assert names <= _KNOWN, f"{path.name}: unknown settings {sorted(names - _KNOWN)}"


def test_settings_accept_the_worker_environment(worker_settings: Settings) -> None:
    """Settings.from_env accepts the worker's environment with every ${VAR:-default} defaulted."""
    assert worker_settings.broker is not None
    assert worker_settings.store == "rocksdb://"


def test_dockerfile_env_is_accepted_by_settings() -> None:
    """The image's own STREAM_* defaults are valid settings too."""
    env = {key: value for key, value in _dockerfile_env().items() if key.startswith("STREAM_")}
    Settings.from_env(env)


def test_interpolated_defaults_are_the_code_defaults(raw_compose: dict[str, Any]) -> None:
    """Each optional worker setting reads its own variable and defaults to the code's default."""
    raw_env = _environment(raw_compose["services"][WORKER])
    interpolated = {}
    for key, raw in raw_env.items():
        variables = list(_variables(raw))
        if not variables:
            continue
        assert [name for name, _ in variables] == [key], f"{key}={raw} reads another variable"
        default = variables[0][1]
        assert default is not None, f"{key}={raw} has no default"
        interpolated[key] = default
    optional = {
        "STREAM_PARTITIONS",
        "STREAM_DECAY_HALF_LIFE_DAYS",
        "STREAM_HOLDOUT_SHARE",
        "STREAM_MAX_SUGGESTIONS",
        "STREAM_RENEWAL_WINDOWS_DAYS",
    }
    missing = sorted(optional - set(interpolated))
    assert not missing, f"not left to .env: {missing}"
    for key, default in interpolated.items():
        assert Settings.from_env({key: default}) == Settings.from_env({}), (
            f"{key} defaults to {default!r} in docker-compose.yml, not to the code's default"
        )


def test_worker_broker_is_an_advertised_kafka_listener(
    services: dict[str, dict[str, Any]], worker_settings: Settings
) -> None:
    """STREAM_BROKER names a compose service that advertises that host:port."""
    for server in worker_settings.bootstrap_servers:
        host, _, _port = server.rpartition(":")
        assert host in services, f"{server}: no service {host!r}"
        advertised = _environment(services[host])["KAFKA_ADVERTISED_LISTENERS"]
        assert f"//{server}" in advertised, f"{host} does not advertise {server}: {advertised}"


def test_kafka_runs_kraft_combined(services: dict[str, dict[str, Any]]) -> None:
    """Kafka is one KRaft node acting as broker and controller, with a healthcheck."""
    env = _environment(services["kafka"])
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"].startswith(f"{env['KAFKA_NODE_ID']}@")
    assert "healthcheck" in services["kafka"]


@pytest.mark.parametrize("worker", WORKERS)
def test_worker_port_is_its_web_port(
    services: dict[str, dict[str, Any]], worker_settings: Settings, worker: str
) -> None:
    """Each worker publishes and exposes exactly STREAM_WEB_PORT, as does its image."""
    ports = _container_ports(services[worker])
    assert services[worker].get("ports"), "the worker's web port is not published"
    assert set(ports) == {worker_settings.web_port}
    exposed = {
        int(port.split("/")[0])
        for keyword, args in _dockerfile_instructions()
        if keyword == "EXPOSE"
        for port in args.split()
    }
    assert exposed == {worker_settings.web_port}


@pytest.mark.parametrize("worker", WORKERS)
def test_worker_healthcheck_asks_readiness(
    services: dict[str, dict[str, Any]], worker_settings: Settings, worker: str
) -> None:
    """Healthy = ready: the healthcheck fetches the readiness page (urllib: no curl in slim)."""
    check = _healthcheck_text(services[worker])
    assert f"http://localhost:{worker_settings.web_port}{health.READY_PATH}" in check
    assert "urllib" in check  # urlopen raises on a 503, so the check fails while not ready


def test_prometheus_scrapes_every_worker(
    services: dict[str, dict[str, Any]], worker_settings: Settings
) -> None:
    """One job scrapes each worker service at STREAM_WEB_PORT/metrics, and nothing else."""
    expected = {f"{worker}:{worker_settings.web_port}" for worker in WORKERS}
    job = _scrape_job(_prometheus_config(), next(iter(sorted(expected))))
    assert job.get("metrics_path", "/metrics") == "/metrics"
    assert job["job_name"] == JOB
    targets = {target for static in job["static_configs"] for target in static["targets"]}
    assert targets == expected


def test_prometheus_mounts_its_config_and_rules(services: dict[str, dict[str, Any]]) -> None:
    """prometheus.yml and every rule file it names are mounted from deploy/."""
    service = services["prometheus"]
    mounts = _bind_mounts(service)
    config_flag = next(
        (arg for arg in _argv(service.get("command")) if arg.startswith("--config.file=")),
        "--config.file=/etc/prometheus/prometheus.yml",  # the image's default
    )
    config_path = config_flag.partition("=")[2]
    assert mounts.get(config_path) == PROMETHEUS_CONFIG.resolve()
    rule_files = _prometheus_config()["rule_files"]
    assert rule_files, "prometheus.yml loads no rules"
    for rule_file in rule_files:
        if not PurePosixPath(rule_file).is_absolute():
            rule_file = str(PurePosixPath(config_path).parent / rule_file)
        assert mounts.get(rule_file) == ALERTS.resolve(), f"{rule_file} is not deploy/alerts.yml"


def test_kafka_init_creates_exactly_the_topics(
    raw_compose: dict[str, Any],
    services: dict[str, dict[str, Any]],
    worker_settings: Settings,
) -> None:
    """kafka-init creates every Topics() name once, with the worker's partitions."""
    topics = Topics()
    expected = [getattr(topics, field.name) for field in dataclasses.fields(Topics)]
    creations = _topic_creations(services["kafka-init"])
    created = [creation.topic for creation in creations]
    assert sorted(created) == sorted(expected)
    raw_partitions = _environment(raw_compose["services"][WORKER])["STREAM_PARTITIONS"]
    raw_creations = _topic_creations(raw_compose["services"]["kafka-init"])
    for raw, creation in zip(raw_creations, creations, strict=True):
        assert {"--create", "--if-not-exists"} <= creation.flags, creation.topic
        assert raw.options["--partitions"] == raw_partitions, (
            f"{creation.topic}: partitions must follow the worker's STREAM_PARTITIONS"
        )
        assert int(creation.options["--partitions"]) == worker_settings.partitions
        assert creation.options["--bootstrap-server"] in worker_settings.bootstrap_servers


def test_kafka_init_compacts_exactly_the_compacted_topics(
    services: dict[str, dict[str, Any]],
) -> None:
    """Exactly Topics().compacted get cleanup.policy=compact; dead letters are kept long."""
    creations = {c.topic: c for c in _topic_creations(services["kafka-init"])}
    compacted = {
        topic
        for topic, c in creations.items()
        if "compact" in c.configs.get("cleanup.policy", "").split(",")
    }
    assert compacted == Topics().compacted
    dead_letters = creations[Topics().dead_letters]
    assert int(dead_letters.configs["retention.ms"]) > KAFKA_DEFAULT_RETENTION_MS


def test_start_order(services: dict[str, dict[str, Any]]) -> None:
    """kafka-init waits for a healthy Kafka; the workers wait for kafka-init to succeed."""
    assert services["kafka-init"]["depends_on"]["kafka"]["condition"] == "service_healthy"
    for worker in WORKERS:
        assert (
            services[worker]["depends_on"]["kafka-init"]["condition"]
            == "service_completed_successfully"
        )
    assert services["grafana"]["depends_on"]["prometheus"]["condition"] == "service_healthy"
    assert "healthcheck" in services["prometheus"]


def test_worker_image_has_the_rocksdb_store(
    services: dict[str, dict[str, Any]], worker_settings: Settings
) -> None:
    """The worker uses rocksdb:// and its Dockerfile installs the project's rocksdb extra."""
    assert worker_settings.store == "rocksdb://"
    build = services[WORKER]["build"]
    assert (COMPOSE_FILE.parent / build["context"] / build["dockerfile"]).resolve() == DOCKERFILE
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    extras_available = pyproject["project"]["optional-dependencies"]
    installs = [args for keyword, args in _dockerfile_instructions() if "pip install" in args]
    extras = {
        extra.strip()
        for args in installs
        for group in re.findall(r"\.\[([^\]]+)\]", args)
        for extra in group.split(",")
    }
    assert "rocksdb" in extras, f"the image does not install .[rocksdb]: {installs}"
    unknown = sorted(extras - set(extras_available))
    assert not unknown, f"no such extras in pyproject.toml: {unknown}"
    assert extras_available["rocksdb"], "the rocksdb extra installs nothing"
    for worker in WORKERS:
        assert worker_settings.data_dir.as_posix() in _volume_targets(services[worker])


def test_worker_command_matches_the_image(services: dict[str, dict[str, Any]]) -> None:
    """The compose command is the image's CMD, and the image runs as a non-root user.

    `-q` drops Faust's banner, so that every output line is one JSON log record.
    """
    instructions = _dockerfile_instructions()
    cmd = [json.loads(args) for keyword, args in instructions if keyword == "CMD"][-1]
    for worker in WORKERS:
        assert (
            _argv(services[worker]["command"])
            == cmd
            == ["python", "-m", "stream", "-q", "worker", "-l", "info"]
        )
    users = [args for keyword, args in instructions if keyword == "USER"]
    assert users and users[-1].split(":")[0] not in {"root", "0"}


def test_grafana_provisioning_exists_and_parses(services: dict[str, dict[str, Any]]) -> None:
    """Grafana's mounted provisioning and dashboards exist, parse, and point at Prometheus."""
    mounts = _bind_mounts(services["grafana"])
    assert mounts, "grafana mounts nothing"
    provisioning: list[dict[str, Any]] = []
    dashboards = 0
    for target, source in mounts.items():
        assert source.exists(), f"{source} (mounted at {target}) is missing"
        files = [source] if source.is_file() else sorted(source.rglob("*"))
        files = [path for path in files if path.is_file()]
        for path in files:
            if path.suffix in {".yml", ".yaml"}:
                document = yaml.safe_load(path.read_text())
                assert document["apiVersion"] == 1, path
                provisioning.append(document)
            elif path.suffix == ".json":
                model = json.loads(path.read_text())
                assert model["uid"] and model["title"] and model["panels"], path
                dashboards += 1
    prometheus_port = _container_ports(services["prometheus"])[0]
    datasources = [ds for doc in provisioning for ds in doc.get("datasources", [])]
    assert [ds["url"] for ds in datasources if ds["type"] == "prometheus"] == [
        f"http://prometheus:{prometheus_port}"
    ]
    providers = [p for doc in provisioning for p in doc.get("providers", [])]
    assert providers, "no dashboard provider"
    for provider in providers:
        path = provider["options"]["path"]
        assert path in mounts, f"dashboard provider path {path} is not mounted"
        assert list(mounts[path].glob("*.json")), f"no dashboards in {mounts[path]}"
    assert dashboards


def test_alert_rules_are_well_formed() -> None:
    """Each alert has an expression, a duration, a severity, a summary and a description."""
    rules = _alert_rules()
    assert {rule["alert"] for rule in rules} >= {
        "ConsumerLagGrowing",
        "DeadLettersHigh",
        "ProcessingErrors",
        "NoSuggestions",
        "LatencyP99High",
        "WorkerDown",
    }
    for rule in rules:
        assert rule["expr"].strip(), rule["alert"]
        assert re.fullmatch(r"\d+[smhdwy]", rule["for"]), rule["alert"]
        assert rule["labels"]["severity"] in {"info", "warning", "critical"}, rule["alert"]
        assert rule["annotations"]["summary"] and rule["annotations"]["description"]


def test_worker_down_alert_watches_the_scrape_job() -> None:
    """The `up{job=...}` of the alerts is the job that scrapes the worker."""
    jobs = {job["job_name"] for job in _prometheus_config()["scrape_configs"]}
    watched = {
        name for rule in _alert_rules() for name in re.findall(r'\bjob="([^"]+)"', rule["expr"])
    }
    assert watched and watched <= jobs


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        ('up{job="x"} == 0', {"up"}),
        (
            "histogram_quantile(0.99, sum by (le) (rate(stream_event_to_emit_seconds_bucket[5m])))",
            {"stream_event_to_emit_seconds_bucket"},
        ),
        (
            'sum(rate(a_total{type="b"}[10m])) > 0 and (sum(rate(c[1m])) or vector(0)) == 0',
            {"a_total", "c"},
        ),
    ],
)
def test_metric_name_extraction(expr: str, names: set[str]) -> None:
    """The PromQL scanner finds metric names and nothing else."""
    assert _metric_names(expr) == names


def test_alerts_and_dashboard_use_stream_metrics() -> None:
    """Every metric in alerts.yml and the dashboards is one a worker exports (or `up`).

    A misspelt name in PromQL is not an error to Prometheus or Grafana, only an
    empty panel or an alert that never fires; here it fails.
    """
    exported = _exported_names()
    exprs = [rule["expr"] for rule in _alert_rules()] + _dashboard_exprs()
    assert len(exprs) > len(_alert_rules()), "the dashboards have no queries"
    for expr in exprs:
        names = _metric_names(expr)
        assert names, f"no metric in {expr!r}"
        unknown = names - exported
        assert not unknown, f"{expr!r} uses {sorted(unknown)}, which no worker exports"


def _exported_names() -> set[str]:
    """Sample names on a worker's /metrics: ours and Faust's sensors (prefix as in stream.app)."""
    registry = CollectorRegistry()
    Metrics.create(registry)
    FaustMetrics.create(registry, "stream_faust")
    suffixes = {
        "counter": ("_total", "_created"),
        "gauge": ("",),
        "histogram": ("_bucket", "_count", "_sum", "_created"),
    }
    names = {"up"}  # Prometheus's own, per target
    for family in registry.collect():
        names.update(family.name + suffix for suffix in suffixes[family.type])
    return names


def test_dashboard_shows_what_ops_and_the_business_read() -> None:
    """Throughput, latency, lag, commits, rebalances, dead letters, outputs, KPIs, LTV."""
    queried = {name for expr in _dashboard_exprs() for name in _metric_names(expr)}
    assert queried >= {
        "stream_events_consumed_total",  # throughput
        "stream_event_to_emit_seconds_bucket",  # latency
        "stream_processing_seconds_bucket",
        "stream_consumer_lag_messages",  # lag
        "stream_faust_consumer_commit_latency_bucket",
        "stream_faust_rebalance_done_latency_count",
        "stream_events_dead_lettered_total",  # dead letters
        "stream_suggestions_emitted_total",  # suggestions
        "stream_triggers_emitted_total",  # triggers by kind
        "stream_cross_sell_conversions_total",  # cross-sell rate
        "stream_orders_total",  # AOV by variant
        "stream_revenue_total",
        "stream_attributed_revenue_total",  # attributed revenue
        "stream_customer_ltv_bucket",  # LTV distribution
        "stream_customers_held",
        "up",
    }
    by_variant = [expr for expr in _dashboard_exprs() if "by (variant)" in expr]
    for name in ("stream_cross_sell_conversions_total", "stream_revenue_total"):
        assert any(name in expr for expr in by_variant), f"{name} is not shown by variant"
    by_kind = [expr for expr in _dashboard_exprs() if "stream_triggers_emitted_total" in expr]
    assert all("by (kind)" in expr for expr in by_kind)


def test_latency_alert_target_is_a_bucket_edge() -> None:
    """The p99 target of LatencyP99High is an edge of stream_event_to_emit_seconds' buckets."""
    rule = next(rule for rule in _alert_rules() if rule["alert"] == "LatencyP99High")
    assert "stream_event_to_emit_seconds_bucket" in rule["expr"]
    target = float(re.findall(r">\s*([0-9.]+)\s*$", rule["expr"].strip())[0])
    assert target in LATENCY_BUCKETS


# --- promtool --------------------------------------------------------------------------------


def _promtool(*args: str, cwd: Path = ROOT) -> str:
    """Run promtool; fail with its output unless it succeeds. A missing promtool fails."""
    binary = shutil.which("promtool")
    if binary is None:
        pytest.fail(
            "`promtool` is not installed: install Debian's `prometheus` package "
            "(apt-get install prometheus, as .ci/run does); these tests do not skip."
        )
    result = subprocess.run(
        [binary, *args], cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"promtool {' '.join(args)}:\n{output}"
    return output


def test_promtool_accepts_the_scrape_config(
    services: dict[str, dict[str, Any]], tmp_path: Path
) -> None:
    """`promtool check config` on prometheus.yml, rule files read from what compose mounts."""
    mounts = _bind_mounts(services["prometheus"])
    config = _prometheus_config()
    config["rule_files"] = [str(mounts[path]) for path in config["rule_files"]]
    copy = tmp_path / "prometheus.yml"
    copy.write_text(yaml.safe_dump(config))
    output = _promtool("check", "config", str(copy))
    assert f"SUCCESS: {len(config['rule_files'])} rule files found" in output


def test_promtool_accepts_the_alert_rules() -> None:
    """`promtool check rules deploy/alerts.yml`."""
    output = _promtool("check", "rules", str(ALERTS))
    assert f"SUCCESS: {len(_alert_rules())} rules found" in output


def test_every_alert_fires_and_stays_quiet_in_its_unit_tests() -> None:
    """deploy/alerts.test.yml passes, and has a firing and a quiet case for every alert."""
    _promtool("test", "rules", ALERT_TESTS.name, cwd=DEPLOY)
    document = yaml.safe_load(ALERT_TESTS.read_text())
    assert document["rule_files"] == [ALERTS.name]
    cases = [case for test in document["tests"] for case in test["alert_rule_test"]]
    for rule in _alert_rules():
        mine = [case for case in cases if case["alertname"] == rule["alert"]]
        assert any(case["exp_alerts"] for case in mine), f"{rule['alert']} never fires"
        assert any(not case["exp_alerts"] for case in mine), f"{rule['alert']} is never quiet"


# Grafana's variables, given values that PromQL accepts.
_GRAFANA_VARIABLES = {"$__rate_interval": "1m", "$__interval": "1m", "$__range": "1h"}


def test_dashboard_queries_are_valid_promql(tmp_path: Path) -> None:
    """Every dashboard query parses: promtool checks them as recording rules."""
    rules = []
    for n, expr in enumerate(_dashboard_exprs()):
        for variable, value in _GRAFANA_VARIABLES.items():
            expr = expr.replace(variable, value)
        assert "$" not in expr, f"unknown Grafana variable in {expr!r}"
        rules.append({"record": f"dashboard_query_{n}", "expr": expr})
    path = tmp_path / "dashboard-queries.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    output = _promtool("check", "rules", str(path))
    assert f"SUCCESS: {len(rules)} rules found" in output


def test_kafka_init_topic_configs_match_the_embedded_setup(
    services: dict[str, dict[str, Any]], worker_settings: Settings
) -> None:
    """kafka-init gives each topic the configs `stream.broker.topic_configs` gives it."""
    creations = {c.topic: c for c in _topic_creations(services["kafka-init"])}
    for topic, creation in creations.items():
        assert creation.configs == topic_configs(worker_settings, topic), topic
