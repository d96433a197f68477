#!/usr/bin/env bash
# A local distributed Airflow deployment from the project's venv: PostgreSQL (metadata + reports), Redis,
# api-server with the messagecentral plugin, scheduler, dag-processor, triggerer, two Celery workers and the
# MessageCentral sandbox posting delivery callbacks to the api-server, on free 127.0.0.1 ports.
#   ./scripts/cluster.sh up       start it (state and logs in .cluster/); stops what it started on failure/Ctrl-C
#   ./scripts/cluster.sh status   what runs, where, and Airflow's health
#   ./scripts/cluster.sh down     stop everything 'up' started
#   ./scripts/cluster.sh install  only set up .venv with the deploy extra (done by 'up' when needed)
# Options after up/down/status (see --help): --dir, --dags, --api-workers, --worker-concurrency.
# Needs the PostgreSQL server binaries and redis-server: apt-get install postgresql redis-server
set -euo pipefail
cd "$(dirname "$0")/.."

install() {
  ./scripts/setup.sh
  if ! .venv/bin/python -c "import airflow.providers.celery, celery, redis, asyncpg, psycopg2, psycopg" 2>/dev/null; then
    echo "cluster: installing the deploy extra (celery provider, redis client, apache-airflow[postgres])"
    # The versions the deployment tests passed with, when this Python has a constraints file (README: Deploying).
    pyver=$(.venv/bin/python -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')
    constraints=constraints/constraints-3.3.2-python${pyver}.txt
    if [ -f "$constraints" ]; then
      .venv/bin/python -m pip install --quiet -e ".[dev,deploy]" --constraint "$constraints"
    else
      .venv/bin/python -m pip install --quiet -e ".[dev,deploy]"
    fi
  fi
  missing=()
  command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
  { command -v initdb >/dev/null 2>&1 || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; } || missing+=(postgresql)
  if [ ${#missing[@]} -gt 0 ]; then
    echo "cluster: missing ${missing[*]}: apt-get install ${missing[*]}" >&2
    exit 1
  fi
}

case "${1:-}" in
  install) install; exit 0 ;;
  up) install ;;
esac
if [ ! -x .venv/bin/python ]; then
  echo "cluster: no .venv yet: run ./scripts/cluster.sh up" >&2
  exit 1
fi
exec .venv/bin/python tests/deploy/mc_cluster.py "$@"
