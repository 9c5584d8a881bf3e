#!/usr/bin/env bash
# Installs Debian's chromium when it is missing: the console's browser test (cmd/authzd/app TestConsoleBrowser)
# drives it headless with chromedp, and skips loudly without it (fails under AUTHZ_REQUIRE_BROWSER=1).
# Idempotent: a machine that has chromium is left as is.
set -euo pipefail

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

if command -v chromium >/dev/null 2>&1; then
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "setup-chromium: not a Debian machine; install Chromium (the console's browser test skips without it)" >&2
  exit 0
fi
if [ "$(id -u)" -ne 0 ] && ! sudo -n true 2>/dev/null; then
  echo "setup-chromium: installing Chromium needs root; run: sudo apt-get install -y chromium (the console's browser test skips until then)" >&2
  exit 0
fi
as_root apt-get update -qq
as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null
echo "setup-chromium: $(chromium --version 2>/dev/null || echo chromium) installed"
