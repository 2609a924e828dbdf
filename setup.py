"""The Market & Media data platform: Dagster assets, dbt on ClickHouse, and the `mm` CLI."""

from setuptools import find_packages, setup

# Dagster core and its integration libraries are released in lockstep; an unpinned `dagster`
# makes pip backtrack the integrations to ancient releases, so they are pinned together.
DAGSTER = "1.13.27"
DAGSTER_LIBS = "0.29.27"

setup(
    name="mm_pipelines",
    version="0.1.0",
    description="Attribution, campaign performance and creator royalties on Dagster, dbt and ClickHouse",
    packages=find_packages(include=["mm_pipelines", "mm_pipelines.*"]),
    python_requires=">=3.11,<3.12",
    install_requires=[
        f"dagster=={DAGSTER}",
        f"dagster-webserver=={DAGSTER}",
        f"dagster-dbt=={DAGSTER_LIBS}",
        f"dagster-aws=={DAGSTER_LIBS}",
        f"dagster-k8s=={DAGSTER_LIBS}",
        f"dagster-postgres=={DAGSTER_LIBS}",
        # dbt-core 1.12 pulls a parser that downloads a binary at install time; 1.11 installs cleanly.
        "dbt-core>=1.11,<1.12",
        "dbt-clickhouse==1.10.3",
        "clickhouse-connect[chdb]==1.12.0",
        "chdb==4.4.0",
        "kafka-python==3.0.12",
        # librdkafka: the data path (produce, range reads); see KafkaEventBus for the measurements.
        "confluent-kafka==2.16.1",
        "boto3>=1.40,<2",
        "psycopg[binary]>=3.2,<4",
        # The API keeps its connections: opening one costs ~1.8 ms of a ~5 ms write transaction (benchmarks/api.py).
        "psycopg-pool==3.3.3",
        "pgserver==0.1.4",
        # [connect] brings grpcio-status and googleapis-common-protos: without them pyspark, which
        # Great Expectations imports, calls sys.exit(0) inside Dagster's multiprocess step workers.
        "pyspark[connect]>=4.0,<5",
        "great-expectations>=1.20,<2",
        # pyspark 4 does not yet support pandas 3.
        "pandas>=2.2,<3",
        "pyarrow>=18",
        "typer>=0.15",
        "rich>=13",
        # ISO 20022 pain.001 credit transfers for payout exports, validated against the XSD.
        "sepaxml>=2.7,<3",
        # libxml2 validates a 60,000-transfer pain.001 against the XSD in a fraction of a second (xmlschema: 20 s).
        "lxml>=5",
        "cryptography>=44",
        "PyYAML>=6",
        # One typed settings model over every MM_* variable (mm_pipelines.config).
        "pydantic-settings==2.16.3",
        # The metadata DB's schema: SQLAlchemy Core tables, numbered Alembic migrations.
        "alembic==1.20.1",
        "SQLAlchemy>=2.0,<3",
        "filelock==4.3.1",
        # The asset service (`mm api`): FastAPI on uvicorn, OIDC bearer tokens verified with PyJWT.
        "fastapi==0.165.0",
        "PyJWT[crypto]==2.15.1",
        "httpx==0.29.0",
        # The admin UI: server-rendered pages and their forms.
        "Jinja2==3.1.6",
        "python-multipart==0.0.34",
        # Image thumbnails and the built-in scanner's perceptual hash.
        "pillow==13.0.0",
    ],
    extras_require={
        "dev": [
            "pytest>=8",
            "pytest-timeout>=2.3",
            "hypothesis>=6.100",
            "requests>=2.31",
            # Layer contracts between the package's modules (tests/unit/test_import_layers.py).
            "import-linter==2.17",
            "ruff==0.17.6",
            "sqlfluff==4.4.0",
            "sqlfluff-templater-dbt==4.4.0",
            # Property-based fuzzing of the API against its own OpenAPI schema.
            "schemathesis==4.32.5",
            # The admin UI's browser tests drive Debian's chromium through its chromedriver.
            "selenium==4.50.0",
            # Offline Kubernetes API schemas that the rendered Helm manifests are validated against (tests/deploy).
            "kubernetes-validate==1.37.0",
        ],
    },
    entry_points={
        "console_scripts": [
            "mm=mm_pipelines.cli:main",
            # dbt with the embedded-warehouse hook; dagster-dbt runs this instead of plain `dbt`.
            "mm-dbt=mm_pipelines.dbt_cli:main",
        ],
    },
    include_package_data=True,
    # Without a MANIFEST.in, include_package_data adds nothing: non-Python files that ship are listed here.
    # (The migrations themselves are packages; the template is what `alembic revision` writes new ones from.)
    package_data={"mm_pipelines.stores.migrations": ["script.py.mako"], "mm_pipelines.api": ["templates/*.html"]},
)
