#!/bin/sh
# cnbridged postinstall: make systemd see the (new) unit. The service is
# not enabled or started: the config may need editing first
# (cnbridged validate --config /etc/cnbridged/cnbridged.yaml), then
#   systemctl enable --now cnbridged
# On an upgrade a running daemon is restarted so that it runs the new binary.
set -e
if [ -d /run/systemd/system ]; then
	systemctl daemon-reload >/dev/null 2>&1 || true
	# deb passes "configure <old-version>" on upgrade, rpm passes 2.
	if [ -n "${2:-}" ] || [ "${1:-}" = 2 ]; then
		systemctl try-restart cnbridged.service >/dev/null 2>&1 || true
	fi
fi
exit 0
