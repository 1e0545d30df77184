package systemtest_test

import (
	"os"
	"strings"
	"testing"

	"github.com/parley-chat/parley/internal/app"
)

// TestREADMEConfigTable keeps the README's configuration table true: every
// setting appears with its flag and default.
func TestREADMEConfigTable(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range app.Settings() {
		def := "`" + s.Default + "`"
		switch {
		case s.Env == "PARLEY_NODE_ID":
			def = "host name"
		case s.Default == "":
			def = "(empty)"
		}
		row := "| `" + s.Env + "` | `-" + s.Flag + "` | " + def + " |"
		if !strings.Contains(string(readme), row) {
			t.Errorf("README lacks the row %q", row)
		}
	}
}
