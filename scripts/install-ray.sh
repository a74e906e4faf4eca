#!/usr/bin/env bash
# Installs Ray (the `ray` CLI and its dashboard, which serves the Job Submission REST API the Ray backend talks
# to) into its own virtualenv, ${RAY_VENV:-.venv-ray}: aidc never imports ray, and Ray's dependency pins must
# not fight aidc's. Idempotent, and quick when the pinned version is already there. A relative RAY_VENV is
# taken from the repository root, where tests/fixtures/ray.py looks for it.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

RAY_VERSION="2.60.0"
RAY_VENV="${RAY_VENV:-.venv-ray}"
PYTHON="${PYTHON:-python3}"

if [[ -x "$RAY_VENV/bin/python" ]] \
    && "$RAY_VENV/bin/python" -c "import ray, sys; sys.exit(ray.__version__ != '$RAY_VERSION')" 2>/dev/null \
    && [[ -x "$RAY_VENV/bin/ray" ]]; then
    exit 0
fi

if [[ ! -x "$RAY_VENV/bin/python" ]]; then
    "$PYTHON" -m venv "$RAY_VENV"
fi
"$RAY_VENV/bin/python" -m pip install --quiet --upgrade pip
# [default] brings the dashboard (aiohttp, ...): without it the head serves no jobs API.
"$RAY_VENV/bin/python" -m pip install --quiet "ray[default]==$RAY_VERSION"
"$RAY_VENV/bin/ray" --version
