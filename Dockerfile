# syntax=docker/dockerfile:1
#
# Foresight's container image: one static Go binary on distroless.
#   make image        (docker build -t ghcr.io/foresightscale/foresight:dev .)
# The cache mounts below need BuildKit (Docker's default builder) or buildah
# (podman build).
#
# The binary embeds the demo model (models/demo, go:embed), and the cluster
# install mounts its config and serving certificate (manifests/base), so the
# image holds nothing but the binary.

# The golang image sets GOTOOLCHAIN=local, so the tag must provide at least the
# go.mod version (1.26.8). Pin it with --build-arg GO_VERSION=1.26.8 if needed.
ARG GO_VERSION=1.26

FROM golang:${GO_VERSION}-bookworm AS build
WORKDIR /src

# Modules first, in their own layer: a source change does not re-download them.
# The cache mounts keep modules and compiled packages between builds; they are
# not part of any layer.
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod \
    go mod download

COPY . .
# CGO_ENABLED=0: a static binary, so the final image needs no libc.
# -trimpath: no build-machine paths in the binary, so it does not depend on
# where the source was checked out.
# -s -w: no symbol table or DWARF; the binary is about 30% smaller.
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o /out/foresight ./cmd/foresight

# static-debian12: CA certificates, tzdata and /etc/passwd, no shell, no package
# manager. :nonroot runs as UID/GID 65532, which manifests/base also sets.
FROM gcr.io/distroless/static-debian12:nonroot

LABEL org.opencontainers.image.title="foresight" \
      org.opencontainers.image.description="Forecast-based replica counts served as Kubernetes external metrics" \
      org.opencontainers.image.source="https://github.com/foresightscale/foresight"

COPY --from=build /out/foresight /foresight

USER 65532:65532
# 6443: the external metrics API (HTTPS). 8080: /metrics, /healthz, /readyz
# (plain HTTP). Without flags, `serve` runs the demo and binds both to
# 127.0.0.1 only; the Deployment's args select the real source and bind :8080.
EXPOSE 6443 8080
ENTRYPOINT ["/foresight"]
CMD ["serve"]
