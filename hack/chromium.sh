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

usage() {
	echo "usage: $0 ensure" >&2
	exit 2
}

browser() {
	command -v chromium 2>/dev/null || command -v chromium-browser 2>/dev/null || true
}

install_package() {
	local sudo=()
	if [ "${EUID}" -ne 0 ]; then
		if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
			sudo=(sudo)
		else
			echo "chromium is missing and installing it needs root." >&2
			echo "Run as root, or: sudo apt-get install -y --no-install-recommends chromium" >&2
			exit 1
		fi
	fi
	if ! command -v apt-get >/dev/null 2>&1; then
		echo "chromium or tidy is missing and apt-get is not available: install them by other means." >&2
		exit 1
	fi
	echo "Installing Debian's chromium and tidy packages (about 80 MB, a minute or two)..."
	"${sudo[@]}" apt-get update -qq
	"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
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
