#!/usr/bin/env bash
# Command 1: install, generate demo data (if missing), start the sandbox, materialize
# every asset once headless against it, print a summary.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e .
exec .venv/bin/activation-pipeline demo "$@"
