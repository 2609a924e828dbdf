"""Fixtures: isolated state per test (temp warehouse, fresh topic, bucket and database) on real services.

Services are started by scripts/test.sh (`make test`), which exports where they listen. Outside CI a
missing service skips the tests that need it; in CI (CI=true) it fails them.
"""

from __future__ import annotations

import os
import socket
import uuid
from contextlib import contextmanager
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BACKEND_VARS = (
    "MM_CLICKHOUSE_URL",
    "MM_POSTGRES_DSN",
    "MM_EVENT_BUS",
    "MM_OBJECT_STORE",
    "MM_EVENTS_TOPIC",
    "DAGSTER_HOME",
)


def require_service(name: str, value: str | None, how: str) -> str:
    if value:
        return value
    message = f"{name} is not running: {how}"
    if os.environ.get("CI") == "true":
        pytest.fail(f"{message} (a missing service is a failure in CI)")
    pytest.skip(message)


def _reachable(hostport: str) -> bool:
    host, port = hostport.rsplit(":", 1)
    try:
        with socket.create_connection((host, int(port)), timeout=2):
            return True
    except OSError:
        return False


@pytest.fixture(scope="session")
def parsed_dbt_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The dbt project prepared once per session as the platform prepares it (about 7 s): each MM_HOME starts
    from it, as a user's second command starts from the first one's parse. A stale or foreign parse is redone by
    dbt itself."""
    from dagster_dbt import DbtProject

    from mm_pipelines.assets.dbt import prepare
    from mm_pipelines.config import dbt_project_dir

    out = tmp_path_factory.mktemp("dbt-parse")
    project = dbt_project_dir()
    prepare(DbtProject(project_dir=project, profiles_dir=project, target_path=out / "target"))
    return out / "target"


@pytest.fixture
def mm_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, parsed_dbt_project: Path) -> Path:
    """An empty embedded platform: every backend defaults to a folder under this MM_HOME."""
    import shutil

    from mm_pipelines.config import Settings

    for var in BACKEND_VARS:
        monkeypatch.delenv(var, raising=False)
    home = tmp_path / "mm"
    monkeypatch.setenv("MM_HOME", str(home))
    target = Settings.from_env().dbt_target_path
    target.mkdir(parents=True)
    for artifact in ("manifest.json", "partial_parse.msgpack"):
        shutil.copy2(parsed_dbt_project / artifact, target / artifact)  # keeps the mtime: newer than the models
    return home


@pytest.fixture
def warehouse(tmp_path: Path):
    from mm_pipelines.stores.clickhouse import Warehouse

    return Warehouse(f"chdb://{tmp_path / 'warehouse'}")


@pytest.fixture(scope="session")
def kafka_bootstrap() -> str:
    value = os.environ.get("MM_TEST_KAFKA")
    if value and not _reachable(value):
        pytest.fail(
            f"MM_TEST_KAFKA={value} does not accept connections: is the broker up? (scripts/services/kafka.sh status)"
        )
    return require_service(
        "Kafka", value, "run `make test`, or scripts/services/kafka.sh start and export MM_TEST_KAFKA=127.0.0.1:19092"
    )


@pytest.fixture
def kafka_topic() -> str:
    return f"mm.test.{uuid.uuid4().hex[:12]}"


@pytest.fixture
def kafka_bus(kafka_bootstrap: str):
    from mm_pipelines.stores.bus import KafkaEventBus

    bus = KafkaEventBus(f"kafka://{kafka_bootstrap}", read_timeout_s=30)
    yield bus
    bus.close()


@pytest.fixture(scope="session")
def s3_endpoint() -> str:
    return require_service(
        "The S3 server",
        os.environ.get("MM_TEST_S3_ENDPOINT"),
        "run `make test`, or scripts/services/s3.sh start and export MM_TEST_S3_ENDPOINT",
    )


@pytest.fixture
def s3_store(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch):
    """A fresh bucket on the real S3-compatible server."""
    from mm_pipelines.stores.objects import S3ObjectStore

    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", os.environ.get("MM_TEST_S3_ACCESS_KEY", "mmtest"))
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", os.environ.get("MM_TEST_S3_SECRET_KEY", "mmtest-secret"))
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    store = S3ObjectStore(f"s3://mm-test-{uuid.uuid4().hex[:12]}/platform")
    store.ensure_bucket()
    return store


@pytest.fixture(scope="session")
def postgres_server_dsn() -> str:
    return require_service(
        "PostgreSQL",
        os.environ.get("MM_TEST_POSTGRES_DSN"),
        "run `make test`, or python scripts/services/postgres.py start and export MM_TEST_POSTGRES_DSN",
    )


def fresh_database(server_dsn: str, template: str | None = None) -> str:
    """CREATE DATABASE with a unique name (a copy of `template` if given); its DSN."""
    import psycopg
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    name = f"mm_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server_dsn, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else ""))
    return make_conninfo(**{**conninfo_to_dict(server_dsn), "dbname": name})


def dsn_url(conninfo: str) -> str:
    """MM_POSTGRES_DSN takes a URL; the test server's DSN is key=value."""
    from urllib.parse import urlencode

    from psycopg.conninfo import conninfo_to_dict

    p = conninfo_to_dict(conninfo)
    query = urlencode({k: v for k, v in p.items() if k in ("host", "port")})
    return f"postgresql://{p.get('user', '')}@/{p['dbname']}?{query}"


