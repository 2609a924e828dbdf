#!/usr/bin/env bash
# The whole test suite on real services: starts Kafka, the S3 servers (SeaweedFS; versitygw, which enforces Object
# Lock), PostgreSQL and the OIDC provider, runs pytest, stops them.
set -euo pipefail
cd "$(dirname "$0")/.."

stop_services() {
  scripts/services/kafka.sh stop || true
  scripts/services/s3.sh stop || true
  .venv/bin/python scripts/services/postgres.py stop || true
  scripts/services/oidc.sh stop || true
  scripts/services/versitygw.sh stop || true
}
trap stop_services EXIT

# Lint and format first: seconds, and a failure there needs no services to explain it.
scripts/lint.sh

# First runs fetch Kafka and the OIDC provider from Maven Central, build the S3 servers and helm, install chromium;
# meanwhile a throwaway virtualenv with an empty pip cache proves constraints.txt installs on a machine that has
# nothing left over.
scripts/services/kafka.sh install &
kafka_install=$!
scripts/services/s3.sh install &
s3_install=$!
scripts/services/oidc.sh install &
oidc_install=$!
scripts/services/browser.sh install &
browser_install=$!
scripts/services/versitygw.sh install &
versitygw_install=$!
scripts/services/helm.sh install &
helm_install=$!
.venv/bin/python scripts/constraints.py resolve &
resolve=$!
wait "$kafka_install"
wait "$s3_install"
wait "$oidc_install"
wait "$browser_install"
wait "$versitygw_install"
wait "$helm_install"
wait "$resolve"

scripts/services/kafka.sh start
scripts/services/s3.sh start
scripts/services/oidc.sh start
scripts/services/versitygw.sh start
.venv/bin/python scripts/services/postgres.py start

export MM_TEST_KAFKA="127.0.0.1:${KAFKA_PORT:-19092}"
export MM_TEST_S3_ENDPOINT="http://127.0.0.1:${S3_PORT:-18333}"
export MM_TEST_S3_ACCESS_KEY="${S3_ACCESS_KEY:-mmtest}"
export MM_TEST_S3_SECRET_KEY="${S3_SECRET_KEY:-mmtest-secret}"
export MM_TEST_LOCK_S3_ENDPOINT="http://127.0.0.1:${VERSITYGW_PORT:-18334}"
export MM_TEST_LOCK_S3_ACCESS_KEY="${VERSITYGW_ACCESS_KEY:-mmlock}"
export MM_TEST_LOCK_S3_SECRET_KEY="${VERSITYGW_SECRET_KEY:-mmlock-secret}"
MM_TEST_HELM="$(scripts/services/helm.sh path)"
export MM_TEST_HELM
export MM_TEST_OIDC_ISSUER="http://127.0.0.1:${OIDC_PORT:-18480}/mm"
MM_TEST_POSTGRES_DSN="$(.venv/bin/python scripts/services/postgres.py dsn)"
export MM_TEST_POSTGRES_DSN

.venv/bin/pytest "$@"
