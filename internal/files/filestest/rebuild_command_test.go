package filestest_test

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// repoRoot is the repository's root, read before any test starts the
// embedded S3 server (which changes the process's working directory).
var repoRoot string

func TestMain(m *testing.M) {
	wd, err := os.Getwd()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	repoRoot = filepath.Join(wd, "..", "..", "..")
	os.Exit(m.Run())
}

// buildParley builds the parley binary into a temporary directory.
func buildParley(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "parley")
	build := exec.Command("go", "build", "-o", bin, ".")
	build.Dir = repoRoot
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building parley: %v\n%s", err, out)
	}
	return bin
}

// runParley runs bin with args as a separate process, without the
// PARLEY_* settings of the test's environment, and returns its exit
// status and output.
func runParley(t *testing.T, bin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), bin, args...)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PARLEY_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Dir = t.TempDir()
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		code = ee.ExitCode()
	default:
		t.Fatalf("running parley %v: %v", args, err)
	}
	return code, out.String(), errOut.String()
}

// TestRebuildFilesCommand runs `parley rebuild files` as an operator
// does, the built binary over the data dir of a stopped `parley run`,
// after files were shared in two conversations (a message with two
// files, one with a file then deleted, a direct message with one): it
// exits 0 and finds nothing different; after a message's list of files
// is altered in the bucket, it exits 1 and names the conversation.
func TestRebuildFilesCommand(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the parley binary and runs a system (about 30 s); TestRebuildFiles checks the same rebuild in process")
	}
	bin := buildParley(t) // before the S3 server changes the working directory
	dir := t.TempDir()
	sys := startSystem(t, dir)
	alice := newClient(t, sys, "alice")
	group := alice.createGroup("bob", "carol")
	direct := alice.want(http.StatusCreated, "POST", "/v1/conversations", "/v1/conversations", map[string]any{"kind": "direct", "members": []string{"bob"}})["conversation_id"].(string)

	send := func(conv, cmd, body string, files ...[2]string) int {
		t.Helper()
		var atts []map[string]any
		for _, f := range files {
			atts = append(atts, map[string]any{"upload_id": alice.upload(conv, f[0], "text/plain", []byte(f[1]))})
		}
		out := alice.want(http.StatusCreated, "POST", "/v1/conversations/"+conv+"/messages", messagesDoc,
			map[string]any{"command_id": cmd, "body": body, "attachments": atts})
		return int(out["seq"].(float64))
	}
	kept := send(group, "m1", "the minutes and the plan", [2]string{"minutes.txt", "the minutes"}, [2]string{"plan.txt", "the plan"})
	gone := send(group, "m2", "a draft", [2]string{"draft.txt", "a draft"})
	dm := send(direct, "m3", "for you", [2]string{"note.txt", "a note"})
	alice.want(http.StatusOK, "DELETE", fmt.Sprintf("/v1/conversations/%s/messages/%d?command_id=del1", group, gone), "/v1/conversations/{id}/messages/{seq}", nil)

	// The embedded store keeps each object as a file under the data dir:
	// the files projection is done when the kept messages' lists are
	// there and the deleted one's is gone.
	listOf := func(conv string, seq int) string { return fmt.Sprintf("/messages/%s/%d", conv, seq) }
	var keptList string
	eventually(t, "the files projection done with the workload", func() bool {
		found := map[string]string{}
		_ = filepath.WalkDir(filepath.Join(dir, "files"), func(p string, d fs.DirEntry, err error) error {
			if err == nil && !d.IsDir() {
				for _, l := range []string{listOf(group, kept), listOf(group, gone), listOf(direct, dm)} {
					if strings.HasSuffix(p, l) {
						found[l] = p
					}
				}
			}
			return nil
		})
		keptList = found[listOf(group, kept)]
		return keptList != "" && found[listOf(direct, dm)] != "" && found[listOf(group, gone)] == ""
	})
	stopSystem(t, sys)

	args := []string{"rebuild", "files", "-data-dir", dir, "-kafka-listen", "127.0.0.1:0", "-partitions", "2", "-log-level", "warn"}
	code, stdout, stderr := runParley(t, bin, args...)
	if code != 0 || !strings.Contains(stdout, "2 conversations compared, 0 differ") {
		t.Fatalf("parley rebuild files: exit %d\n%s%s", code, stdout, stderr)
	}

	// Behind the log's back, the kept message loses a file from its list.
	raw, err := os.ReadFile(keptList)
	if err != nil {
		t.Fatal(err)
	}
	altered := bytes.Replace(raw, []byte(`","`), []byte(`"]`), 1)
	if i := bytes.IndexByte(altered, ']'); i >= 0 {
		altered = altered[:i+1]
	}
	if bytes.Equal(altered, raw) {
		t.Fatalf("the list %s is not a list of two uploads", raw)
	}
	if err := os.WriteFile(keptList, altered, 0o600); err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr = runParley(t, bin, args...)
	if code != 1 || !strings.Contains(stdout, "differs: conversation/"+group+" ") || strings.Contains(stdout, "conversation/"+direct) ||
		!strings.Contains(stdout, "2 conversations compared, 1 differ") {
		t.Errorf("parley rebuild files after the list was altered: exit %d; want 1 naming %s only\n%s%s", code, group, stdout, stderr)
	}
}
