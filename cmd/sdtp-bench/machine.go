package main

import (
	"os"
	"runtime"
	"strings"
)

// cpuModel names the processor for the results (Linux /proc/cpuinfo),
// else the platform.
func cpuModel() string {
	if raw, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(raw), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				return strings.TrimSpace(v)
			}
		}
	}
	return runtime.GOOS + "/" + runtime.GOARCH
}

// command is the invocation as a shell line, for the report to quote.
func command(args []string) string {
	out := []string{"bin/sdtp-bench"}
	for _, a := range args {
		if strings.ContainsAny(a, " \t\n;'\"$&|<>*?()\\`") {
			a = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
		out = append(out, a)
	}
	return strings.Join(out, " ")
}
