#!/usr/bin/env bash
# Set up (if needed) and run the benchmarks: prints the table and writes benchmarks/results.json.
# --quick: small sizes, checks that every benchmark runs and yields finite ratios (CI; under two minutes).
# Other arguments go to benchmarks/run.py (--only NAME, --out FILE, --repeats N).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
if ! .venv/bin/python -c "import pandas, psutil" 2>/dev/null; then
  # The benchmarks' own extra: pandas (the workbook baseline) is not a runtime dependency.
  .venv/bin/python -m pip install --quiet -e ".[dev,bench]"
fi
exec .venv/bin/python benchmarks/run.py "$@"
