#!/usr/bin/env bash
# The Airflow x Python range we claim (pyproject.toml), tested: one virtualenv per cell under .venvs/, Airflow
# pinned and installed the way the README tells users to (a constraints file for that Airflow and Python;
# without one, the holds below), then the cell's suites. Then the package: sdist + wheel built, `twine check`ed,
# the wheel installed alone in a clean virtualenv, where `airflow providers list` must show the provider.
#
#   ./scripts/matrix.sh                  every cell, then the package check
#   ./scripts/matrix.sh af3.1-py3.10     one cell (names below); `package` for the package check only
#   ./scripts/matrix.sh --freeze CELL    (re)install CELL with the holds and write its constraints file
#
# The default suite (./scripts/test.sh, Airflow 3.3.2 on Python 3.11 in .venv) is the fourth cell: .ci/run runs it
# first. A cell's venv is reused while pyproject.toml and its constraints file are unchanged.
set -euo pipefail
cd "$(dirname "$0")/.."

#     name          airflow  python  suites
CELLS=(
  "af3.1-py3.10   3.1.8    3.10    unit,integration"
  "af3.2-py3.12   3.2.2    3.12    unit"
  "af3.3-py3.13   3.3.2    3.13    unit,integration"
)
# What an unconstrained pip would pick and Airflow cannot run with: FastAPI 0.137+, Cadwyn 8+ and svcs 26+ break
# Airflow 3.1/3.2's api-server; cryptography 47+ breaks Airflow 3.1's Fernet (trigger kwargs, connections).
declare -A HOLDS=(
  [3.1.8]="fastapi<0.137 cadwyn<8 svcs<26 cryptography<47"
  [3.2.2]="fastapi<0.137 cadwyn<8 svcs<26"
  [3.3.2]=""
)
# Airflow 3.1 differs in two places the integration suite checks (README, "Supported versions"): the connection
# form's custom fields (provider-info conn-fields) arrived in 3.2, and so did the api-server access log the
# plugin quiets.
declare -A DESELECT=(
  [3.1.8]="tests/integration/test_provider_registration.py::test_connection_form_widgets_and_behaviour
           tests/integration/test_plugin.py::test_successful_callbacks_do_not_flood_the_access_log"
)

find_python() {  # the newest pyenv build of python3.X, else python3.X on PATH (a pyenv shim may not run it)
  local version=$1 candidate
  for candidate in $(ls -d "${PYENV_ROOT:-$HOME/.pyenv}"/versions/"$version".*/bin/"python$version" 2>/dev/null |
    sort -rV) "$(command -v "python$version" || true)"; do
    if [ -n "$candidate" ] && "$candidate" -c pass 2>/dev/null; then echo "$candidate"; return 0; fi
  done
  return 1
}

constraints_of() { echo "constraints/constraints-$1-python$2.txt"; }

stamp_of() {  # venv constraints: the marker of an install from this pyproject.toml and constraints file
  local files=(pyproject.toml)
  [ -f "$2" ] && files+=("$2")
  echo "$1/.installed-$(cat "${files[@]}" | sha1sum | cut -c1-12)"
}

install_cell() {  # name airflow python [freeze]
  local name=$1 airflow=$2 python=$3 freeze=${4:-} venv=.venvs/$1 interpreter constraints stamp
  constraints=$(constraints_of "$airflow" "$python")
  stamp=$(stamp_of "$venv" "$constraints")
  if [ -z "$freeze" ] && [ -f "$stamp" ]; then return 0; fi
  interpreter=$(find_python "$python") || { echo "matrix: no python$python (pyenv install $python)" >&2; return 1; }
  rm -rf "$venv"
  "$interpreter" -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --upgrade pip
  if [ -z "$freeze" ] && [ -f "$constraints" ]; then
    "$venv/bin/python" -m pip install --quiet "apache-airflow==$airflow" -e ".[dev]" --constraint "$constraints"
  else
    # shellcheck disable=SC2086  # the holds are separate requirements
    "$venv/bin/python" -m pip install --quiet "apache-airflow==$airflow" ${HOLDS[$airflow]} -e ".[dev]"
  fi
  if [ -n "$freeze" ]; then
    { echo "# pip freeze of the $name cell (scripts/matrix.sh --freeze $name): apache-airflow $airflow on Python"
      echo "# $python, installed with the holds '${HOLDS[$airflow]}'. Not Airflow's official constraints file."
      "$venv/bin/python" -m pip freeze --exclude-editable; } > "$constraints"
    stamp=$(stamp_of "$venv" "$constraints")
  fi
  touch "$stamp"
}

RESULTS=()
FAILED=0

record() {  # name airflow python what seconds status detail
  RESULTS+=("$(printf '| %-13s | %-7s | %-6s | %-24s | %5ss | %-6s | %s |' "$@")")
  [ "$6" = passed ] || FAILED=1
}

