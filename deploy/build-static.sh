#!/bin/sh
# build-static.sh OUTPUT [VERSION]
#
# COMMIT (default: git rev-parse HEAD, when in a git checkout) names the
# commit in `cnbridged version` and cnbridged_build_info.
# Builds ./cmd/cnbridged as a fully static binary at OUTPUT. This script is
# the one place the release build flags live: the Dockerfile runs it, and
# deploy/deploy_test.go runs it and checks the result is static and runs.
#
# GOOS/GOARCH (and GOARM etc.) are taken from the environment when set, so a
# cross build is `GOARCH=arm64 deploy/build-static.sh out/cnbridged`.
set -eu

if [ "$#" -lt 1 ] || [ "$#" -gt 2 ]; then
	echo "usage: $0 OUTPUT [VERSION]" >&2
	exit 64
fi
out=$1
version=${2:-dev}

# Resolve OUTPUT before changing directory, so relative paths mean what the
# caller meant.
case $out in
/*) ;;
*) out=$(pwd)/$out ;;
esac

cd "$(dirname "$0")/.."
commit=${COMMIT:-$(git rev-parse HEAD 2>/dev/null || true)}

# CGO_ENABLED=0: no libc, no PT_INTERP. netgo/osusergo keep the pure-Go
# resolver and user lookup even if cgo is switched back on by accident.
CGO_ENABLED=0 GOOS=${GOOS:-linux} exec go build \
	-trimpath \
	-buildvcs=false \
	-mod=readonly \
	-tags netgo,osusergo \
	-ldflags "-s -w -buildid= -X main.version=${version} -X main.commit=${commit}" \
	-o "$out" \
	./cmd/cnbridged
