//go:build linux

package command_test

func serveHelper() int { return 2 }
