//go:build !linux

package main

import "os"

func hasCapNetAdmin() bool { return false }

func isTerminal(*os.File) bool { return false }
