#!/usr/bin/env bash
# Installs python3 (from Debian's packages) when it is missing: the test of docs/audit.md's Python verifier
# (cmd/authzd/app TestAuditChainPython) re-verifies a live chain with it, and skips without it.
# Idempotent and silent when python3 is there.
set -euo pipefail

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

if command -v python3 >/dev/null 2>&1; then
  exit 0
fi
as_root apt-get update -qq
as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3 >/dev/null
echo "setup-python: $(python3 --version) installed"
