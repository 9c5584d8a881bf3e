#!/usr/bin/env bash
# `make images`: builds every image the integration suite and docker-compose.yml need, pulling nothing.
#
#   authzd:local                     authzd (static, CGO_ENABLED=0, built on this host) FROM scratch
#   authzd-local/spicedb:<version>   SpiceDB of the version go.mod pins, built from its Go module, FROM scratch
#   authzd-local/postgres:<major>    PostgreSQL from Debian's packages: mmdebstrap root filesystem + docker import
#
# Each image carries the hash of its inputs in the label dev.scailabs.authzd.inputs and is rebuilt only
# when that hash changes. The suite (integration/docker_test.go) and compose use these images when the
# official ones (postgres:<major>, authzed/spicedb:<version>) cannot be pulled.
# `docker/images.sh spicedb-bin` prints the path of the image's spicedb binary, copied out for the local
# world of the suite (AUTHZ_TEST_SPICEDB_BIN).
# Options (environment): GO (go), AUTHZ_IMAGES_CACHE (the rootfs tarball cache), AUTHZ_APT_SOURCES.
set -euo pipefail
cd "$(dirname "$0")/.."

GO=${GO:-go}
export DOCKER_BUILDKIT=0 # the classic builder: no buildx needed, and FROM scratch / a local base pulls nothing
export CGO_ENABLED=0
label=dev.scailabs.authzd.inputs
cache=${AUTHZ_IMAGES_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/authzd-images}
pg_suite=bookworm # Debian release whose postgresql-<pg_major> the Postgres image carries
pg_major=15

spicedb_version=$($GO list -m -f '{{.Version}}' github.com/authzed/spicedb)
authzd_image=authzd:local
spicedb_image=authzd-local/spicedb:$spicedb_version
postgres_image=authzd-local/postgres:$pg_major

