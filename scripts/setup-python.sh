#!/usr/bin/env bash
# Installs Debian's python3 with the packages the Python client (clients/python) and its tests use:
# python3-httpx, python3-fastapi, python3-pytest. The test of docs/audit.md's Python verifier
# (cmd/authzd/app TestAuditChainPython) needs python3 alone.
# Idempotent and quiet when all is present. The Makefile's PYTHON is /usr/bin/python3, which sees these
# packages (a python3 of pyenv or a virtualenv earlier on PATH does not).
set -euo pipefail

packages=(python3 python3-httpx python3-fastapi python3-pytest)

if /usr/bin/python3 -c 'import httpx, fastapi, pytest' >/dev/null 2>&1; then
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "setup-python: not a Debian machine; install Python >= 3.11 with httpx >= 0.23, fastapi >= 0.92 and pytest >= 7.2 at /usr/bin/python3 (or run make with PYTHON=<your python3>)" >&2
  exit 1
fi
if [ "$(id -u)" -eq 0 ]; then
  as_root() { "$@"; }
elif command -v sudo >/dev/null 2>&1 && { [ -t 0 ] || sudo -n true 2>/dev/null; }; then
  as_root() { sudo "$@"; }
else
  echo "setup-python: installing the Python packages needs root; run: sudo apt-get install -y ${packages[*]}" >&2
  exit 1
fi
as_root apt-get update -qq
as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${packages[@]}" >/dev/null
/usr/bin/python3 -c 'import httpx, fastapi, pytest; print("setup-python: httpx", httpx.__version__, "fastapi", fastapi.__version__, "pytest", pytest.__version__)'
