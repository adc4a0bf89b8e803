"""The one settings class: environment variables with the DVC_ prefix, secrets without defaults."""

from pydantic import SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PLACEHOLDER_SECRETS = {"changethis", "changeme", "password", "secret", ""}


class Settings(BaseSettings):
    """Settings common to every process; DATABASE_URL is the DSN of the process's own database role."""

    model_config = SettingsConfigDict(
        env_prefix="DVC_", env_file=".env", env_ignore_empty=True, extra="ignore", frozen=True
    )

    DATABASE_URL: SecretStr
    KAFKA_BOOTSTRAP_SERVERS: str = "127.0.0.1:59092"
    TOPIC_PREFIX: str = ""
    HTTP_HOST: str = "127.0.0.1"
    HTTP_PORT: int = 8000
    LOG_LEVEL: str = "INFO"
    BATCH_MAX_RECORDS: int = 2000
    BATCH_TIMEOUT_MS: int = 100
    REGISTRY_REFRESH_SECONDS: float = 5.0
    GRAFANA_URL: str = "http://127.0.0.1:3000"

    @field_validator("DATABASE_URL")
    @classmethod
    def reject_placeholder_secret(cls, value: SecretStr) -> SecretStr:
        """Refuse DSNs whose password is a well-known placeholder."""
        password = value.get_secret_value().partition("@")[0].rpartition(":")[2]
        if password.lower() in PLACEHOLDER_SECRETS:
            raise ValueError("DATABASE_URL has an empty or placeholder password / mật khẩu không hợp lệ")
        return value


class MigrationSettings(Settings):
    """Settings of `dvc db migrate`: DATABASE_URL is the admin DSN; each service role gets its password."""

    INGEST_DB_PASSWORD: SecretStr
    METRICS_DB_PASSWORD: SecretStr
    ALERTS_DB_PASSWORD: SecretStr
    READER_DB_PASSWORD: SecretStr
