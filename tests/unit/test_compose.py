"""docker-compose.yml parses and agrees with the settings, the services, .env.example and Prometheus."""

import importlib
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic_settings import BaseSettings

REPO = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO / "docker-compose.yml"
ENV_EXAMPLE = REPO / ".env.example"
PROMETHEUS_CONFIG = REPO / "deploy" / "prometheus" / "prometheus.compose.yml"
DESIGN_SERVICES = {
    "kafka",
    "postgres",
    "migrate",
    "ingest",
    "metrics",
    "alerts",
    "prometheus",
    "alertmanager",
    "grafana",
}
NATIVE_PROMETHEUS_CONFIG = REPO / "deploy" / "prometheus" / "prometheus.native.yml"
ALERTMANAGER_DIR = REPO / "deploy" / "alertmanager"
APP_SERVICES = ("ingest", "metrics", "alerts")
# ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?message}, ${VAR?message}; `$$` is a literal dollar
INTERPOLATION = re.compile(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}")
SECRET_NAME = re.compile(r"PASSWORD|SECRET|KEY|TOKEN")
READYZ_URL = re.compile(r"http://127\.0\.0\.1:(\d+)/readyz")
CONDITIONS = {"service_started", "service_healthy", "service_completed_successfully"}

Config = dict[str, Any]


def strings_in(node: object) -> Iterator[str]:
    """Yield every string value of a parsed YAML document (where compose interpolates; not comments)."""
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for value in node.values():
            yield from strings_in(value)
    elif isinstance(node, list):
        for value in node:
            yield from strings_in(value)


def interpolations() -> list[tuple[str, str, str]]:
    """Return (variable, operator, default or message) for every ${...} in the compose file."""
    raw = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
    return [found for text in strings_in(raw) for found in INTERPOLATION.findall(text)]


def required_variables() -> set[str]:
    """Return the variables compose refuses to run without (`:?` / `?`)."""
    return {name for name, operator, _ in interpolations() if operator.endswith("?")}


