"""`dvc kafka setup`: the Kafka principals (SCRAM-SHA-512), topics (partitions, retention) and ACLs.

Run as the super user `admin` (SASL PLAIN, defined statically in the broker's configuration, so it
exists before any metadata); idempotent: scripts/infra.sh runs it at every `up`, compose in its
`kafka-setup` job, the tests for each test's topic prefix.
"""

import os
import time
from collections.abc import Iterable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Annotated, Any

import typer
from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import (
    AclBinding,
    AclBindingFilter,
    AclOperation,
    AclPermissionType,
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    NewTopic,
    ResourcePatternType,
    ResourceType,
    ScramCredentialInfo,
    ScramMechanism,
    UserScramCredentialUpsertion,
)

from shared import topics
from shared.config import KafkaSettings
from shared.kafka_auth import credentials

ADMIN = "admin"  # the super user (super.users), SASL PLAIN, password DVC_KAFKA_ADMIN_PASSWORD
SCRAM_ITERATIONS = 8192
TIMEOUT_SECONDS = 30.0

app = typer.Typer(help="Kafka: tài khoản, chủ đề, quyền / principals, topics, ACLs.", no_args_is_help=True)


@dataclass(frozen=True)
class Principal:
    """A Kafka user (SCRAM-SHA-512) and what it may do."""

    name: str
    reads: tuple[str, ...] = ()
    writes: tuple[str, ...] = ()
    group: str | None = None  # consumer groups whose names start with this (after the topic prefix)

    @property
    def password_variable(self) -> str:
        """The environment variable (secrets.env, .env) that holds its password."""
        return f"DVC_KAFKA_{self.name.upper().replace('-', '_')}_PASSWORD"


INPUT_TOPICS = (topics.CASE_EVENTS, topics.DOCUMENT_EVENTS, topics.REPORT_EVENTS, topics.INSPECTION_EVENTS)
# One principal per service and per upstream producer; nobody else may read or write a topic.
PRINCIPALS = (
    Principal(
        "ingest",
        reads=(topics.CASE_EVENTS, topics.DOCUMENT_EVENTS, topics.REPORT_EVENTS, topics.INSPECTION_EVENTS),
        writes=(topics.DEAD_LETTERS, topics.CHANGES),
        group="dvc-ingest",
    ),
    Principal(
        "metrics",
        reads=(topics.CHANGES,),
        writes=(topics.KPI_UPDATES, topics.INTERNAL_DEAD_LETTERS),
        group="dvc-metrics",
    ),
    Principal(
        "alerts",
        reads=(topics.KPI_UPDATES,),
        writes=(topics.ALERTS, topics.INTERNAL_DEAD_LETTERS),
        group="dvc-alerts",
    ),
    Principal(  # dvc deadletters: reads the letters, re-publishes them to their source topic
        "operator",
        reads=(topics.DEAD_LETTERS, topics.INTERNAL_DEAD_LETTERS),
        writes=INPUT_TOPICS,
        group="dvc-deadletters-replay",
    ),
    Principal("simulator", writes=INPUT_TOPICS),  # dvc simulate, bench/
    Principal("one-stop", writes=(topics.CASE_EVENTS,)),  # phần mềm một cửa
    Principal("documents", writes=(topics.DOCUMENT_EVENTS,)),  # quản lý văn bản
    Principal("reporting", writes=(topics.REPORT_EVENTS,)),  # báo cáo
    Principal("inspection", writes=(topics.INSPECTION_EVENTS,)),  # thanh tra
)


def principal(name: str) -> Principal:
    """Return the principal called `name`."""
    return next(p for p in PRINCIPALS if p.name == name)


def admin_config(settings: KafkaSettings) -> dict[str, str | int | float | bool]:
    """Return the librdkafka configuration of an admin client from the same settings as every client."""
    username, password = credentials(settings)
    config: dict[str, str | int | float | bool] = {
        "bootstrap.servers": settings.KAFKA_BOOTSTRAP_SERVERS,
        "security.protocol": settings.KAFKA_SECURITY_PROTOCOL,
        "sasl.mechanism": settings.KAFKA_SASL_MECHANISM,
        "sasl.username": username,
        "sasl.password": password,
    }
    if settings.KAFKA_CA_FILE:
        config["ssl.ca.location"] = str(settings.KAFKA_CA_FILE)
    return config


def acl_bindings(prefix: str = "") -> list[AclBinding]:
    """Return every ACL of the principals, for topics and groups named with `prefix`."""

    def allow(
        kind: ResourceType, name: str, pattern: ResourcePatternType, who: str, op: AclOperation
    ) -> AclBinding:
        return AclBinding(kind, name, pattern, f"User:{who}", "*", op, AclPermissionType.ALLOW)

    bindings = []
    for p in PRINCIPALS:
        for topic in p.reads:
            for op in (AclOperation.READ, AclOperation.DESCRIBE):
                bindings.append(
                    allow(ResourceType.TOPIC, prefix + topic, ResourcePatternType.LITERAL, p.name, op)
                )
        for topic in p.writes:
            for op in (AclOperation.WRITE, AclOperation.DESCRIBE):
                bindings.append(
                    allow(ResourceType.TOPIC, prefix + topic, ResourcePatternType.LITERAL, p.name, op)
                )
        if p.group:
            bindings.append(
                allow(
                    ResourceType.GROUP,
                    prefix + p.group,
                    ResourcePatternType.PREFIXED,
                    p.name,
                    AclOperation.READ,
                )
            )
    return bindings


