#!/bin/sh
# install-packages.sh: install the Debian packages the WordPress test stack
# needs, only those that are missing. Needs root on Debian (apt-get).
# Services are kept from starting during the install (policy-rc.d), since the
# tests run their own MariaDB and php -S from a temp dir.
set -eu

# systemd (systemd-analyze verify) and nginx (nginx -t, a live proxy) check the
# files in deploy/: deploy_tools_test.go. Neither is started as a service.
# chromium and fonts-liberation: the wp-admin browser test (chromedp drives
# Debian's Chromium headless; the fonts keep its screenshots readable).
# zip and unzip: make plugin-zip and its test.
# curl, jq and openssl: the README and runbook commands the docs tests run (docs_run_test.go).
PACKAGES="curl jq openssl mariadb-server mariadb-client php-cli php-mysql php-curl php-xml php-mbstring php-intl wordpress wordpress-theme-twentytwentythree phpunit prometheus systemd nginx chromium fonts-liberation zip unzip"

missing=""
for p in $PACKAGES; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
		missing="$missing $p"
	fi
done
if [ -z "$missing" ]; then
	exit 0
fi
if [ ! -r /etc/debian_version ] || ! command -v apt-get >/dev/null 2>&1; then
	echo "wpstack: not a Debian machine; install by hand:$missing" >&2
	exit 2
fi
if [ "$(id -u)" != 0 ]; then
	echo "wpstack: missing packages:$missing; run as root (or: sudo apt-get install$missing)" >&2
	exit 2
fi

echo "wpstack: installing$missing" >&2
# Keep apt from starting apache2/mariadb: the tests start their own.
made_policy=""
if [ ! -e /usr/sbin/policy-rc.d ]; then
	printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
	chmod 755 /usr/sbin/policy-rc.d
	made_policy=1
fi
cleanup() { if [ -n "$made_policy" ]; then rm -f /usr/sbin/policy-rc.d; fi; }
trap cleanup EXIT INT TERM

export DEBIAN_FRONTEND=noninteractive
opts="-y -q -o DPkg::Lock::Timeout=600 -o Dpkg::Options::=--force-unsafe-io --no-install-recommends"
# shellcheck disable=SC2086
if ! apt-get install $opts $missing >/tmp/wpstack-apt.log 2>&1; then
	apt-get update -q -o DPkg::Lock::Timeout=600 >>/tmp/wpstack-apt.log 2>&1
	# shellcheck disable=SC2086
	apt-get install $opts $missing >>/tmp/wpstack-apt.log 2>&1 || { tail -30 /tmp/wpstack-apt.log >&2; exit 1; }
fi