def drop_database(server_dsn: str, dsn: str) -> None:
    import psycopg
    from psycopg.conninfo import conninfo_to_dict

    with psycopg.connect(server_dsn, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{conninfo_to_dict(dsn)["dbname"]}" WITH (FORCE)')


@pytest.fixture(scope="session")
def postgres_at_head(postgres_server_dsn: str) -> str:
    """A database migrated to head once per session (`mm db upgrade`, as a deploy does); tests get copies of it."""
    from psycopg.conninfo import conninfo_to_dict

    from mm_pipelines.stores.postgres import upgrade

    dsn = fresh_database(postgres_server_dsn)
    upgrade(dsn)
    yield conninfo_to_dict(dsn)["dbname"]
    drop_database(postgres_server_dsn, dsn)


@pytest.fixture
def postgres_dsn(postgres_server_dsn: str, postgres_at_head: str) -> str:
    """A fresh database at the code's schema revision on the real PostgreSQL server, dropped afterwards."""
    dsn = fresh_database(postgres_server_dsn, template=postgres_at_head)
    yield dsn
    drop_database(postgres_server_dsn, dsn)


@pytest.fixture(scope="session")
def oidc_issuer() -> str:
    return require_service(
        "The OIDC provider",
        os.environ.get("MM_TEST_OIDC_ISSUER"),
        "run `make test`, or scripts/services/oidc.sh start and export MM_TEST_OIDC_ISSUER=http://127.0.0.1:18480/mm",
    )


def provider_token(issuer: str, subject: str, role, scope_extra: str = "") -> str:
    """An access token from the OIDC provider (mock-oauth2-server): one role, the second factor unless amr:pwd."""
    scope = " ".join(s for s in (f"role:{role.value}" if role else "", scope_extra) if s) or "openid"
    import httpx

    response = httpx.post(
        f"{issuer}/token",
        data={
            "grant_type": "client_credentials",
            "client_id": "mm-tests",
            "client_secret": "unused",
            "subject": subject,
            "scope": scope,
        },
        timeout=10,
    )
    response.raise_for_status()
    return response.json()["access_token"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def serving(command: list[str], port: int, ready_path: str, env: dict | None = None, timeout_s: float = 60):
    """Run a server process (the API, a fake third party) until the block ends; its base URL, once `ready_path`
    answers. A server that does not come up fails the test with the end of its output."""
    import subprocess
    import tempfile
    import time

    import httpx

    url = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryFile() as output:
        process = subprocess.Popen(command, env=env, stdout=output, stderr=subprocess.STDOUT, cwd=ROOT)
        try:
            deadline = time.monotonic() + timeout_s
            while True:
                try:
                    httpx.get(url + ready_path, timeout=1)
                    break
                except httpx.HTTPError:
                    if process.poll() is not None or time.monotonic() > deadline:
                        output.seek(0)
                        pytest.fail(f"{command[0]} did not answer on {url}:\n{output.read().decode()[-2000:]}")
                    time.sleep(0.2)
            yield url
        finally:
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
