#!/usr/bin/env bash
# Installs (from Debian's packages) the tools the Docker side of the tests needs, when a Docker engine is
# there and they are not: mmdebstrap (docker/images.sh makes the Postgres image's root filesystem with it)
# and Compose (TestCompose; the v2 plugin or Debian's docker-compose). Idempotent and silent when all is in
# place; without a Docker engine it does nothing, and the tests run in the local world.
set -euo pipefail

if ! docker version >/dev/null 2>&1; then
  exit 0
fi
want=()
command -v mmdebstrap >/dev/null 2>&1 || want+=(mmdebstrap)
if ! docker compose version >/dev/null 2>&1 && ! command -v docker-compose >/dev/null 2>&1; then
  want+=(docker-compose)
fi
if [ ${#want[@]} -gt 0 ]; then
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "setup-docker: the Docker world needs ${want[*]}; install them, or run the tests without Docker: AUTHZ_TEST_DOCKER=0 make test" >&2
    exit 1
  fi
  if [ "$(id -u)" -eq 0 ]; then
    as_root() { "$@"; }
  elif command -v sudo >/dev/null 2>&1 && { [ -t 0 ] || sudo -n true 2>/dev/null; }; then
    as_root() { sudo "$@"; }
  else
    echo "setup-docker: the Docker world needs ${want[*]}, and installing needs root; run: sudo apt-get install -y ${want[*]}" >&2
    echo "setup-docker: or run the tests without Docker: AUTHZ_TEST_DOCKER=0 make test" >&2
    exit 1
  fi
  echo "setup-docker: installing ${want[*]} from Debian's packages"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${want[@]}" >/dev/null
  echo "setup-docker: mmdebstrap and Compose present"
fi
