#!/usr/bin/env bash
# Installs wrk (from Debian's packages) when it is missing: the integration suite's TestLoadFaults drives
# authzd with it through outages, and skips without it (fails under AUTHZ_REQUIRE_INTEGRATION=1).
# Idempotent: a machine that has wrk is left as is.
set -euo pipefail

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

if command -v wrk >/dev/null 2>&1; then
  echo "setup-wrk: $(command -v wrk) present"
  exit 0
fi
as_root apt-get update -qq
as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null
echo "setup-wrk: $(command -v wrk) installed"
