# syntax=docker/dockerfile:1
#
# authzd built from source, for machines that can pull golang: a static binary on an empty image.
#   docker build -t authzd:local .
# Without a registry, `make images` builds the same image (docker/authzd/Dockerfile) from binaries
# compiled on the host. Keep the two runtime stages alike: docker-compose.yml's healthcheck needs
# healthprobe at the same place in both.

FROM golang:1.26 AS build
# SpiceDB v1.57.1 needs Go >= 1.26.9: the go command fetches the pinned toolchain (go.mod's toolchain line).
ENV GOTOOLCHAIN=go1.27.3
WORKDIR /src
# Dependencies first, so source edits do not invalidate the module download layer.
COPY go.mod go.sum ./
# The client module, which go.mod replaces with ./client, must be there for the module graph to load.
COPY client/go.mod client/go.sum ./client/
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/authzd ./cmd/authzd \
    && CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/healthprobe ./cmd/healthprobe \
    && mkdir -m 1777 /out/tmp

# Kept in step with docker/authzd/Dockerfile, which runs the same image from host-built binaries: the
# two differ in where the binaries come from, so the runtime lines below repeat there.
FROM scratch
COPY --from=build /out/authzd /out/healthprobe /usr/local/bin/
COPY --from=build /out/tmp /tmp
ENV PATH=/usr/local/bin AUTHZ_HTTP_ADDR=:8080
USER 10001:10001
EXPOSE 8080
HEALTHCHECK --interval=5s --timeout=3s --start-period=30s --retries=3 \
    CMD ["healthprobe", "-url", "http://127.0.0.1:8080/healthz"]
ENTRYPOINT ["authzd"]
