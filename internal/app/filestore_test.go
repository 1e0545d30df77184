package app

import "testing"

// TestOriginOf: the web client's Content-Security-Policy names the file
// store by the origin of the URL presigned URLs start with.
func TestOriginOf(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"http://127.0.0.1:41873":               "http://127.0.0.1:41873",
		"https://files.example.org/":           "https://files.example.org",
		"https://s3.eu-west-1.amazonaws.com/x": "https://s3.eu-west-1.amazonaws.com",
	} {
		if got, err := originOf(in); err != nil || got != want {
			t.Errorf("originOf(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"", "files.example.org", "://x"} {
		if got, err := originOf(in); err == nil {
			t.Errorf("originOf(%q) = %q, want an error", in, got)
		}
	}
}
