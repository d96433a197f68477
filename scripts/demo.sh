#!/usr/bin/env bash
# The demo: set up (if needed), then run a campaign against the local MessageCentral sandbox.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
exec .venv/bin/python scripts/demo.py "$@"
