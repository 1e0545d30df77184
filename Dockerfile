# syntax=docker/dockerfile:1
# One image for every Parley role; the role is the command
# (docker-compose.yml: `decider`, `project history`, `gateway`, ...).
#
# Base images are pinned to exact versions where they have them. The
# distroless image publishes no version tags, only digests: pin it with
#   docker buildx imagetools inspect gcr.io/distroless/static-debian12:nonroot
#   --build-arg RUNTIME_IMAGE=gcr.io/distroless/static-debian12:nonroot@sha256:…
# (and the Go image likewise: golang:1.26.8@sha256:…).
ARG RUNTIME_IMAGE=gcr.io/distroless/static-debian12:nonroot

FROM golang:1.26.8 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod \
    go mod download
COPY . .
# The release `parley version` prints; .git is not in the build context,
# so it comes from outside: docker-compose.yml passes PARLEY_VERSION, and
# `make build` stamps the same way from git describe.
ARG VERSION=dev
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 go build -trimpath -ldflags="-s -w -X main.version=${VERSION}" -o /parley .

# Static binary, no shell, runs as uid 65532. Healthchecks run
# `/parley healthcheck` (docker-compose.yml).
FROM ${RUNTIME_IMAGE}
COPY --from=build /parley /parley
# Writable for the nonroot user; the embedded defaults (used when a
# PARLEY_* backend variable is unset) keep their data under ./data.
WORKDIR /home/nonroot
USER nonroot:nonroot
EXPOSE 8080
ENTRYPOINT ["/parley"]
