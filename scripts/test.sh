#!/usr/bin/env bash
# Command 2: install with the test extra (and the Postgres and Celery extras the deployment tests use) and run the test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e '.[test,postgres,celery]'
PYTHON=.venv/bin/python ./scripts/lint.sh
# two processes (TEST_WORKERS=0: none, all in this one), each taking whole test files: a file's fixtures are set up once
exec .venv/bin/python -m pytest -n "${TEST_WORKERS:-2}" --dist loadfile "$@"
