#!/bin/sh
# cnbridged postremove. On purge (deb) remove what the packaged service
# made, and only that: with DynamicUser=yes systemd keeps the state and
# log directories in /var/lib/private/cnbridged and
# /var/log/private/cnbridged, with symlinks /var/lib/cnbridged and
# /var/log/cnbridged to them. A real directory at /var/lib/cnbridged or
# /var/log/cnbridged, or /run/cnbridged, belongs to a cnbridged run some
# other way (by hand, as root: its state file and tap socket) and stays.
# The service's /run/cnbridged is gone already: systemd removes its
# RuntimeDirectory= when it stops. dpkg removes the conffile itself. rpm
# has no purge: those directories stay after rpm -e, as logs do.
#
# Paths are under $DPKG_ROOT, set when dpkg works on another root
# (dpkg --root DIR --force-script-chrootless).
set -e
root=${DPKG_ROOT:-}
if [ -z "$root" ] && [ -d /run/systemd/system ]; then
	systemctl daemon-reload >/dev/null 2>&1 || true
fi
if [ "${1:-}" = purge ]; then
	for d in lib log; do
		link=$root/var/$d/cnbridged
		if [ -L "$link" ] && [ "$(readlink "$link")" = private/cnbridged ]; then
			rm -f "$link"
		fi
		rm -rf "$root/var/$d/private/cnbridged"
	done
	rmdir "$root/etc/cnbridged" 2>/dev/null || true
fi
exit 0
