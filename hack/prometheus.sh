#!/usr/bin/env bash
# Makes the Prometheus server and promtool available for the integration tests
# (internal/promtest starts them by hand on loopback).
#
#   hack/prometheus.sh ensure   install Debian's prometheus package if the
#                               binaries are missing, then print their versions
#
# Idempotent: when both binaries are on PATH it installs nothing. Installing
# needs root (or password-less sudo). Debian bookworm ships Prometheus 2.42
# at /usr/bin/prometheus; its service is never started here.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

usage() {
	echo "usage: $0 ensure" >&2
	exit 2
}

have_binaries() {
	command -v prometheus >/dev/null 2>&1 && command -v promtool >/dev/null 2>&1
}

install_package() {
	apt_sudo "prometheus/promtool are" "apt-get install -y --no-install-recommends prometheus" "install Prometheus 2.x by other means"

	# The package's init scripts would start a server on 0.0.0.0:9090. Tell
	# invoke-rc.d not to start services for the duration of the install,
	# unless the machine already has a policy of its own.
	local policy=/usr/sbin/policy-rc.d
	if [ ! -e "$policy" ]; then
		"${SUDO[@]}" sh -c "printf '#!/bin/sh\nexit 101\n' > $policy && chmod 755 $policy"
		trap "${SUDO[*]:+${SUDO[*]} }rm -f $policy" EXIT
	fi

	echo "Installing Debian's prometheus package (about 40 s)..."
	"${SUDO[@]}" apt-get update -qq
	"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive \
		apt-get install -y -qq --no-install-recommends prometheus
}

[ $# -eq 1 ] || usage
case "$1" in
ensure)
	if have_binaries; then
		echo "prometheus and promtool already installed."
	else
		install_package
		if ! have_binaries; then
			echo "the prometheus package was installed but prometheus/promtool are still not on PATH" >&2
			exit 1
		fi
	fi
	echo "prometheus: $(command -v prometheus): $(prometheus --version 2>&1 | head -n 1)"
	echo "promtool:   $(command -v promtool): $(promtool --version 2>&1 | head -n 1)"
	;;
*)
	usage
	;;
esac
