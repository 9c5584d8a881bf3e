#!/usr/bin/env bash
# Makes the root filesystem of the local Postgres image: Debian SUITE (minbase) with postgresql-MAJOR,
# from the Debian mirror in this machine's apt sources, written as a tarball for `docker import`.
#   docker/postgres/rootfs.sh SUITE MAJOR OUT.tar
# Needs mmdebstrap (apt-get install mmdebstrap) and root. AUTHZ_APT_SOURCES names another apt sources
# file (one-line or deb822) to take the mirror from.
set -euo pipefail
suite=$1 major=$2 out=$3

sources=${AUTHZ_APT_SOURCES:-}
if [ -z "$sources" ]; then
  for f in /etc/apt/sources.list.d/debian.sources /etc/apt/sources.list; do
    if [ -s "$f" ] && grep -q "^[^#]*$suite" "$f"; then sources=$f; break; fi
  done
fi
if [ -z "$sources" ]; then
  echo "rootfs: no apt sources for $suite found; set AUTHZ_APT_SOURCES" >&2
  exit 1
fi

# The package's postinst would create and configure a cluster "main"; the entrypoint runs initdb itself,
# so that one is removed again. Docs, man pages, locales and apt's lists are left out to keep it small.
mmdebstrap --quiet --variant=minbase --mode=root --format=tar \
  --include="postgresql-$major" \
  --aptopt='APT::Install-Recommends "false"' \
  --dpkgopt='path-exclude=/usr/share/doc/*' \
  --dpkgopt='path-include=/usr/share/doc/*/copyright' \
  --dpkgopt='path-exclude=/usr/share/man/*' \
  --dpkgopt='path-exclude=/usr/share/locale/*' \
  --dpkgopt='path-exclude=/usr/share/info/*' \
  --customize-hook="rm -rf \"\$1/var/lib/postgresql/$major/main\" \"\$1/etc/postgresql/$major/main\"" \
  --customize-hook='chroot "$1" install -d -o postgres -g postgres -m 0700 /var/lib/postgresql/data' \
  --customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*.bin' \
  "$suite" "$out.tmp" "$sources"
mv "$out.tmp" "$out"
