#!/bin/sh
# cnbridged preremove: stop and disable the service when the package is
# removed (deb: "remove"; rpm: 0), not on upgrade. Not in another root
# (DPKG_ROOT set, see postinstall.sh): its service is not running here.
set -e
case "${1:-}" in
remove | 0)
	if [ -z "${DPKG_ROOT:-}" ] && [ -d /run/systemd/system ]; then
		systemctl disable --now cnbridged.service >/dev/null 2>&1 || true
	fi
	;;
esac
exit 0
