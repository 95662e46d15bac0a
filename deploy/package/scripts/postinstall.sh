#!/bin/sh
# cnbridged postinstall: make systemd see the (new) unit. The service is
# not enabled or started: the config may need editing first
# (cnbridged validate --config /etc/cnbridged/cnbridged.yaml), then
#   systemctl enable --now cnbridged
# On an upgrade a running daemon is restarted so that it runs the new binary.
#
# DPKG_ROOT is set when dpkg installs into another root
# (dpkg --root DIR --force-script-chrootless): the systemd running here is
# not that root's, so nothing is applied to it.
set -e
if [ -z "${DPKG_ROOT:-}" ] && [ -d /run/systemd/system ]; then
	# Apply the packaged rmem_max now rather than at the next boot (a
	# read-only /proc/sys refuses it: the daemon then warns about the
	# smaller receive buffer it gets, and cnbridged check says the fix).
	for d in /usr/lib/systemd /lib/systemd; do
		if [ -x "$d/systemd-sysctl" ]; then
			"$d/systemd-sysctl" /usr/lib/sysctl.d/60-cnbridged.conf >/dev/null 2>&1 || true
			break
		fi
	done
	systemctl daemon-reload >/dev/null 2>&1 || true
	# deb passes "configure <old-version>" on upgrade, rpm passes 2.
	if [ -n "${2:-}" ] || [ "${1:-}" = 2 ]; then
		systemctl try-restart cnbridged.service >/dev/null 2>&1 || true
	fi
fi
exit 0
