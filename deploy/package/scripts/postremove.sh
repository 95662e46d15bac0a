#!/bin/sh
# cnbridged postremove. On purge (deb) remove what the service created at
# run time: with DynamicUser=yes systemd keeps the state and log directories
# under /var/lib/private and /var/log/private with symlinks in /var/lib and
# /var/log. dpkg removes the conffile itself. rpm has no purge: those
# directories stay after rpm -e, as logs do.
set -e
if [ -d /run/systemd/system ]; then
	systemctl daemon-reload >/dev/null 2>&1 || true
fi
if [ "${1:-}" = purge ]; then
	rm -rf /var/lib/cnbridged /var/lib/private/cnbridged \
		/var/log/cnbridged /var/log/private/cnbridged \
		/run/cnbridged
	rmdir /etc/cnbridged 2>/dev/null || true
fi
exit 0
