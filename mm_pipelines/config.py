"""The one typed settings model: every MM_* variable, read from the environment at run time (never at import time).

One setting per backend; each defaults to an embedded implementation under ``MM_HOME`` so that a
fresh clone runs the whole platform with no servers:

| variable            | embedded default                    | production                                   |
|---------------------|-------------------------------------|----------------------------------------------|
| MM_HOME             | ``<checkout>/.mm``                  | any writable folder                          |
| MM_CLICKHOUSE_URL   | ``chdb://$MM_HOME/warehouse``       | ``https://user@host:8443`` (+ MM_CLICKHOUSE_PASSWORD) |
| MM_POSTGRES_DSN     | embedded Postgres (pgserver)        | ``postgresql://user@host/db`` (+ PGPASSWORD)  |
| MM_EVENT_BUS        | ``log://$MM_HOME/eventlog``         | ``kafka://host:9092[,host2:9092]``           |
| MM_OBJECT_STORE     | ``file://$MM_HOME/objects``         | ``s3://bucket[/prefix]`` (+ AWS_* variables) |

`mm config` shows every setting with its effective value. An MM_* variable the model does not know is an
error naming the nearest setting, so a typo is never silently ignored.
"""

from __future__ import annotations

import difflib
import math
import os
import re
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit, urlunsplit

from pydantic import BeforeValidator, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from pydantic_settings.sources import DefaultSettingsSource, EnvSettingsSource
from pydantic_settings.sources.utils import parse_env_vars

EVENTS_TOPIC = "mm.events.v1"
AUDIT_TOPIC = "mm.audit.v1"
# The path transforms docs/attribution.md defines, in the order they apply: validated here, applied in attribution.
TRANSFORMS = ("collapse_repeats", "first_occurrence", "drop_direct", "drop_trailing_direct")
ENV_PREFIX = "MM_"
ENVIRONMENTS = ("development", "production")

# MM_* variables that are not settings but are set legitimately: the test services' own variables, the dbt
# profile's connection variables that `mm-dbt` derives from MM_CLICKHOUSE_URL (dbt_cli.py, profiles.yml) and the
# folder of the local test services (scripts/services).
NOT_SETTINGS_PREFIXES = ("MM_TEST_",)
NOT_SETTINGS = frozenset(
    {
        "MM_DBT_TARGET",
        "MM_CLICKHOUSE_HOST",
        "MM_CLICKHOUSE_PORT",
        "MM_CLICKHOUSE_USER",
        "MM_CLICKHOUSE_SECURE",
        "MM_SERVICES_DIR",
    }
)


class ConfigError(ValueError):
    """A setting that cannot be used; the message names the variable and how to fix it."""


def repo_root() -> Path | None:
    """The checkout this package runs from (editable install), or None when installed elsewhere."""
    candidate = Path(__file__).resolve().parents[1]
    return candidate if (candidate / "dbt_project" / "dbt_project.yml").exists() else None


def dbt_project_dir(settings: Settings | None = None) -> Path:
    override = (settings or Settings.from_env()).dbt_project_dir
    if override is not None:
        return override
    root = repo_root()
    if root is None:
        raise ConfigError(
            "MM_DBT_PROJECT_DIR is not set and no checkout was found: set MM_DBT_PROJECT_DIR to the dbt_project folder"
        )
    return root / "dbt_project"