def run_compose_config(tmp_path: Path, variables: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run the real parser, `docker-compose config`, with only `variables` set (and no .env read)."""
    binary = shutil.which("docker-compose")
    if binary is None:
        pytest.skip("docker-compose is not installed (apt-get install -y docker-compose; CI installs it)")
    empty_env_file = tmp_path / "empty.env"
    empty_env_file.write_text("", encoding="utf-8")
    return subprocess.run(
        [binary, "--env-file", str(empty_env_file), "--profile", "demo", "-f", str(COMPOSE_FILE), "config"],
        cwd=REPO,
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **variables},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture(scope="module")
def compose(tmp_path_factory: pytest.TempPathFactory) -> Config:
    """Return the configuration as docker-compose parsed and resolved it, with dummy secrets."""
    dummies = {name: f"dummy-{name.lower().replace('_', '-')}" for name in required_variables()}
    result = run_compose_config(tmp_path_factory.mktemp("compose"), dummies)
    assert result.returncode == 0, f"docker-compose config failed:\n{result.stderr}"
    parsed = yaml.safe_load(result.stdout)
    assert isinstance(parsed, dict)
    return parsed


def services_of(compose: Config) -> dict[str, Config]:
    services = compose["services"]
    assert isinstance(services, dict)
    return services


def project_services(compose: Config) -> dict[str, Config]:
    """Return the services that run the project's own image (built from deploy/Dockerfile)."""
    return {name: service for name, service in services_of(compose).items() if "build" in service}


def environment(service: Config) -> dict[str, str]:
    """Return a service's environment as a dict, whether compose printed a mapping or a list."""
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {str(key): "" if value is None else str(value) for key, value in env.items()}


def published_ports(service: Config) -> list[tuple[str, int, int]]:
    """Return (host address, published port, container port) for each port, short or long syntax."""
    found = []
    for port in service.get("ports") or []:
        if isinstance(port, dict):
            found.append((str(port.get("host_ip", "")), int(port["published"]), int(port["target"])))
            continue
        *host, published, target = str(port).split("/")[0].rsplit(":", 2)
        found.append((host[0] if host else "", int(published), int(target)))
    return found


def mounts(service: Config) -> dict[str, str]:
    """Return {container path: host path} of the service's bind mounts and volumes."""
    found = {}
    for volume in service.get("volumes") or []:
        if isinstance(volume, dict):
            found[str(volume["target"])] = str(volume.get("source", ""))
        else:
            source, target, *_ = str(volume).split(":")
            found[target] = source
    return found


def import_settings_modules() -> Iterator[str]:
    """Import every module under shared/ and services/ that defines a class over a *Settings base."""
    defines_settings = re.compile(r"^class \w+\([\w.]*Settings\b", re.MULTILINE)
    for path in sorted([*REPO.glob("shared/**/*.py"), *REPO.glob("services/**/*.py")]):
        if not defines_settings.search(path.read_text(encoding="utf-8")):
            continue
        module = ".".join(path.relative_to(REPO).with_suffix("").parts)
        try:
            importlib.import_module(module)
        except Exception:  # a module that cannot be imported (yet) reads no variable
            continue
        yield module


def settings_classes() -> list[type[BaseSettings]]:
    """Return every BaseSettings subclass defined in the project's importable modules."""
    list(import_settings_modules())
    found: list[type[BaseSettings]] = []
    pending = list(BaseSettings.__subclasses__())
    while pending:
        cls = pending.pop()
        pending.extend(cls.__subclasses__())
        if cls.__module__.split(".")[0] in {"shared", "services"} and cls not in found:
            found.append(cls)
    return found


def variable_names(cls: type[BaseSettings]) -> set[str]:
    """Return the environment variables a settings class reads (prefix + field, or the alias)."""
    prefix = str(cls.model_config.get("env_prefix", ""))
    names = set()
    for field_name, field in cls.model_fields.items():
        alias = field.validation_alias if isinstance(field.validation_alias, str) else field.alias
        names.add((alias or prefix + field_name).upper())
    return names


def known_variables() -> set[str]:
    return set().union(*(variable_names(cls) for cls in settings_classes()))


def documented_variables() -> dict[str, str]:
    """Return {variable: value} of the `VAR=value` lines of .env.example, commented out or not."""
    line = re.compile(r"^#?\s*([A-Z][A-Z0-9_]*)=(.*)$")
    matches = (line.match(text) for text in ENV_EXAMPLE.read_text(encoding="utf-8").splitlines())
    return {match.group(1): match.group(2).strip() for match in matches if match}


def test_compose_file_parses_with_the_real_parser(compose: Config) -> None:
    assert services_of(compose)


def test_compose_refuses_to_run_without_its_secrets(tmp_path: Path) -> None:
    result = run_compose_config(tmp_path, {})
    assert result.returncode != 0
    assert any(name in result.stderr for name in required_variables()), result.stderr


def test_every_service_of_the_design_exists(compose: Config) -> None:
    assert DESIGN_SERVICES <= set(services_of(compose))


@pytest.mark.parametrize("name", APP_SERVICES)
def test_each_service_runs_its_own_main_module(compose: Config, name: str) -> None:
    service = services_of(compose)[name]
    assert service["command"] == ["python", "-m", f"services.{name}.main"]
    assert (REPO / "services" / name / "main.py").is_file(), f"services/{name}/main.py does not exist"
    assert service["build"]["dockerfile"] == "deploy/Dockerfile"


def test_project_services_share_one_image(compose: Config) -> None:
    images = {service.get("image") for service in project_services(compose).values()}
    assert images == {"dvc-monitor:latest"}
    assert set(APP_SERVICES) | {"migrate"} <= set(project_services(compose))


@pytest.mark.parametrize("name", [*APP_SERVICES, "migrate", "simulator"])
def test_every_dvc_variable_given_to_a_service_is_a_settings_field(compose: Config, name: str) -> None:
    given = {key for key in environment(services_of(compose)[name]) if key.startswith("DVC_")}
    unknown = given - known_variables()
    assert not unknown, f"{name} is given variables no settings class reads: {sorted(unknown)}"


@pytest.mark.parametrize("name", APP_SERVICES)
def test_service_listens_on_all_interfaces_of_its_container(compose: Config, name: str) -> None:
    env = environment(services_of(compose)[name])
    assert env["DVC_HTTP_HOST"] == "0.0.0.0"
    assert env["DVC_KAFKA_BOOTSTRAP_SERVERS"] == "kafka:9092"
    assert env["DVC_DATABASE_URL"].startswith(f"postgresql://dvc_{name}:")


def test_every_published_port_is_the_service_http_port(compose: Config) -> None:
    for name, service in project_services(compose).items():
        ports = published_ports(service)
        http_port = environment(service).get("DVC_HTTP_PORT")
        for _, published, target in ports:
            assert str(published) == str(target) == http_port, f"{name} publishes {published}:{target}"


def test_ports_are_published_on_loopback_by_default(compose: Config) -> None:
    for name, service in services_of(compose).items():
        for host, published, _ in published_ports(service):
            assert host == "127.0.0.1", f"{name} publishes {published} on {host or 'every interface'}"


@pytest.mark.parametrize("name", APP_SERVICES)
def test_healthcheck_asks_readyz_on_the_service_own_port(compose: Config, name: str) -> None:
    service = services_of(compose)[name]
    test = service["healthcheck"]["test"]
    command = " ".join(test) if isinstance(test, list) else str(test)
    assert READYZ_URL.findall(command) == [environment(service)["DVC_HTTP_PORT"]], command


def test_every_dependency_names_an_existing_service(compose: Config) -> None:
    services = services_of(compose)
    for name, service in services.items():
        depends_on = service.get("depends_on") or {}
        if isinstance(depends_on, list):
            depends_on = {dependency: {"condition": "service_started"} for dependency in depends_on}
        for dependency, options in depends_on.items():
            assert dependency in services, f"{name} depends on missing service {dependency}"
            condition = options.get("condition", "service_started")
            assert condition in CONDITIONS, f"{name}: unknown condition {condition}"
            if condition == "service_healthy":
                assert "healthcheck" in services[dependency], f"{name} waits for {dependency}'s health"


@pytest.mark.parametrize("name", APP_SERVICES)
def test_services_start_after_infrastructure_and_migrations(compose: Config, name: str) -> None:
    depends_on = services_of(compose)[name]["depends_on"]
    assert depends_on["kafka"]["condition"] == "service_healthy"
    assert depends_on["postgres"]["condition"] == "service_healthy"
    assert depends_on["migrate"]["condition"] == "service_completed_successfully"


def test_every_interpolated_variable_is_documented_in_env_example() -> None:
    documented = documented_variables()
    missing = {name for name, _, _ in interpolations()} - set(documented)
    assert not missing, f"not in .env.example: {sorted(missing)}"


def test_secrets_have_no_default_and_are_left_empty_in_env_example() -> None:
    documented = documented_variables()
    for name, operator, default in interpolations():
        if SECRET_NAME.search(name):
            assert operator.endswith("?") or not default, f"${{{name}}} has a default value"
            assert documented.get(name) == "", f".env.example gives {name} a value"


def test_prometheus_scrapes_each_service_on_its_http_port(compose: Config) -> None:
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text(encoding="utf-8"))
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    for name in APP_SERVICES:
        port = environment(services_of(compose)[name])["DVC_HTTP_PORT"]
        targets = [target for group in jobs[name]["static_configs"] for target in group["targets"]]
        assert targets == [f"{name}:{port}"]
        assert jobs[name].get("metrics_path", "/metrics") == "/metrics"


