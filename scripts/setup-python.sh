#!/usr/bin/env bash
# Installs Debian's python3 with the packages the Python client (clients/python) and its tests use:
# python3-httpx, python3-fastapi, python3-pytest. The test of docs/audit.md's Python verifier
# (cmd/authzd/app TestAuditChainPython) needs python3 alone.
# Idempotent: a machine that has them all is left as is. The Makefile's PYTHON is /usr/bin/python3,
# which sees these packages (a python3 of pyenv or a virtualenv earlier on PATH does not).
set -euo pipefail

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

packages=(python3 python3-httpx python3-fastapi python3-pytest)

if /usr/bin/python3 -c 'import httpx, fastapi, pytest' >/dev/null 2>&1; then
  echo "setup-python: $(/usr/bin/python3 --version) with httpx, fastapi and pytest present"
  exit 0
fi
as_root apt-get update -qq
as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${packages[@]}" >/dev/null
/usr/bin/python3 -c 'import httpx, fastapi, pytest; print("setup-python: httpx", httpx.__version__, "fastapi", fastapi.__version__, "pytest", pytest.__version__)'