def redact(url: str) -> str:
    """The URL with any password removed, safe for logs and the Dagster UI."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc}"))


# --- value parsers: each raises ValueError with the phrase that follows "MM_X='value'" in the error ---------


def _whole(minimum: int, maximum: int | None = None, problem: str = "is not a whole number"):
    def parse(value: Any) -> int:
        if isinstance(value, int) and not isinstance(value, bool):
            number = value
        elif isinstance(value, str) and re.fullmatch(r"-?[0-9]+", value.strip()):
            number = int(value)
        else:
            raise ValueError(problem)
        if number < minimum or (maximum is not None and number > maximum):
            raise ValueError(problem)
        return number

    return BeforeValidator(parse)


def _number(minimum: float | None = None, problem: str = "is not a number"):
    def parse(value: Any) -> float:
        try:
            number = float(value.strip() if isinstance(value, str) else value)
        except (TypeError, ValueError):
            raise ValueError(problem) from None
        if not math.isfinite(number) or (minimum is not None and number < minimum):
            raise ValueError(problem)
        return number

    return BeforeValidator(parse)


def _amount(value: Any) -> Decimal:
    try:
        amount = Decimal(value.strip() if isinstance(value, str) else str(value))
    except InvalidOperation:
        raise ValueError("is not an amount: write a decimal number such as 10000 or 2500.50") from None
    if not amount.is_finite() or amount < 0:
        raise ValueError("is not an amount: write a decimal number such as 10000 or 2500.50")
    return amount


def _comma_list(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        return tuple(t.strip() for t in value.split(",") if t.strip())
    return tuple(value)


def _url(schemes: tuple[str, ...]):
    allowed = ", ".join(f"{s}://" for s in schemes)

    def check(value: Any) -> Any:
        if isinstance(value, str) and value and urlsplit(value).scheme not in schemes:
            raise ValueError(f"has an unknown scheme: use one of {allowed}")
        return value

    return BeforeValidator(check)


Days = Annotated[int, _whole(0, problem="must be a whole number of days (0 or more)")]


def _default_home() -> Path:
    root = repo_root()
    return (root / ".mm") if root else Path.home() / ".mm"


class Settings(BaseSettings):
    """Every MM_* variable of the platform, typed, with its default and what it is for."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="forbid", frozen=True, populate_by_name=True)

    # --- backends ---
    home: Path = Field(
        default_factory=_default_home, description="State folder: embedded backends, dbt artifacts, Dagster home"
    )
    clickhouse_url: Annotated[str, _url(("chdb", "http", "https"))] = Field(
        "",
        description="Analytics store: chdb:///path (embedded) or http(s)://user@host:port; default chdb://$MM_HOME/warehouse",
    )
    clickhouse_password: SecretStr | None = Field(None, description="Password of the ClickHouse server user (secret)")
    postgres_dsn: Annotated[str | None, _url(("postgresql", "postgres"))] = Field(
        None,
        description="Metadata DB: postgresql://user@host/db (password in PGPASSWORD); default embedded Postgres",
    )
    event_bus_url: Annotated[str, _url(("log", "kafka"))] = Field(
        "",
        validation_alias="MM_EVENT_BUS",
        description="Event bus: log:///path (embedded) or kafka://host:9092[,host2:9092]; default log://$MM_HOME/eventlog",
    )
    object_store_url: Annotated[str, _url(("file", "s3"))] = Field(
        "",
        validation_alias="MM_OBJECT_STORE",
        description="Object store: file:///path or s3://bucket[/prefix] (credentials from AWS_*); default file://$MM_HOME/objects",
    )
    events_topic: str = Field(EVENTS_TOPIC, description="Topic of the canonical analytics events")
    events_partitions: Annotated[int, _whole(1, problem="is not a positive whole number")] = Field(
        4, description="Partitions of the events topic when the platform creates it"
    )
    warehouse_lock_timeout: Annotated[float, _number(minimum=0, problem="is not a number of seconds (0 or more)")] = (
        Field(900.0, description="Seconds to wait for the embedded warehouse while another process uses it")
    )
    audit_archive_url: Annotated[str, _url(("file", "s3"))] = Field(
        "",
        validation_alias="MM_AUDIT_ARCHIVE",
        description="Where the audit chain is sealed: file:///path or s3://bucket[/prefix] (bucket with Object Lock); "
        "default file://$MM_HOME/audit-archive",
    )
    audit_topic: str = Field(AUDIT_TOPIC, description="Topic the audit chain is mirrored to when MM_EVENT_BUS is Kafka")
    audit_retention_days: Annotated[int, _whole(1, problem="must be a whole number of days (1 or more)")] = Field(
        2555, description="Days each sealed audit segment stays under S3 Object Lock (COMPLIANCE) retention"
    )
    dbt_project_dir: Path | None = Field(
        None, description="The dbt project folder; default dbt_project/ of the checkout"
    )
    # --- attribution (the AttributionConfig the dbt models, Spark and Python engines share) ---
    attribution_click_lookback_days: Days = Field(30, description="Days a click stays eligible for a conversion")
    attribution_impression_lookback_days: Days = Field(
        1, description="Days an impression stays eligible for a conversion"
    )
    attribution_path_transforms: Annotated[tuple[str, ...], NoDecode, BeforeValidator(_comma_list)] = Field(
        (), description="Comma-separated path transforms applied before crediting"
    )
    attribution_position_first_weight: Annotated[float, _number()] = Field(
        0.4, description="Position-based credit of the first touch"
    )
    attribution_position_last_weight: Annotated[float, _number()] = Field(
        0.4, description="Position-based credit of the last touch"
    )
    attribution_half_life_days: Annotated[float, _number()] = Field(7.0, description="Time-decay half-life in days")
    attribution_fit_days: Days = Field(28, description="Days of journeys the data-driven models fit on")
    attribution_shapley_value: str = Field(
        "conversions", description="What Shapley credits: conversions or conversion_rate"
    )
    reporting_currency: str = Field("USD", description="Currency the marts report revenue in")
    attribution_reprocess_days: Days = Field(
        2, description="Days before its range each daily run rebuilds, for late events"
    )
    # --- checks and sensors ---
    attribution_freshness_hours: Annotated[
        float, _number(minimum=0, problem="is not a number of hours (0 or more)")
    ] = Field(36.0, description="Hours credits may lag the newest conversion before the freshness check warns")
    raw_freshness_minutes: Annotated[float, _number(minimum=0, problem="is not a number of minutes (0 or more)")] = (
        Field(15.0, description="Minutes events may wait on the bus before the freshness check warns")
    )
    license_expiry_days: Days = Field(30, description="Days ahead the license sensor starts a renewal or takedown")
    # --- payouts ---
    payout_dual_approval_above: Annotated[Decimal, BeforeValidator(_amount)] = Field(
        Decimal("10000"), description="Batches above this total need two distinct approvers"
    )
    payout_execution_day: Annotated[
        int, _whole(1, 28, problem="must be a day of the month from 1 to 28 (every month has it)")
    ] = Field(5, description="Day of the month after the period on which transfers are asked for")
    payout_debtor_iban: str | None = Field(
        None, description="IBAN payouts are paid from (SEPA exports refuse without it)"
    )
    payout_debtor_name: str = Field("Market and Media Ltd", description="Holder of the paying account")
    payout_debtor_bic: str | None = Field(None, description="BIC of the paying account's bank")
    payout_signing_key: SecretStr | None = Field(
        None, description="Ed25519 private key that signs payout exports (secret)"
    )
    payout_verify_key: str | None = Field(
        None, description="Ed25519 public key that verifies exports; default the signing key's"
    )
    # --- the asset service (`mm api`) ---
    environment: str = Field(
        "development",
        description="development or production: production refuses the development issuer and self-declared approvals",
    )
    oidc_issuer: Annotated[str | None, _url(("https", "http"))] = Field(
        None, description="OIDC issuer whose tokens the API accepts; default the development issuer (`mm token`)"
    )
    oidc_audience: str = Field("mm-platform", description="Audience (aud) a token must name")
    oidc_roles_claim: str = Field(
        "roles", description="Claim holding a token's roles (dotted for nested: realm_access.roles)"
    )
    oidc_client_id: str = Field("mm-platform", description="The admin UI's OAuth client id at the issuer")
    oidc_client_secret: SecretStr | None = Field(
        None, description="The admin UI's client secret (secret); none for a public client using PKCE alone"
    )
    oidc_clock_skew_seconds: Annotated[float, _number(minimum=0, problem="is not a number of seconds (0 or more)")] = (
        Field(60.0, description="Seconds of clock skew allowed on exp and nbf")
    )
    api_public_url: Annotated[str, _url(("https", "http"))] = Field(
        "http://127.0.0.1:8600", description="Where clients reach the API (signed upload URLs point here)"
    )
    api_signing_key: SecretStr | None = Field(
        None, description="Key that signs upload URLs and sessions (secret); default a key file under MM_HOME"
    )
    upload_max_bytes: Annotated[int, _whole(1, problem="is not a positive whole number of bytes")] = Field(
        100 * 1024 * 1024, description="Largest asset file an upload may declare"
    )
    sentinelnet_url: Annotated[str | None, _url(("https", "http"))] = Field(
        None, description="SentinelNet's scan API; default the built-in scanner"
    )
    sentinelnet_api_key: SecretStr | None = Field(None, description="API key of SentinelNet (secret)")
    sentinelnet_webhook_secret: SecretStr | None = Field(
        None, description="HMAC secret of SentinelNet's verdict webhook (secret); default a key file under MM_HOME"
    )
    kyc_url: Annotated[str | None, _url(("https", "http"))] = Field(
        None,
        description="The KYC provider's API; default a development provider that verifies at once (not in production)",
    )
    kyc_api_key: SecretStr | None = Field(None, description="API key of the KYC provider (secret)")
    pii_vault_url: Annotated[str | None, _url(("https", "http"))] = Field(
        None,
        description="HashiCorp Vault / OpenBao (KV version 2) holding payees' names and bank details; "
        "default an encrypted folder under MM_HOME (not in production)",
    )
    pii_vault_token: SecretStr | None = Field(
        None, description="Vault token that may create, update and read payees' PII (secret)"
    )
    pii_vault_mount: str = Field("secret", description="Path of the KV version 2 mount holding payees' PII")
    pii_digest_key: SecretStr | None = Field(
        None, description="HMAC key of the payees' PII digests (secret); default a key file under MM_HOME"
    )
    webhook_replay_window_seconds: Annotated[
        float, _number(minimum=1, problem="is not a number of seconds (1 or more)")
    ] = Field(300.0, description="How old a webhook's timestamp may be before the delivery is refused")
    moderation_blocked_terms: Annotated[tuple[str, ...], NoDecode, BeforeValidator(_comma_list)] = Field(
        (), description="Comma-separated terms the built-in scanner blocks in titles, descriptions and text files"
    )
    # --- tests ---
    failpoint: str | None = Field(
        None, description="Fault injection for the crash tests: the process dies at this point"
    )

    @field_validator("home")
    @classmethod
    def _resolved(cls, home: Path) -> Path:
        return home.expanduser().resolve()

    @field_validator("payout_debtor_iban")
    @classmethod
    def _compact_iban(cls, iban: str | None) -> str | None:
        return iban.replace(" ", "").upper() or None if iban else None

    @field_validator("attribution_path_transforms")
    @classmethod
    def _known_transforms(cls, transforms: tuple[str, ...]) -> tuple[str, ...]:
        for t in transforms:
            if t not in TRANSFORMS:
                raise ValueError(
                    f"names a path transform that does not exist: transform {t!r} is unknown; "
                    f"write a comma-separated list of {', '.join(TRANSFORMS)}"
                )
        return transforms

    @field_validator("environment")
    @classmethod
    def _known_environment(cls, value: str) -> str:
        if value not in ENVIRONMENTS:
            raise ValueError(f"is unknown: write {' or '.join(ENVIRONMENTS)}")
        return value

    @field_validator("attribution_half_life_days")
    @classmethod
    def _positive_half_life(cls, days: float) -> float:
        if days <= 0:
            raise ValueError("is too short: the half-life must be > 0 days")
        return days

    @field_validator("attribution_shapley_value")
    @classmethod
    def _shapley_value(cls, value: str) -> str:
        if value not in ("conversions", "conversion_rate"):
            raise ValueError("is unknown: the Shapley value must be 'conversions' or 'conversion_rate'")
        return value

    @model_validator(mode="after")
    def _embedded_defaults_and_weights(self) -> Settings:
        first, last = self.attribution_position_first_weight, self.attribution_position_last_weight
        if not (first >= 0 and last >= 0 and 0 < first + last <= 1):
            raise ValueError(
                f"MM_ATTRIBUTION_POSITION_FIRST_WEIGHT={first:g} and MM_ATTRIBUTION_POSITION_LAST_WEIGHT={last:g} "
                "do not fit: position-based weights must be >= 0, with 0 < first + last <= 1"
            )
        if self.production:
            missing = [
                type(self).env_name(f)
                for f in (
                    "oidc_issuer",
                    "api_signing_key",
                    "sentinelnet_webhook_secret",
                    "pii_vault_url",
                    "pii_vault_token",
                    "pii_digest_key",
                )
                if getattr(self, f) is None
            ]
            if missing:
                raise ValueError(
                    f"MM_ENVIRONMENT=production needs {', '.join(missing)}: production never falls back to the "
                    "development issuer, to keys generated on this machine or to a PII vault on its disk"
                )
        embedded = {
            "clickhouse_url": f"chdb://{self.home / 'warehouse'}",
            "event_bus_url": f"log://{self.home / 'eventlog'}",
            "object_store_url": f"file://{self.home / 'objects'}",
            "audit_archive_url": f"file://{self.home / 'audit-archive'}",
        }
        for name, url in embedded.items():
            if not getattr(self, name):
                object.__setattr__(self, name, url)  # frozen: filled once, while validating
        return self

    @classmethod
    def env_name(cls, field: str) -> str:
        alias = cls.model_fields[field].validation_alias
        return alias if isinstance(alias, str) else ENV_PREFIX + field.upper()

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """The validated settings of `environ` (default: the process environment, read now)."""
        # Variable names are case-sensitive, as on every platform we run on: mm_home is not MM_HOME.
        env = {k: v for k, v in (os.environ if environ is None else environ).items() if k.startswith(ENV_PREFIX)}
        names = {cls.env_name(f): f for f in cls.model_fields}
        for var in sorted(env):
            if var not in names and var not in NOT_SETTINGS and not var.startswith(NOT_SETTINGS_PREFIXES):
                known = {name.removeprefix(ENV_PREFIX): name for name in [*names, *NOT_SETTINGS]}
                near = difflib.get_close_matches(var.removeprefix(ENV_PREFIX), known, n=1, cutoff=0.6)
                hint = f"did you mean {known[near[0]]}?" if near else "remove it (`mm config` lists every setting)"
                raise ConfigError(f"{var} is not a setting: {hint}")
        # A blank text setting means "not set", as it always has; a blank number is a mistake and is refused.
        for var, field in names.items():
            if var in env and not env[var].strip() and cls.model_fields[field].annotation not in (int, float, Decimal):
                del env[var]
        try:
            return cls(_build_sources=((_Environ(cls, env), DefaultSettingsSource(cls)), {}))
        except ValidationError as e:
            raise ConfigError(_one_line(e, env, names)) from None

    @property
    def production(self) -> bool:
        return self.environment == "production"

    @property
    def embedded_warehouse(self) -> Path | None:
        """The chDB warehouse folder, or None when a ClickHouse server is configured."""
        parts = urlsplit(self.clickhouse_url)
        if parts.scheme != "chdb":
            return None
        return Path(parts.netloc + parts.path)

    @property
    def dagster_home(self) -> Path:
        return Path(os.environ.get("DAGSTER_HOME") or self.home / "dagster")

    @property
    def dbt_target_path(self) -> Path:
        """dbt's artifacts (manifest, saved parse, compiled SQL, run results): per user, never in the package."""
        return self.home / "dbt" / "target"

    @property
    def dbt_log_path(self) -> Path:
        """dbt.log of the dbt commands run outside a Dagster step (a step's log sits in its own target folder)."""
        return self.home / "dbt" / "logs"

    def describe(self) -> dict[str, str]:
        """Each backend as shown to people: no secrets."""
        return {
            "home": str(self.home),
            "analytics store": redact(self.clickhouse_url),
            "metadata DB": redact(self.postgres_dsn)
            if self.postgres_dsn
            else f"embedded Postgres ({self.home / 'postgres'})",
            "event bus": self.event_bus_url,
            "object store": self.object_store_url,
        }

    def __repr_args__(self):
        """repr() and logs show URLs redacted: a URL may carry a password (SecretStr fields hide themselves)."""
        for name, value in super().__repr_args__():
            yield name, redact(value) if isinstance(value, str) and "://" in value else value

    def rows(self) -> list[tuple[str, str, str, str]]:
        """(variable, effective value, "default" or "set", description) per setting, secrets as ***."""
        root = repo_root()
        unset = {
            "postgres_dsn": f"embedded Postgres ({self.home / 'postgres'})",
            "dbt_project_dir": str(root / "dbt_project") if root else "(none: set it)",
        }
        out = []
        for field, info in type(self).model_fields.items():
            value = getattr(self, field)
            if isinstance(value, SecretStr):
                shown = "***"
            elif value is None:
                shown = unset.get(field, "")
            elif isinstance(value, tuple):
                shown = ",".join(value)
            else:
                shown = redact(str(value)) if "://" in str(value) else str(value)
            out.append(
                (
                    type(self).env_name(field),
                    shown,
                    "set" if field in self.model_fields_set else "default",
                    info.description or "",
                )
            )
        return out


