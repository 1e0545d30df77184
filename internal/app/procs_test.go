package app_test

import (
	"testing"

	"github.com/parley-chat/parley/internal/app"
)

func TestProcs(t *testing.T) {
	env := func(v string) func(string) string {
		return func(k string) string {
			if k == "GOMAXPROCS" {
				return v
			}
			return ""
		}
	}
	for _, c := range []struct {
		cpus, want int
	}{{1, 4}, {2, 8}, {4, 16}, {8, 32}, {16, 32}, {32, 32}, {48, 48}} {
		if n, ok := app.Procs(env(""), c.cpus); !ok || n != c.want {
			t.Errorf("Procs on %d CPUs = %d, %v; want %d, true", c.cpus, n, ok, c.want)
		}
	}
	if n, ok := app.Procs(env("3"), 2); ok {
		t.Errorf("Procs with GOMAXPROCS=3 set = %d, true; want the operator's value to stand", n)
	}
}
