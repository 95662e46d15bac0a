#!/bin/sh
# copyright.sh BINARY: writes the packages' copyright file
# (/usr/share/doc/cnbridged/copyright) to stdout. BINARY is statically
# linked with the Go standard library and the modules `go version -m`
# lists; each one's license files (LICENSE*, LICENCE*, COPYING*, NOTICE*
# at the module's root, from the module cache the build used) follow its
# name. A linked module without a license file fails the build.
# Run from the repository root (package.sh does).
set -eu
bin=$1
mods=$(mktemp)
trap 'rm -f "$mods"' EXIT
go list -m -f '{{.Path}} {{.Version}} {{.Dir}}' all >"$mods"

rule() { printf '\n%s\n' '------------------------------------------------------------------------'; }
licenses() { # DIR NAME: the license files of DIR, or fail naming NAME
	found=0
	for f in "$1"/LICENSE* "$1"/LICENCE* "$1"/COPYING* "$1"/NOTICE* "$1"/License* "$1"/license*; do
		[ -f "$f" ] || continue
		found=1
		printf '\n[%s]\n\n' "$(basename "$f")"
		cat "$f"
	done
	if [ "$found" = 0 ]; then
		echo "copyright.sh: no license file in $1 ($2)" >&2
		exit 1
	fi
}

cat <<'HEAD'
cnbridged: kernel connector (NETLINK_CONNECTOR) event bridge
Source: https://github.com/cnbridged/cnbridged

Copyright the cnbridged authors. The cnbridged repository states no
license for its own code.

/usr/bin/cnbridged is a static binary: it contains the Go standard library
and runtime and the Go modules listed below, each under the license that
follows its name.
HEAD

goversion=$(go version -m "$bin" | sed -n '1s/^[^:]*: *//p')
rule
printf 'The Go standard library and runtime, %s\n' "$goversion"
licenses "$(go env GOROOT)" "Go $goversion"

go version -m "$bin" | awk '$1 == "dep" { print $2, $3 }' | while read -r path version; do
	dir=$(awk -v p="$path" -v v="$version" '$1 == p && $2 == v { print $3 }' "$mods")
	if [ -z "$dir" ] || [ ! -d "$dir" ]; then
		echo "copyright.sh: $path $version is not in the module cache (go mod download)" >&2
		exit 1
	fi
	rule
	printf '%s %s\n' "$path" "$version"
	licenses "$dir" "$path $version"
done
