#!/usr/bin/env bash
# Makes the status page's test tools available: a headless Chromium
# (cmd/foresight TestStatusPageInChromium) and HTML Tidy, the HTML and
# accessibility checker (adapter/status TestPagesPassTidy).
#
#   hack/chromium.sh ensure   install Debian's chromium and tidy packages if
#                             either is missing, then print their versions
#
# Idempotent: with both on PATH it installs nothing. Installing needs root
# (or password-less sudo): about 80 MB.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

usage() {
	echo "usage: $0 ensure" >&2
	exit 2
}

browser() {
	command -v chromium 2>/dev/null || command -v chromium-browser 2>/dev/null || true
}

install_package() {
	apt_sudo "chromium or tidy is" "apt-get install -y --no-install-recommends chromium tidy" "install them by other means"
	echo "Installing Debian's chromium and tidy packages (about 80 MB, a minute or two)..."
	"${SUDO[@]}" apt-get update -qq
	"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive \
		apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core tidy
}

[ $# -eq 1 ] || usage
case "$1" in
ensure)
	if [ -z "$(browser)" ] || ! command -v tidy >/dev/null 2>&1; then
		install_package
		if [ -z "$(browser)" ] || ! command -v tidy >/dev/null 2>&1; then
			echo "the packages were installed but chromium or tidy is still not on PATH" >&2
			exit 1
		fi
	else
		echo "chromium and tidy already installed."
	fi
	echo "chromium: $(browser): $("$(browser)" --version 2>/dev/null | head -n 1)"
	echo "tidy:     $(command -v tidy): $(tidy -v 2>/dev/null | head -n 1)"
	;;
*)
	usage
	;;
esac
