//go:build race

package main

// raceEnabled is set when the tests run with -race: the daemon binary for
// the reload tests is then built with -race too.
const raceEnabled = true
