#!/usr/bin/env bash
# What a maintainer runs before a commit, and CI before the tests: ruff (lint + format) and mypy.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
"$PY" -m ruff check .
"$PY" -m ruff format --check .
"$PY" -m mypy
