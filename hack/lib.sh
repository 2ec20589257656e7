# Sourced by the hack/ scripts that install or build the test tools.

# TOOLS_CACHE is where tools built from the Go module proxy are kept,
# outside the repository.
TOOLS_CACHE=${FORESIGHT_TOOLS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/foresight/tools}

# apt_sudo MISSING HINT OTHERWISE: sets the array SUDO to what apt-get must
# run under (nothing as root, sudo when it needs no password). When neither
# is possible, or apt-get is missing, it says "MISSING missing ..." with the
# install command HINT or OTHERWISE, and exits.
apt_sudo() {
	local missing=$1 hint=$2 otherwise=$3
	SUDO=()
	if [ "${EUID}" -ne 0 ]; then
		if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
			SUDO=(sudo)
		else
			echo "$missing missing and installing needs root." >&2
			echo "Run as root, or: sudo $hint" >&2
			exit 1
		fi
	fi
	if ! command -v apt-get >/dev/null 2>&1; then
		echo "$missing missing and apt-get is not available: $otherwise." >&2
		exit 1
	fi
}

# cached_tool FILE WHAT BUILD [--print]: prints FILE, a tool in the cache,
# first building it when it is missing (unless --print): BUILD runs in a
# fresh temporary directory with the path to write the binary to, which is
# then moved into place, so a failed build leaves nothing half-written.
cached_tool() {
	local file=$1 what=$2 build=$3 work
	if [ "${4:-}" != "--print" ] && [ ! -x "$file" ]; then
		echo "$what: building (about 2 min)" >&2
		mkdir -p "$(dirname "$file")"
		work=$(mktemp -d)
		trap "rm -rf '$work'" EXIT
		(cd "$work" && "$build" "$work/out")
		mv "$work/out" "$file"
	fi
	echo "$file"
}
