# syntax=docker/dockerfile:1
#
# cnbridged container image. Run it in the host's network and PID namespaces
# with only CAP_NET_ADMIN; see deploy/README.md for the flags and for why.
#
# Capability decision: the image runs as uid 0 with every capability but
# CAP_NET_ADMIN dropped by the runtime (--cap-drop ALL --cap-add NET_ADMIN,
# or the DaemonSet's securityContext), under no_new_privs. It does NOT rely
# on a file capability (setcap cap_net_admin+ep) on a non-root binary:
#   * security.capability xattrs do not reliably survive COPY --from between
#     stages (moby/buildkit#2250 is open; COPY --link dropped them in
#     Docker 23, moby/moby#45128; any chown clears them) nor every registry,
#     snapshotter or image-conversion tool.
#   * The kernel ignores file capabilities under no_new_privs, which is what
#     allowPrivilegeEscalation: false and --security-opt no-new-privileges
#     set. Using them would mean giving that protection up.
#   * A binary with cap_net_admin+ep fails to exec at all (EPERM) when the
#     runtime has dropped NET_ADMIN, so even `cnbridged version` would break
#     under --cap-drop ALL.
#   * Kubernetes gives a non-root container no ambient capabilities, so
#     without file caps a non-root user could not hold CAP_NET_ADMIN.
# Container root here is host root (the connector needs the initial user
# namespace), but with one capability, no_new_privs and a read-only root
# filesystem it can do nothing beyond CAP_NET_ADMIN: no DAC override, no
# chown, no ptrace, no module loading.

ARG GO_VERSION=1.26

FROM --platform=$BUILDPLATFORM golang:${GO_VERSION} AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod \
    go mod download
COPY . .
ARG TARGETOS
ARG TARGETARCH
ARG VERSION=dev
# .git is not in the build context: pass the commit, e.g.
# --build-arg COMMIT="$(git rev-parse HEAD)".
ARG COMMIT=
# The build flags live in deploy/build-static.sh, shared with
# deploy/deploy_test.go, which checks the result is static and runs.
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    GOOS=$TARGETOS GOARCH=$TARGETARCH COMMIT=$COMMIT \
    sh deploy/build-static.sh /out/usr/bin/cnbridged "$VERSION"
# The image's only directories of its own. The root filesystem can be
# mounted read-only: the daemon writes only under the volumes below.
RUN install -d -m 0755 /out/etc/cnbridged /out/run/cnbridged \
 && install -d -m 0750 /out/var/log/cnbridged /out/var/lib/cnbridged

FROM gcr.io/distroless/static-debian12
ARG VERSION=dev
LABEL org.opencontainers.image.title="cnbridged" \
      org.opencontainers.image.description="Kernel connector (NETLINK_CONNECTOR) event bridge" \
      org.opencontainers.image.source="https://github.com/cnbridged/cnbridged" \
      org.opencontainers.image.version="${VERSION}"
COPY --from=build /out/ /
# uid 0 on purpose, see the capability decision above. Drop every
# capability but NET_ADMIN when running it.
USER 0:0
# Mount the config here (read-only): /etc/cnbridged/cnbridged.yaml.
# File sinks write to /var/log/cnbridged; state goes to /var/lib/cnbridged;
# the tap socket (tap.socket) is /run/cnbridged/tap.sock.
VOLUME ["/var/log/cnbridged", "/var/lib/cnbridged", "/run/cnbridged"]
# Prometheus metrics, /healthz and /readyz. The daemon listens on
# 127.0.0.1:9464 by default; with --network host that is the host's
# loopback. Set the listen address in the config to expose it further.
EXPOSE 9464
# `cnbridged health` asks the daemon's /readyz on metrics.listen (the image
# has no curl or shell): healthy once subscribed with every sink ready.
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
  CMD ["/usr/bin/cnbridged", "health", "--config", "/etc/cnbridged/cnbridged.yaml"]
ENTRYPOINT ["/usr/bin/cnbridged"]
CMD ["run", "--config", "/etc/cnbridged/cnbridged.yaml"]
