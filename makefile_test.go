package main

import (
	"go/ast"
	"go/parser"
	gotoken "go/token"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// fuzzTargets returns every fuzz target of the module as "./dir/ FuzzX",
// sorted: each top-level func named Fuzz… in a _test.go file that takes
// one *testing.F, as the Go parser sees them.
func fuzzTargets(t *testing.T) []string {
	t.Helper()
	var out []string
	fset := gotoken.NewFileSet()
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			switch d.Name() {
			case "testdata", "data", ".git":
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
		if err != nil {
			return err
		}
		for _, decl := range f.Decls {
			fn, ok := decl.(*ast.FuncDecl)
			if !ok || fn.Recv != nil || !strings.HasPrefix(fn.Name.Name, "Fuzz") || len(fn.Type.Params.List) != 1 {
				continue
			}
			star, ok := fn.Type.Params.List[0].Type.(*ast.StarExpr)
			if !ok {
				continue
			}
			if sel, ok := star.X.(*ast.SelectorExpr); ok && sel.Sel.Name == "F" {
				out = append(out, "./"+filepath.ToSlash(filepath.Dir(path))+"/ "+fn.Name.Name)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(out)
	return out
}

// makeCmd is make with args, in an environment without the variables a
// make that runs `go test` passes down (MAKEFLAGS, MAKELEVEL, MFLAGS), so
// the output is the same under `make test` as from a shell.
func makeCmd(args ...string) *exec.Cmd {
	cmd := exec.Command("make", args...)
	for _, kv := range os.Environ() {
		switch strings.SplitN(kv, "=", 2)[0] {
		case "MAKEFLAGS", "MAKELEVEL", "MFLAGS":
		default:
			cmd.Env = append(cmd.Env, kv)
		}
	}
	return cmd
}

// TestMakeFuzz: `make fuzz` runs every fuzz target of the module — the
// list it iterates over (`make fuzz-targets`) is the Go parser's — and CI
// runs `make fuzz` with a fixed, short FUZZTIME.
func TestMakeFuzz(t *testing.T) {
	want := fuzzTargets(t)
	if len(want) == 0 {
		t.Fatal("found no fuzz targets in the module")
	}
	if _, err := exec.LookPath("make"); err != nil {
		t.Fatalf("make is not installed (%v): install Debian's make package; .ci/run does", err)
	}
	cmd := makeCmd("-s", "--no-print-directory", "fuzz-targets")
	raw, err := cmd.Output()
	if err != nil {
		t.Fatalf("make fuzz-targets: %v", err)
	}
	got := strings.Split(strings.TrimSpace(string(raw)), "\n")
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Errorf("make fuzz-targets lists\n  %s\nthe source has\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}

	// `make fuzz` runs the same list through `go test -fuzz`.
	list, err := makeCmd("-n", "--no-print-directory", "fuzz-targets").Output()
	if err != nil {
		t.Fatalf("make -n fuzz-targets: %v", err)
	}
	dry, err := makeCmd("-n", "--no-print-directory", "fuzz", "FUZZTIME=3s").Output()
	if err != nil {
		t.Fatalf("make -n fuzz: %v", err)
	}
	if !strings.Contains(string(dry), strings.TrimSpace(string(list))+" | while read -r pkg name") {
		t.Errorf("make fuzz does not iterate over the list of make fuzz-targets:\n%s", dry)
	}
	if !strings.Contains(string(dry), `-fuzz "^$name\$" -fuzztime 3s "$pkg"`) {
		t.Errorf("make fuzz does not run each target alone with -fuzztime $(FUZZTIME):\n%s", dry)
	}

	ci, err := os.ReadFile(".ci/run")
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`(?m)^make fuzz FUZZTIME=\d+s\b`).Match(ci) {
		t.Error(".ci/run does not run `make fuzz FUZZTIME=<seconds>s`")
	}
}

// fakeGo is a stand-in for the go command that `make fuzz GO=…` runs: it
// records its arguments and fails as FAKE_MODE says, without fuzzing.
const fakeGo = `#!/bin/sh
echo "$*" >> "$FAKE_STATE/calls"
case "$FAKE_MODE" in
deadline-once)
	mark="$FAKE_STATE/$(echo "$9$5" | tr -dc A-Za-z0-9)"
	if [ ! -e "$mark" ]; then
		touch "$mark"
		printf -- '--- FAIL: FuzzX (3.10s)\n    context deadline exceeded\nFAIL\n'
		exit 1
	fi
	echo PASS ;;
deadline-always)
	printf -- '--- FAIL: FuzzX (3.10s)\n    context deadline exceeded\nFAIL\n'
	exit 1 ;;
crash)
	printf -- '--- FAIL: FuzzX (0.20s)\n    panic: boom\nFAIL\n'
	exit 1 ;;
esac
`

// TestMakeFuzzRetriesOnlyTheToolchainRace: `make fuzz` runs a target a
// second time only when it failed with Go's spurious "context deadline
// exceeded" and wrote no input, and fails on any other failure at once.
func TestMakeFuzzRetriesOnlyTheToolchainRace(t *testing.T) {
	if _, err := exec.LookPath("make"); err != nil {
		t.Fatalf("make is not installed (%v): install Debian's make package; .ci/run does", err)
	}
	targets := len(fuzzTargets(t))
	for _, c := range []struct {
		mode    string
		wantErr bool
		calls   int
	}{
		{"deadline-once", false, 2 * targets},
		{"deadline-always", true, 2},
		{"crash", true, 1},
	} {
		t.Run(c.mode, func(t *testing.T) {
			dir := t.TempDir()
			fake := filepath.Join(dir, "go")
			if err := os.WriteFile(fake, []byte(fakeGo), 0o755); err != nil {
				t.Fatal(err)
			}
			cmd := makeCmd("-s", "--no-print-directory", "fuzz", "GO="+fake, "FUZZTIME=3s")
			cmd.Env = append(cmd.Env, "FAKE_MODE="+c.mode, "FAKE_STATE="+dir)
			out, err := cmd.CombinedOutput()
			if (err != nil) != c.wantErr {
				t.Errorf("make fuzz: error %v, want an error: %v\n%s", err, c.wantErr, out)
			}
			raw, err := os.ReadFile(filepath.Join(dir, "calls"))
			if err != nil {
				t.Fatal(err)
			}
			calls := strings.Split(strings.TrimSpace(string(raw)), "\n")
			if len(calls) != c.calls {
				t.Errorf("go test ran %d times, want %d:\n%s", len(calls), c.calls, raw)
			}
			if !strings.Contains(calls[0], "-fuzztime 3s") {
				t.Errorf("go ran with %q, want -fuzztime 3s", calls[0])
			}
		})
	}
}