class _Environ(EnvSettingsSource):
    """The environment source reading a given mapping instead of os.environ (from_env's `environ`)."""

    def __init__(self, settings_cls: type[BaseSettings], environ: Mapping[str, str]):
        self._environ = environ
        super().__init__(settings_cls)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        return parse_env_vars(self._environ, self.case_sensitive, self.env_ignore_empty, self.env_parse_none_str)


_GENERIC = {
    "int_parsing": "is not a whole number",
    "float_parsing": "is not a number",
    "decimal_parsing": "is not an amount",
    "bool_parsing": "is not true or false",
    "path_type": "is not a path",
}


def _one_line(error: ValidationError, env: Mapping[str, str], names: dict[str, str]) -> str:
    """pydantic's first error as one line: the variable, its value (redacted) and what to write instead."""
    first = error.errors(include_url=False)[0]
    loc = first["loc"][0] if first["loc"] else None
    fields = {f: var for var, f in names.items()}
    var = fields.get(loc, loc if loc in names else None)
    problem = (
        str(first["ctx"]["error"]) if first["type"] == "value_error" else _GENERIC.get(first["type"], first["msg"])
    )
    if var is None:  # a check across several settings: its message names them
        return problem
    raw = env.get(var, "")
    shown = "***" if Settings.model_fields[names[var]].annotation == SecretStr | None else redact(raw)
    return f"{var}={shown!r} {problem}"
