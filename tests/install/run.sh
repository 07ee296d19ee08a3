#!/usr/bin/env bash
# The user's install on one Python (make test-py38, make test-py310; CI runs both):
#   tests/install/run.sh NAME PYTHON VENV
# A fresh VENV of PYTHON gets what the README's runtime install gives it (`pip install .` of this
# checkout, nothing more: no pytest, no torch); the main venv makes the fixtures and runs
# tests/install with its pytest, which drives VENV's commands in subprocesses. Skips in one line
# when PYTHON is not there.
set -euo pipefail
name=$1 py=$2 venv=$3
cd "$(dirname "$0")/../.."
if [ ! -x "$py" ]; then echo "$name: skipped, no Python at $py"; exit 0; fi
rm -rf "$venv"
"$py" -m venv "$venv"
had_build=$([ -e build ] && echo yes || true)
# the README's runtime install, as a user types it (pip's own notices aside)
"$venv/bin/pip" install -q --disable-pip-version-check . 2>&1 | grep -v "^WARNING: Location" || true
"$venv/bin/python" -c 'import enet' || { echo "$name: pip install . failed" >&2; exit 1; }
[ -n "$had_build" ] || rm -rf build  # setuptools' build folder in the checkout, when this made it
fixtures="$venv/fixtures"
.venv/bin/python tests/install/make_fixtures.py "$fixtures" >/dev/null
ENET_INSTALL_VENV="$PWD/$venv" ENET_INSTALL_FIXTURES="$PWD/$fixtures" \
  .venv/bin/python -m pytest -q -p no:cacheprovider tests/install