def test_prometheus_mounts_its_compose_config_and_the_rules(compose: Config) -> None:
    mounted = mounts(services_of(compose)["prometheus"])
    assert Path(mounted["/etc/prometheus/prometheus.yml"]) == PROMETHEUS_CONFIG
    assert Path(mounted["/etc/prometheus/rules"]) == REPO / "deploy" / "prometheus" / "rules"
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text(encoding="utf-8"))
    assert config["rule_files"] == ["/etc/prometheus/rules/*.yml"]


def alertmanager_targets(path: Path) -> list[str]:
    config = yaml.safe_load(path.read_text(encoding="utf-8"))
    return [
        target
        for manager in config["alerting"]["alertmanagers"]
        for group in manager["static_configs"]
        for target in group["targets"]
    ]


def test_prometheus_sends_alerts_to_alertmanager_natively_and_in_compose(compose: Config) -> None:
    alertmanager = services_of(compose)["alertmanager"]
    [(_, published, port)] = published_ports(alertmanager)
    assert alertmanager_targets(PROMETHEUS_CONFIG) == [f"alertmanager:{port}"]
    assert alertmanager_targets(NATIVE_PROMETHEUS_CONFIG) == ["127.0.0.1:${DVC_ALERTMANAGER_PORT}"]
    assert "--web.listen-address=:9093" in alertmanager["command"][0] and published == port == 9093


def test_alertmanager_renders_its_config_from_the_shared_template(compose: Config) -> None:
    alertmanager = services_of(compose)["alertmanager"]
    assert Path(mounts(alertmanager)["/etc/alertmanager/dvc"]) == ALERTMANAGER_DIR
    script = alertmanager["command"][0]
    assert "render.sh /etc/alertmanager/dvc/alertmanager.yml.template" in script
    assert "--cluster.listen-address=" in script  # no gossip port
    env = environment(alertmanager)
    assert env["DVC_OPERATOR_EMAILS"].startswith("dummy-") and env["DVC_SMTP_TLS"] == "starttls"


