#!/usr/bin/env bash
# Runs every Go fuzz target of the repository, one `go test -fuzz` per target
# (Go fuzzes one target per invocation), for FUZZTIME each, and prints per
# target: name, package, executions, new interesting inputs, PASS/FAIL.
#
# Targets are found, not listed: every `func FuzzXxx(` in a *_test.go file
# that git knows of (tracked, or new and not ignored), so a new target is
# fuzzed as soon as it is written.
#
#   hack/fuzz.sh                      every target for FUZZTIME (default 10m)
#   FUZZTIME=3s hack/fuzz.sh          the smoke run of `make test`
#   hack/fuzz.sh FuzzParseCSV Decide  only targets whose name matches one of
#                                     these (grep -E) patterns
#
# Environment: FUZZTIME (a Go duration, or Nx for N executions), FUZZFLAGS
# (extra go test flags, e.g. -parallel=2), FUZZ_LOGDIR (keep each target's
# full output there; default a temporary directory, removed when all pass),
# GO (the go command).
#
# Exit status: 0 when every target passed; 1 when any failed. A failing input
# is written by go under <package>/testdata/fuzz/<target>/ and then runs as a
# regular test case: fix the bug, keep the file.
set -euo pipefail

GO=${GO:-go}
FUZZTIME=${FUZZTIME:-10m}
FUZZFLAGS=${FUZZFLAGS:-}

cd "$(git rev-parse --show-toplevel)"

# seconds_of prints a Go duration made of h/m/s parts (10m, 1h30m, 3s) in
# whole seconds, or nothing for other forms (1000x, 1.5s).
seconds_of() {
	local rest=$1 total=0
	[[ $rest =~ ^([0-9]+[hms])+$ ]] || return 0
	while [[ $rest =~ ^([0-9]+)([hms])(.*)$ ]]; do
		case ${BASH_REMATCH[2]} in
		h) total=$((total + BASH_REMATCH[1] * 3600)) ;;
		m) total=$((total + BASH_REMATCH[1] * 60)) ;;
		s) total=$((total + BASH_REMATCH[1])) ;;
		esac
		rest=${BASH_REMATCH[3]}
	done
	echo "$total"
}

# A backstop only: go stops fuzzing at FUZZTIME, but a fuzz function that
# never returns would hang the run. Generous, since building an instrumented
# test binary on a busy machine takes minutes.
kill_after=""
if secs=$(seconds_of "$FUZZTIME") && [[ -n $secs ]]; then
	kill_after=$((2 * secs + 1200))
fi

