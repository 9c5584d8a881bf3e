# syntax=docker/dockerfile:1
#
# authzd: a static binary on a small non-root runtime image.
#   docker build -t authzd .
# docker-compose.yml builds this file and runs it against Postgres and SpiceDB.

FROM golang:1.26 AS build
# SpiceDB v1.57.1 needs Go >= 1.26.9: the go command fetches the pinned toolchain (go.mod's toolchain line).
ENV GOTOOLCHAIN=go1.27.3
WORKDIR /src
# Dependencies first, so source edits do not invalidate the module download layer.
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/authzd ./cmd/authzd

# Alpine rather than distroless/static: the compose healthcheck needs an HTTP client (busybox wget).
FROM alpine:3.22
RUN apk add --no-cache ca-certificates \
    && addgroup -S -g 10001 authzd \
    && adduser -S -D -H -u 10001 -G authzd authzd
COPY --from=build /out/authzd /usr/local/bin/authzd
USER 10001:10001
ENV AUTHZ_HTTP_ADDR=:8080
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
    CMD wget -q -O /dev/null http://127.0.0.1:8080/healthz || exit 1
ENTRYPOINT ["/usr/local/bin/authzd"]
