# Vulcan Backup worker and starter. Build: docker compose build (or docker build -t vulcan-backup .)
# The Go binaries are static (CGO_ENABLED=0); the runtime image carries the PostgreSQL 15
# client tools, the same major version as the database in docker-compose.yml
# (pg_dump must not be older than the server it dumps).
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath -tags nodevserver -ldflags "-s -w -X main.version=${VERSION}" -o /out/worker ./worker \
 && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/starter ./starter

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends postgresql-client-15 ca-certificates tar \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /out/worker /out/starter /usr/local/bin/
# The worker runs unprivileged (uid 10001): it needs to own the data
# directory and, for the docker controller, the Docker socket's group
# (docker-compose.yml adds it). Only restoring files' owners needs root.
RUN useradd --system --uid 10001 --home-dir /app --no-create-home vulcan
ENV VULCAN_ROOT=/app \
    TEMPORAL_ADDRESS=temporal:7233
WORKDIR /app
USER 10001:10001
ENTRYPOINT ["worker"]