@pytest.mark.parametrize(
    ("variables", "error"),
    [
        ({}, "DVC_OPERATOR_EMAILS"),
        ({"DVC_OPERATOR_EMAILS": "not-an-address"}, "DVC_OPERATOR_EMAILS"),
        ({"DVC_OPERATOR_EMAILS": "a@x.vn'\n  evil: true"}, "DVC_OPERATOR_EMAILS"),
        (
            {
                "DVC_OPERATOR_EMAILS": "a@x.vn",
                "DVC_SMTP_TLS": "off",
                "DVC_SMTP_USERNAME": "u",
                "DVC_SMTP_PASSWORD": "p",
            },
            "TLS",
        ),
        ({"DVC_OPERATOR_EMAILS": "a@x.vn", "DVC_SMTP_TLS": "tls"}, "465"),
    ],
)
def test_alertmanager_render_refuses_bad_settings(
    tmp_path: Path, variables: dict[str, str], error: str
) -> None:
    result = subprocess.run(
        [
            "sh",
            str(ALERTMANAGER_DIR / "render.sh"),
            str(ALERTMANAGER_DIR / "alertmanager.yml.template"),
            str(tmp_path / "out.yml"),
        ],
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **variables},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 1 and error in result.stderr, result.stderr
    assert not (tmp_path / "out.yml").exists()


def test_alertmanager_render_gives_a_valid_config(tmp_path: Path) -> None:
    out = tmp_path / "alertmanager.yml"
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "DVC_OPERATOR_EMAILS": "ops@example.gov.vn, trucban@example.gov.vn",
        "DVC_SMTP_HOST": "mail.example.gov.vn",
        "DVC_SMTP_PORT": "587",
        "DVC_SMTP_USERNAME": "giamsat",
        "DVC_SMTP_PASSWORD": "s3cret-pass",
        "DVC_OPERATOR_WEBHOOK_URL": "https://chat.example.gov.vn/hook",
    }
    subprocess.run(
        [
            "sh",
            str(ALERTMANAGER_DIR / "render.sh"),
            str(ALERTMANAGER_DIR / "alertmanager.yml.template"),
            str(out),
        ],
        env=env,
        check=True,
    )
    config = yaml.safe_load(out.read_text(encoding="utf-8"))
    assert config["global"]["smtp_smarthost"] == "mail.example.gov.vn:587"
    assert (
        config["global"]["smtp_require_tls"] is True
        and config["global"]["smtp_auth_password"] == "s3cret-pass"
    )
    [receiver] = config["receivers"]
    assert receiver["email_configs"][0]["to"] == "ops@example.gov.vn, trucban@example.gov.vn"
    assert receiver["webhook_configs"][0]["url"] == "https://chat.example.gov.vn/hook"
    assert out.stat().st_mode & 0o077 == 0  # it holds the SMTP password
    amtool = shutil.which("amtool")
    if amtool:
        check = subprocess.run(
            [amtool, "check-config", str(out)], capture_output=True, text=True, check=False
        )
        assert check.returncode == 0, check.stdout + check.stderr


@pytest.mark.parametrize("name", [*APP_SERVICES, "simulator"])
def test_each_service_authenticates_to_kafka_as_its_own_principal(compose: Config, name: str) -> None:
    env = environment(services_of(compose)[name])
    assert env["DVC_KAFKA_USERNAME"] == name
    assert env["DVC_KAFKA_PASSWORD"] == f"dummy-dvc-kafka-{name}-password"
    assert (
        services_of(compose)[name]["depends_on"]["kafka-setup"]["condition"]
        == "service_completed_successfully"
    )


def test_kafka_setup_creates_every_principal_of_the_cli_as_the_admin(compose: Config) -> None:
    from cli.kafka import PRINCIPALS

    env = environment(services_of(compose)["kafka-setup"])
    assert services_of(compose)["kafka-setup"]["command"] == ["dvc", "kafka", "setup"]
    assert (env["DVC_KAFKA_USERNAME"], env["DVC_KAFKA_SASL_MECHANISM"]) == ("admin", "PLAIN")
    assert {p.password_variable for p in PRINCIPALS} <= set(env)


def test_compose_kafka_has_the_native_brokers_security_settings(compose: Config) -> None:
    """Every security property of deploy/kafka/server.properties.template is set alike in compose."""
    template = (REPO / "deploy" / "kafka" / "server.properties.template").read_text(encoding="utf-8")
    native = dict(
        line.split("=", 1)
        for line in template.splitlines()
        if line and not line.startswith("#") and "=" in line
    )
    env = environment(services_of(compose)["kafka"])
    for key in [k for k in native if "sasl" in k or "authorizer" in k or "super" in k or "auto.create" in k]:
        variable = "KAFKA_" + key.replace("_", "__").replace("-", "___").replace(".", "_").upper()
        expected = native[key].replace("@ADMIN_PASSWORD@", "dummy-dvc-kafka-admin-password")
        expected = expected.replace("@TLS_DIR@", "/etc/kafka/tls")
        assert env.get(variable) == expected, key
    assert "CONTROLLER://localhost:9093" in env["KAFKA_LISTENERS"]
