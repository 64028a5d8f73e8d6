# Rebuild the release image from source, for people who build behind their
# own registry and module mirrors instead of pulling the published image:
#
#   docker buildx build --platform linux/amd64,linux/arm64 \
#     --build-arg GO_IMAGE=mirror.example/library/golang:1.27-trixie@sha256:... \
#     --build-arg BASE_IMAGE=mirror.example/distroless/static-debian13:nonroot@sha256:... \
#     --build-arg GOPROXY=https://goproxy.example \
#     --build-arg VERSION=1.2.3 --build-arg COMMIT="$(git rev-parse HEAD)" \
#     -t registry.example/azure-rest-api-token:1.2.3 .
#
# Same base image, build flags, binary path, user and entrypoint as the
# release image that GoReleaser builds with ko (.goreleaser.yaml `kos`).
# Releases are published only through `kos`: never push this build under the
# project's release tags or repository.

# Defaults pinned by digest; override both for a mirror.
ARG GO_IMAGE=golang:1.27-trixie@sha256:9baa6b4187bbb98d240372a8a235ac0bb6b5ddd52bba1431dc2f7c0705862728
ARG BASE_IMAGE=gcr.io/distroless/static-debian13:nonroot@sha256:f7f8f729987ad0fdf6b05eeeae94b26e6a0f613bdf46feea7fc40f7bd72953e6

# Cross-compile on the build machine's platform: no emulation needed.
FROM --platform=$BUILDPLATFORM ${GO_IMAGE} AS build
ARG TARGETOS TARGETARCH TARGETVARIANT
ARG VERSION=
ARG COMMIT=
# Module mirror (optional); unset keeps the builder image's setting.
ARG GOPROXY
# The release toolchain, whatever Go the builder image has: the go command
# switches to it (fetching it through GOPROXY if the image's Go differs).
ARG GO_TOOLCHAIN=go1.27.3
ENV GOTOOLCHAIN=${GO_TOOLCHAIN}
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 GOOS="$TARGETOS" GOARCH="$TARGETARCH" GOARM="${TARGETVARIANT#v}" \
    go build -trimpath -tags=nethttpomithttp2 \
      -ldflags "-s -w -X main.version=${VERSION} -X main.commit=${COMMIT}" \
      -o /out/azure-rest-api-token .

FROM ${BASE_IMAGE}
ARG VERSION=
ARG COMMIT=
COPY --from=build /out/azure-rest-api-token /ko-app/azure-rest-api-token
# Numeric, so the runtime (and runAsNonRoot) needs no /etc/passwd lookup.
USER 65532:65532
ENTRYPOINT ["/ko-app/azure-rest-api-token"]
LABEL org.opencontainers.image.title="azure-rest-api-token" \
      org.opencontainers.image.description="Writes an Entra ID access token for a service principal to a file" \
      org.opencontainers.image.source="https://github.com/densify-dev/azure-rest-api-token" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${COMMIT}"
