package disktest_test

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/parley-chat/parley/internal/disktest"
)

func TestFilesHolding(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "a", "b"), 0o755); err != nil {
		t.Fatal(err)
	}
	for name, body := range map[string]string{"one": "apples at dawn", "a/two": "nothing here", "a/b/three": "pears and apples"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	found, read, err := disktest.FilesHolding(dir, "apples", "dusk")
	slices.Sort(found)
	want := []string{filepath.Join(dir, "a/b/three") + ": apples", filepath.Join(dir, "one") + ": apples"}
	if err != nil || read != 3 || !slices.Equal(found, want) {
		t.Errorf("FilesHolding = %v, %d files, %v; want %v, 3 files", found, read, err, want)
	}
	if found, read, err := disktest.FilesHolding(filepath.Join(dir, "missing"), "apples"); err != nil || read != 0 || len(found) != 0 {
		t.Errorf("a missing dir: %v, %d, %v", found, read, err)
	}
}