log() { printf 'images: %s\n' "$*" >&2; }
hash_of() { # hash_of STRING FILE...: a short hash of a string and of files (paths relative to the repository)
  { printf '%s\n' "$1"; shift; for f in "$@"; do printf '%s\n' "${f#"$PWD"/}"; cat "$f"; done; } | sha256sum | cut -c1-16
}
current() { # current IMAGE HASH: the image exists and was built from these inputs
  [ "$(docker image inspect -f "{{index .Config.Labels \"$label\"}}" "$1" 2>/dev/null)" = "$2" ]
}
# Source and embedded files of this module's packages that build the given commands.
module_files() {
  $GO list -deps -f '{{if and .Module .Module.Main}}{{range .GoFiles}}{{$.Dir}}/{{.}}
{{end}}{{range .EmbedFiles}}{{$.Dir}}/{{.}}
{{end}}{{end}}' "$@" | sed '/^$/d' | sort
}
new_context() { # a build context directory with an empty /tmp for the image
  local dir
  dir=$(mktemp -d)
  mkdir -m 1777 "$dir/tmp"
  printf '%s\n' "$dir"
}
build_binary() { # build_binary OUT PACKAGE
  $GO build -trimpath -ldflags='-s -w' -o "$1" "$2"
}
docker_build() { # docker_build IMAGE HASH CONTEXT [docker build options...]
  local image=$1 hash=$2 ctx=$3
  shift 3
  local out
  if ! out=$(docker build -q --label "$label=$hash" -t "$image" "$@" "$ctx" 2>&1); then
    printf '%s\n' "$out" >&2
    return 1
  fi
  docker image prune -f --filter "label=$label" >/dev/null # the previous build, now untagged
}

gover=$($GO version)
probe_files=$(module_files ./cmd/healthprobe)

build_authzd() {
  local start=$SECONDS hash ctx
  # shellcheck disable=SC2046
  hash=$(hash_of "$gover" go.mod go.sum docker/authzd/Dockerfile $(module_files ./cmd/authzd ./cmd/healthprobe))
  if current "$authzd_image" "$hash"; then log "$authzd_image up to date ($hash)"; return; fi
  ctx=$(new_context)
  build_binary "$ctx/authzd" ./cmd/authzd
  build_binary "$ctx/healthprobe" ./cmd/healthprobe
  docker_build "$authzd_image" "$hash" "$ctx" -f docker/authzd/Dockerfile
  rm -rf "$ctx"
  log "$authzd_image built ($hash) in $((SECONDS - start))s"
}

build_spicedb() {
  local start=$SECONDS hash ctx
  # shellcheck disable=SC2086
  hash=$(hash_of "$gover $spicedb_version" go.mod go.sum docker/spicedb/Dockerfile $probe_files)
  if current "$spicedb_image" "$hash"; then log "$spicedb_image up to date ($hash)"; return; fi
  ctx=$(new_context)
  build_binary "$ctx/spicedb" github.com/authzed/spicedb/cmd/spicedb
  build_binary "$ctx/healthprobe" ./cmd/healthprobe
  docker_build "$spicedb_image" "$hash" "$ctx" -f docker/spicedb/Dockerfile
  rm -rf "$ctx"
  log "$spicedb_image built ($hash) in $((SECONDS - start))s"
}

build_postgres() {
  local start=$SECONDS sources rootfs_hash hash tar base
  sources=${AUTHZ_APT_SOURCES:-/etc/apt/sources.list.d/debian.sources}
  [ -f "$sources" ] || sources=/etc/apt/sources.list
  rootfs_hash=$(hash_of "$pg_suite $pg_major" docker/postgres/rootfs.sh "$sources")
  hash=$(hash_of "$rootfs_hash" docker/postgres/Dockerfile docker/postgres/entrypoint.sh)
  if current "$postgres_image" "$hash"; then log "$postgres_image up to date ($hash)"; return; fi

  base=authzd-local/postgres-rootfs:$pg_major-$rootfs_hash
  if ! docker image inspect "$base" >/dev/null 2>&1; then
    tar=$cache/postgres-rootfs-$pg_suite-$pg_major-$rootfs_hash.tar
    if [ ! -s "$tar" ]; then
      if ! command -v mmdebstrap >/dev/null; then
        log "installing mmdebstrap from Debian's packages"
        as_root apt-get update -qq
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mmdebstrap >/dev/null
      fi
      mkdir -p "$cache"
      rm -f "$cache"/postgres-rootfs-*.tar # older inputs
      log "making the $pg_suite root filesystem with postgresql-$pg_major (mmdebstrap)"
      as_root env "AUTHZ_APT_SOURCES=$sources" docker/postgres/rootfs.sh "$pg_suite" "$pg_major" "$tar"
    fi
    docker import "$tar" "$base" >/dev/null
    # Older root filesystems of this image.
    docker image ls --format '{{.Repository}}:{{.Tag}}' "authzd-local/postgres-rootfs" | grep -vxF "$base" | xargs -r docker image rm >/dev/null || true
  fi
  docker_build "$postgres_image" "$hash" docker/postgres --build-arg "BASE=$base" --build-arg "PG_MAJOR=$pg_major"
  log "$postgres_image built ($hash) in $((SECONDS - start))s"
}

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

if ! docker version >/dev/null 2>&1; then
  echo "images: no Docker engine answers (docker version failed)" >&2
  exit 1
fi
# spicedb_bin prints the path of the spicedb binary in the SpiceDB image, copied out once per image, so
# that the local world of the integration suite (AUTHZ_TEST_SPICEDB_BIN) need not compile it again.
spicedb_bin() {
  local id out cid
  id=$(docker image inspect -f '{{.Id}}' "$spicedb_image")
  out=$cache/spicedb-$spicedb_version-${id#sha256:}
  out=${out:0:${#out}-52} # keep 12 hex digits of the image id
  if [ ! -x "$out" ]; then
    mkdir -p "$cache"
    rm -f "$cache"/spicedb-*
    cid=$(docker create "$spicedb_image")
    docker cp "$cid:/usr/local/bin/spicedb" "$out" >/dev/null
    docker rm "$cid" >/dev/null
  fi
  printf '%s\n' "$out"
}

targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(postgres spicedb authzd)
for t in "${targets[@]}"; do
  case $t in
    postgres | spicedb | authzd) "build_$t" ;;
    spicedb-bin) build_spicedb && spicedb_bin ;;
    *) echo "images: unknown target $t (postgres, spicedb, authzd, spicedb-bin)" >&2; exit 2 ;;
  esac
done
