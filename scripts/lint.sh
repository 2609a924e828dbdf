#!/usr/bin/env bash
# Lint and format checks; scripts/test.sh runs them before the tests. `scripts/lint.sh --fix` applies the fixes.
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ "${1:-}" == "--fix" ]]; then
  .venv/bin/ruff check --fix .
  .venv/bin/ruff format .
  .venv/bin/python scripts/sqlfluff_dbt.py fix
else
  .venv/bin/ruff check .
  .venv/bin/ruff format --check .
  .venv/bin/python scripts/sqlfluff_dbt.py lint
fi