# targets: "<package dir> <FuzzName>" lines, sorted, for the patterns given.
mapfile -t targets < <(
	git ls-files --cached --others --exclude-standard -- '*_test.go' |
		while read -r file; do
			[[ -f $file ]] || continue # deleted but still in the index
			sed -n 's/^func \(Fuzz[A-Za-z0-9_]*\)(.*/\1/p' "$file" |
				while read -r name; do echo "$(dirname "$file") $name"; done
		done | sort -u |
		if (($# > 0)); then
			patterns=$(printf '%s|' "$@")
			awk -v re="${patterns%|}" '$2 ~ re'
		else
			cat
		fi
)
if ((${#targets[@]} == 0)); then
	echo "fuzz.sh: no fuzz targets found${1:+ matching $*}" >&2
	exit 1
fi

logdir=${FUZZ_LOGDIR:-}
keep_logs=1
if [[ -z $logdir ]]; then
	logdir=$(mktemp -d "${TMPDIR:-/tmp}/foresight-fuzz.XXXXXX")
	keep_logs=0
fi
mkdir -p "$logdir"

echo "fuzzing ${#targets[@]} targets for $FUZZTIME each (logs: $logdir)"
printf '%-28s %-34s %6s %12s %8s %7s\n' TARGET PACKAGE RESULT EXECS NEW TIME
failed=()
start_all=$SECONDS
for t in "${targets[@]}"; do
	pkg=${t% *}
	name=${t#* }
	log="$logdir/${pkg//\//_}.$name.log"
	start=$SECONDS
	# go test injects its default -timeout (10m) into the test binary even
	# when fuzzing, which kills a 10-minute run: raise it to the backstop.
	# Shrinking each new input is bounded too, so a run's length stays
	# close to FUZZTIME.
	cmd=("$GO" test -run '^$' -fuzz "^$name\$" -fuzztime "$FUZZTIME" -timeout "${kill_after:-0}s" -fuzzminimizetime 10s)
	# shellcheck disable=SC2206 # FUZZFLAGS is a list of flags
	cmd+=($FUZZFLAGS "./$pkg")
	if [[ -n $kill_after ]]; then
		cmd=(timeout --kill-after=30 "$kill_after" "${cmd[@]}")
	fi
	status=0
	"${cmd[@]}" >"$log" 2>&1 || status=$?
	# Go 1.26's fuzzing coordinator can fail a target with a bare "context
	# deadline exceeded" when -fuzztime runs out while a worker is busy (a
	# race fixed in Go 1.27, golang/go#75804): no input failed, nothing was
	# written. Such a run is tried once more; a real failure never is.
	if ((status != 0)) && grep -q '^    context deadline exceeded$' "$log" &&
		! grep -qE 'Failing input written to|panic:|_test.go:[0-9]+:' "$log"; then
		echo "    $name: bare 'context deadline exceeded' at the end of -fuzztime (golang/go#75804); running it again"
		mv "$log" "$log.deadline-race"
		status=0
		"${cmd[@]}" >"$log" 2>&1 || status=$?
	fi

	# go prints "fuzz: elapsed: 10s, execs: 123 (12/sec), new interesting: 4 (total: 40)"
	# every 3 s; the last such line has the totals.
	progress=$(grep -E '^fuzz: elapsed: .*, execs: [0-9]+' "$log" | tail -n 1 || true)
	execs=$(sed -n 's/.*execs: \([0-9]*\).*/\1/p' <<<"$progress")
	new=$(sed -n 's/.*new interesting: \([0-9]*\).*/\1/p' <<<"$progress")
	result=PASS
	if ((status != 0)); then
		result=FAIL
	elif grep -q 'no fuzz tests to fuzz\|no test files' "$log"; then
		result=FAIL # found in a file the package does not build (a build tag?)
	fi
	printf '%-28s %-34s %6s %12s %8s %6ss\n' "$name" "./$pkg" "$result" "${execs:-0}" "${new:-0}" $((SECONDS - start))
	if [[ -z $progress ]] && baseline=$(grep -o 'gathering baseline coverage: [0-9]*/[0-9]*' "$log" | tail -n 1) && [[ -n $baseline ]]; then
		# Before mutating anything go re-runs the whole corpus (seeds, testdata
		# and the inputs earlier runs found, kept in go's cache).
		echo "    no new inputs tried: FUZZTIME ran out ${baseline/gathering/while gathering} (corpus in $($GO env GOCACHE)/fuzz)"
	fi
	if [[ $result == FAIL ]]; then
		failed+=("$name ./$pkg")
		((status == 124 || status == 137)) && echo "    killed after ${kill_after}s: the fuzz function hangs on some input"
		grep -E 'Failing input written to|--- FAIL|panic:|_test.go:[0-9]+:|no fuzz tests to fuzz|no test files' "$log" | head -n 12 | sed 's/^/    /' || true
		if input=$(sed -n 's/.*Failing input written to \(.*\)$/\1/p' "$log" | head -n 1) && [[ -n $input ]]; then
			echo "    the failing input is $pkg/$input; it now runs with the package's tests: go test -run=$name/${input##*/} ./$pkg"
		fi
		echo "    full output: $log"
		keep_logs=1
	fi
done

echo "fuzzed ${#targets[@]} targets in $((SECONDS - start_all))s: $((${#targets[@]} - ${#failed[@]})) passed, ${#failed[@]} failed"
if ((keep_logs == 0)); then
	rm -rf "$logdir"
fi
if ((${#failed[@]} > 0)); then
	printf 'FAILED: %s\n' "${failed[@]}"
	echo "Failing inputs are under <package>/testdata/fuzz/<target>/ (written by go): fix the bug, commit the input as a regression case."
	exit 1
fi