def wait_all(futures: Iterable[Future[Any]], *, ignore: Iterable[int] = ()) -> None:
    """Wait for admin results; raise the first error whose code is not in `ignore`."""
    ignored = set(ignore)
    for future in futures:
        try:
            future.result(timeout=TIMEOUT_SECONDS)
        except KafkaException as exc:
            error = exc.args[0]
            if not (isinstance(error, KafkaError) and error.code() in ignored):
                raise


def ensure_principals(client: AdminClient, passwords: dict[str, str]) -> None:
    """Create or update each principal's SCRAM-SHA-512 credential (a new salt each time)."""
    info = ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, SCRAM_ITERATIONS)
    upserts = [
        UserScramCredentialUpsertion(name, info, password.encode()) for name, password in passwords.items()
    ]
    wait_all(client.alter_user_scram_credentials(upserts).values())  # type: ignore[arg-type]


def topic_retention(prefix: str = "") -> dict[str, dict[str, str]]:
    """Return each topic's retention settings: by time for the topics our services stamp, by size only
    for the upstream topics (`topics.UPSTREAM_RETENTION_BYTES`)."""
    retention = {
        prefix + name: {"retention.ms": str(days * 86_400_000)}
        for name, days in topics.RETENTION_DAYS.items()
    }
    for name, size in topics.UPSTREAM_RETENTION_BYTES.items():
        retention[prefix + name] = {"retention.ms": "-1", "retention.bytes": str(size)}
    return retention


def ensure_topics(client: AdminClient, prefix: str = "") -> None:
    """Create the topics that are missing, and set every topic's retention (also on existing topics)."""
    retention = topic_retention(prefix)
    new = [
        NewTopic(name, num_partitions=topics.PARTITIONS, replication_factor=-1, config=config)
        for name, config in retention.items()
    ]
    wait_all(client.create_topics(new).values(), ignore=(KafkaError.TOPIC_ALREADY_EXISTS,))
    resources = [
        ConfigResource(
            ResourceType.TOPIC,
            name,
            incremental_configs=[
                ConfigEntry(key, value, incremental_operation=AlterConfigOpType.SET)
                for key, value in config.items()
            ],
        )
        for name, config in retention.items()
    ]
    wait_all(client.incremental_alter_configs(resources).values())


def ensure_acls(client: AdminClient, prefix: str = "") -> None:
    """Create the ACLs (creating an existing ACL is a no-op), and wait until the broker applies them."""
    wanted = acl_bindings(prefix)
    wait_all(client.create_acls(wanted).values())
    every = AclBindingFilter(  # None: any name, principal, host (the stubs say str)
        ResourceType.ANY,
        None,  # type: ignore[arg-type]
        ResourcePatternType.ANY,
        None,  # type: ignore[arg-type]
        None,  # type: ignore[arg-type]
        AclOperation.ANY,
        AclPermissionType.ANY,
    )
    deadline = time.monotonic() + TIMEOUT_SECONDS
    while not set(map(str, wanted)) <= set(map(str, client.describe_acls(every).result(TIMEOUT_SECONDS))):
        if time.monotonic() > deadline:
            raise TimeoutError("the broker did not apply the ACLs / ACL chưa có hiệu lực")
        time.sleep(0.05)


def remove_prefixed(client: AdminClient, prefix: str) -> None:
    """Delete a (test) prefix's topics and ACLs."""
    if not prefix:
        raise ValueError("refusing to delete the production topics / không xoá chủ đề chính")
    filters = [
        AclBindingFilter(
            b.restype, b.name, b.resource_pattern_type, b.principal, b.host, b.operation, b.permission_type
        )
        for b in acl_bindings(prefix)
    ]
    wait_all(client.delete_acls(filters).values())
    names = list(topic_retention(prefix))
    wait_all(client.delete_topics(names).values(), ignore=(KafkaError.UNKNOWN_TOPIC_OR_PART,))


def principal_passwords(environ: dict[str, str]) -> dict[str, str]:
    """Return every principal's password from the environment; exit with the missing variables named."""
    missing = [p.password_variable for p in PRINCIPALS if not environ.get(p.password_variable)]
    if missing:
        typer.echo(f"Thiếu mật khẩu / missing passwords: {', '.join(missing)}", err=True)
        raise typer.Exit(2)
    return {p.name: environ[p.password_variable] for p in PRINCIPALS}


@app.command("setup")
def setup_command(
    prefix: Annotated[str, typer.Option(help="Topic and group prefix (tests); empty in production")] = "",
    principals: Annotated[bool, typer.Option(help="Create/update the principals' SCRAM credentials")] = True,
) -> None:
    """Tạo tài khoản, chủ đề và quyền Kafka / Create the Kafka principals, topics and ACLs (idempotent).

    Connects as DVC_KAFKA_USERNAME (admin) with DVC_KAFKA_PASSWORD; each principal's password is read
    from DVC_KAFKA_<NAME>_PASSWORD.
    """
    client = AdminClient(admin_config(KafkaSettings()))
    if principals:
        ensure_principals(client, principal_passwords(dict(os.environ)))
    ensure_topics(client, prefix)
    ensure_acls(client, prefix)
    typer.echo(
        f"Kafka: {len(PRINCIPALS)} tài khoản / principals, {len(topic_retention())} chủ đề / topics,"
        f" {len(acl_bindings(prefix))} quyền / ACLs{f' (prefix {prefix})' if prefix else ''}"
    )