run_suite() {  # name airflow python suite
  local name=$1 airflow=$2 python=$3 suite=$4 venv=.venvs/$1 start log status summary args=()
  log=build/matrix/$name-$suite.log
  start=$SECONDS
  case $suite in
    unit) args=(tests/unit) ;;
    integration)
      args=(tests/integration)
      for test in ${DESELECT[$airflow]:-}; do args+=(--deselect "$test"); done ;;
  esac
  echo "matrix: $name $suite (Airflow $airflow, Python $python)"
  if "$venv/bin/python" -m pytest -p no:cacheprovider -q "${args[@]}" >"$log" 2>&1; then status=passed; else status=failed; fi
  summary=$(grep -E '^=+ .*(passed|failed|error).* =+$|^[0-9]+ (passed|failed)' "$log" | tail -1 | tr -d '=' | xargs)
  record "$name" "$airflow" "$python" "$suite" "$((SECONDS - start))" "$status" "${summary:-see $log}"
  [ "$status" = passed ] || tail -40 "$log"
}

run_cell() {  # name airflow python suites
  local name=$1 airflow=$2 python=$3 suites=$4 start=$SECONDS
  echo "matrix: $name: installing apache-airflow==$airflow on Python $python"
  if ! install_cell "$name" "$airflow" "$python" >"build/matrix/$name-install.log" 2>&1; then
    tail -20 "build/matrix/$name-install.log"
    record "$name" "$airflow" "$python" "install" "$((SECONDS - start))" failed "see build/matrix/$name-install.log"
    return
  fi
  record "$name" "$airflow" "$python" "install" "$((SECONDS - start))" passed \
    "$(.venvs/"$name"/bin/python -m pip list 2>/dev/null | grep -iE '^apache-airflow(-task-sdk)? ' | xargs)"
  for suite in ${suites//,/ }; do run_suite "$name" "$airflow" "$python" "$suite"; done
}

check_package() {  # build, twine check, the wheel alone in a clean venv, `airflow providers list` there
  local start=$SECONDS venv=$PWD/.venvs/wheel-only home python tools=.venvs/package-tools log=build/matrix/package.log
  echo "matrix: package: sdist + wheel, twine check, the wheel alone in a clean venv"
  home=$(mktemp -d)
  python=$(find_python 3.11) || python=python3
  if {
    rm -rf dist "$venv" && mkdir -p dist
    [ -x "$tools/bin/twine" ] || { "$python" -m venv "$tools" && "$tools/bin/pip" install --quiet build twine; }
    "$tools/bin/python" -m build --outdir dist . &&
      "$tools/bin/twine" check --strict dist/* &&
      "$tools/bin/python" - dist/*.whl dist/*.tar.gz <<'PY' &&
import sys, tarfile, zipfile
wheel, sdist = sys.argv[1:]
assert any(n.endswith(".dist-info/licenses/LICENSE") for n in zipfile.ZipFile(wheel).namelist()), "no LICENSE in the wheel"
assert any(n.endswith("/LICENSE") for n in tarfile.open(sdist).getnames()), "no LICENSE in the sdist"
print("LICENSE in both artifacts")
PY
      "$python" -m venv "$venv" &&
      "$venv/bin/pip" install --quiet dist/*.whl &&
      (cd "$home" && AIRFLOW_HOME="$home" "$venv/bin/airflow" providers list) >build/matrix/providers.txt &&
      cat build/matrix/providers.txt && grep '^airflow-provider-messagecentral ' build/matrix/providers.txt >/dev/null
  } >"$log" 2>&1; then
    record package "$("$venv/bin/python" -c 'import airflow; print(airflow.__version__)')" \
      "$("$venv/bin/python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')" \
      "build, twine, providers" "$((SECONDS - start))" passed "$(cd dist && ls | xargs)"
  else
    tail -30 "$log"
    record package - - "build, twine, providers" "$((SECONDS - start))" failed "see $log"
  fi
  rm -rf "$home"
}

mkdir -p build/matrix .venvs
if [ "${1:-}" = --freeze ]; then
  for cell in "${CELLS[@]}"; do
    read -r name airflow python _ <<<"$cell"
    if [ "$name" = "${2:?--freeze CELL}" ]; then install_cell "$name" "$airflow" "$python" freeze; exit 0; fi
  done
  echo "matrix: no cell $2" >&2; exit 2
fi
started=$SECONDS
for cell in "${CELLS[@]}"; do
  read -r name airflow python suites <<<"$cell"
  if [ $# -eq 0 ] || [[ " $* " == *" $name "* ]]; then run_cell "$name" "$airflow" "$python" "$suites"; fi
done
if [ $# -eq 0 ] || [[ " $* " == *" package "* ]]; then check_package; fi

{
  echo "| cell          | airflow | python | step                     |  time  | result | detail |"
  echo "|---------------|---------|--------|--------------------------|--------|--------|--------|"
  printf '%s\n' "${RESULTS[@]}"
  echo "matrix: $((SECONDS - started)) s in all"
} | tee build/matrix/results.md
exit $FAILED
