#!/usr/bin/env bash
# Installs python3 (from Debian's packages) when it is missing: the test of docs/audit.md's Python verifier
# (cmd/authzd/app TestAuditChainPython) re-verifies a live chain with it, and skips without it.
# Idempotent and silent when python3 is there.
set -euo pipefail

if command -v python3 >/dev/null 2>&1; then
  exit 0
fi
# Without python3 that one test skips, so a machine where it cannot be installed here is told how, not stopped.
if ! command -v apt-get >/dev/null 2>&1; then
  echo "setup-python: no python3 and no apt-get; install python3 to run the audit verifier's test (it skips without it)"
  exit 0
fi
if [ "$(id -u)" -eq 0 ]; then
  as_root() { "$@"; }
elif command -v sudo >/dev/null 2>&1 && { [ -t 0 ] || sudo -n true 2>/dev/null; }; then
  as_root() { sudo "$@"; }
else
  echo "setup-python: no python3, and installing it needs root; run: sudo apt-get install -y python3 (the audit verifier's test skips until then)"
  exit 0
fi
as_root apt-get update -qq
as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3 >/dev/null
echo "setup-python: $(python3 --version) installed"
