#!/usr/bin/env bash
# Set up (if needed) and run the default test suite: unit + integration (sandbox, real Airflow,
# SQLite and a real PostgreSQL started by the tests). Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
exec .venv/bin/python -m pytest "$@"
