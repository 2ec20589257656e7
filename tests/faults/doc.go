// Package faults holds the fault matrix and the soak test of `foresight
// serve`: the real binary, built fresh for each test run, reads a scripted
// fake Prometheus (internal/fakeprom) that switches between healthy and
// broken answers at run time, and the tests assert what the process then
// publishes on /metrics and the external metrics API, what /readyz says, and
// how fast it recovers. Everything listens on loopback only.
//
//	go test ./tests/faults/ -v                                  # matrix + 90 s soak
//	go test ./tests/faults/ -run Matrix -v                       # the matrix alone
//	FORESIGHT_SOAK_DURATION=10m go test ./tests/faults/ -run Soak -timeout 15m -v
//
// With -short every test here skips: each needs the built binary and its own
// processes.
package faults
