# syntax=docker/dockerfile:1
# One image for every Parley role; the role is the command
# (docker-compose.yml: `decider`, `project history`, `gateway`, ...).

FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod \
    go mod download
COPY . .
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /parley .

# Static binary, no shell, runs as uid 65532.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /parley /parley
# Writable for the nonroot user; the embedded defaults (used when a
# PARLEY_* backend variable is unset) keep their data under ./data.
WORKDIR /home/nonroot
USER nonroot:nonroot
EXPOSE 8080
ENTRYPOINT ["/parley"]
