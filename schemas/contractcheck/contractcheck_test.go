package contractcheck_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/parley-chat/parley/schemas"
	"github.com/parley-chat/parley/schemas/contractcheck"
)

var newChecker = sync.OnceValues(contractcheck.New)

func checker(t *testing.T) *contractcheck.Checker {
	t.Helper()
	c, err := newChecker()
	if err != nil {
		t.Fatalf("contractcheck.New: %v", err)
	}
	return c
}

func fixture(t *testing.T, ceType string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "testdata", ceType+".json"))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

const (
	d = "d_9333bcb877e9917e7ab716603d6ed862"
	g = "g_d0e7b0f3eaa4eee91387e6aeff73f2d0"
)

func TestResponse(t *testing.T) {
	t.Parallel()
	c := checker(t)
	conversation := `{"conversation_id":"` + g + `","kind":"group","title":"Team","created_by":"alice","created_at":"2025-03-14T09:26:53Z",` +
		`"members":[{"user_id":"alice","role":"owner"}],"last_seq":0,"last_activity":"2025-03-14T09:26:53Z","archived":false,"messages":0}`
	problem := func(status, code string) string {
		return `{"type":"urn:parley:problem:` + code + `","title":"x","status":` + status + `,"detail":"d","code":"` + code + `","retryable":false}`
	}
	history := `{"conversation_id":"` + g + `","has_more":false,"events":[{"conversation_id":"` + g + `","seq":17,` +
		`"event_type":"chat.message.sent.v1","event_id":"e1","time":"2025-03-14T09:27:01.130042Z","data":` + fixture(t, schemas.TypeMessageSent) + `}]}`
	for _, tc := range []struct {
		name, method, path string
		status             int
		contentType, body  string
		want               error // nil, ErrMismatch or ErrUndocumented
	}{
		{"a conversation by its concrete path", "GET", "/v1/conversations/" + g, 200, "application/json", conversation, nil},
		{"a conversation by the path template", "get", "/v1/conversations/{id}", 200, "application/json; charset=utf-8", conversation, nil},
		{"a created conversation", "POST", "/v1/conversations", 201, "application/json", conversation, nil},
		{"a history page, the query ignored", "GET", "/v1/conversations/" + g + "/history?limit=5&after=3", 200, "application/json", history, nil},
		{"a problem", "GET", "/v1/conversations/" + g, 404, "application/problem+json", problem("404", "conversation_not_found"), nil},
		{"a problem under default", "GET", "/v1/conversations/" + g, 500, "application/problem+json", problem("500", "internal"), nil},
		{"a reaction with a URL-encoded emoji", "PUT", "/v1/conversations/" + g + "/messages/17/reactions/%F0%9F%91%8D?command_id=r-1", 200, "application/json",
			`{"conversation_id":"` + g + `","seq":18,"duplicate":false}`, nil},
		{"metrics as text", "GET", "/metrics", 200, "text/plain; version=0.0.4; charset=utf-8", "# HELP x\n", nil},
		{"a path the API does not have, answered with a problem", "GET", "/v1/nothing", 404, "application/problem+json", problem("404", "not_found"), nil},

		{"a conversation without members", "GET", "/v1/conversations/" + g, 200, "application/json", strings.Replace(conversation, `"members":[{"user_id":"alice","role":"owner"}],`, "", 1), contractcheck.ErrMismatch},
		{"a history event whose data is a command", "GET", "/v1/conversations/" + g + "/history", 200, "application/json",
			strings.Replace(history, fixture(t, schemas.TypeMessageSent), fixture(t, schemas.TypeSendMessage), 1), contractcheck.ErrMismatch},
		{"a problem without code", "GET", "/v1/conversations/" + g, 404, "application/problem+json", `{"type":"urn:parley:problem:x","title":"x","status":404}`, contractcheck.ErrMismatch},
		{"a problem whose code is not one of its status", "GET", "/v1/conversations/" + g, 403, "application/problem+json", problem("403", "conversation_not_found"), contractcheck.ErrMismatch},
		{"a problem with another status than the response's", "GET", "/v1/conversations/" + g, 404, "application/problem+json", problem("400", "conversation_not_found"), contractcheck.ErrMismatch},
		{"a problem whose type is not its code's", "GET", "/v1/conversations/" + g, 404, "application/problem+json",
			strings.Replace(problem("404", "conversation_not_found"), `"code":"conversation_not_found"`, `"code":"not_found"`, 1), contractcheck.ErrMismatch},
		{"not JSON", "GET", "/v1/conversations/" + g, 200, "application/json", `{"conversation_id":`, contractcheck.ErrMismatch},
		{"an error as plain JSON", "GET", "/v1/conversations/" + g, 404, "application/json", problem("404", "conversation_not_found"), contractcheck.ErrUndocumented},
		{"an undocumented status", "GET", "/v1/conversations/" + g, 201, "application/json", conversation, contractcheck.ErrUndocumented},
		{"an undocumented method", "PUT", "/v1/conversations/" + g, 200, "application/json", conversation, contractcheck.ErrUndocumented},
		{"a success on a path the API does not have", "GET", "/v1/nothing", 200, "application/json", `{}`, contractcheck.ErrUndocumented},
		{"a missing Content-Type", "GET", "/healthz", 200, "", `{"status":"ok"}`, contractcheck.ErrUndocumented},
	} {
		err := c.Response(tc.method, tc.path, tc.status, tc.contentType, []byte(tc.body))
		switch {
		case tc.want == nil && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.want != nil && !errors.Is(err, tc.want):
			t.Errorf("%s: got %v, want %v", tc.name, err, tc.want)
		}
	}
}

// TestResponseErrorSaysWhat keeps failures readable: the operation, the
// status and what is wrong where.
func TestResponseErrorSaysWhat(t *testing.T) {
	t.Parallel()
	err := checker(t).Response("GET", "/v1/conversations/"+g+"/receipts?seq=3", 200, "application/json",
		[]byte(`{"conversation_id":"`+g+`","seq":3,"members":2,"delivered":2,"read":-1}`))
	if err == nil {
		t.Fatal("receipts with read -1 accepted")
	}
	for _, want := range []string{"GET /v1/conversations/{id}/receipts", "answered 200", "application/json", "'/read'", "minimum"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	if strings.Contains(err.Error(), "\n") {
		t.Errorf("error %q spans lines", err)
	}
}

func TestFrames(t *testing.T) {
	t.Parallel()
	c := checker(t)
	sent := fixture(t, schemas.TypeMessageSent)
	event := `{"type":"event","conversation_id":"` + d + `","seq":17,"event_type":"chat.message.sent.v1","event_id":"e1","time":"2025-03-14T09:27:01.130042Z","data":` + sent + `}`
	for _, tc := range []struct {
		name, frame string
		client      bool
		want        error
	}{
		{"send", `{"type":"send","id":"r2","conversation_id":"` + d + `","command_id":"c-1","body":"hello"}`, true, nil},
		{"auth", `{"type":"auth","id":"r1","token":"eyJ.x.y"}`, true, nil},
		{"typing", `{"type":"typing","conversation_id":"` + d + `"}`, true, nil},
		{"presence_watch", `{"type":"presence_watch","id":"w","user_ids":["bob"]}`, true, nil},
		{"ack", `{"type":"ack","id":"r2","conversation_id":"` + d + `","seq":17,"duplicate":false}`, false, nil},
		{"event", event, false, nil},
		{"user_typing", `{"type":"user_typing","conversation_id":"` + d + `","user_id":"bob","expires_at":"2025-03-14T09:27:07Z"}`, false, nil},
		{"presence", `{"type":"presence","users":[{"user_id":"bob","status":"online"}]}`, false, nil},
		{"error without id", `{"type":"error","code":"bad_frame","message":"x","retryable":false}`, false, nil},

		{"send with an empty body", `{"type":"send","id":"r2","conversation_id":"` + d + `","command_id":"c-1","body":""}`, true, contractcheck.ErrMismatch},
		{"send with an unknown field", `{"type":"send","id":"r2","conversation_id":"` + d + `","command_id":"c-1","body":"hi","x":1}`, true, contractcheck.ErrMismatch},
		{"ack without duplicate", `{"type":"ack","id":"r2","conversation_id":"` + d + `","seq":17}`, false, contractcheck.ErrMismatch},
		{"event with a bad time", strings.Replace(event, "2025-03-14T09:27:01.130042Z", "yesterday", 1), false, contractcheck.ErrMismatch},
		{"event whose data breaks its event type", strings.Replace(event, sent, `{"seq":17}`, 1), false, contractcheck.ErrMismatch},
		{"event whose data is a command", strings.Replace(event, sent, fixture(t, schemas.TypeSendMessage), 1), false, contractcheck.ErrMismatch},
		{"no type", `{"id":"x"}`, true, contractcheck.ErrMismatch},
		{"not an object", `[1]`, false, contractcheck.ErrMismatch},
		{"not JSON", `{"type":`, true, contractcheck.ErrMismatch},
		{"an unknown type", `{"type":"teleport","id":"x"}`, true, contractcheck.ErrUndocumented},
		{"a server frame sent by a client", `{"type":"ack","id":"r2","conversation_id":"` + d + `","seq":17,"duplicate":false}`, true, contractcheck.ErrUndocumented},
		{"a client frame sent by the server", `{"type":"ping","id":"r4"}`, false, contractcheck.ErrUndocumented},
	} {
		check := c.ServerFrame
		if tc.client {
			check = c.ClientFrame
		}
		err := check([]byte(tc.frame))
		switch {
		case tc.want == nil && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.want != nil && !errors.Is(err, tc.want):
			t.Errorf("%s: got %v, want %v", tc.name, err, tc.want)
		}
	}
	err := c.ServerFrame([]byte(`{"type":"gap","conversation_id":"` + g + `","from_seq":1,"to_seq":4,"reason":"other"}`))
	for _, want := range []string{"server frame gap", "'/reason'"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("gap with an unknown reason: error %v does not say %q", err, want)
		}
	}
}

func TestConcurrentUse(t *testing.T) {
	t.Parallel()
	c := checker(t)
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for range 8 {
		wg.Go(func() {
			for range 20 {
				if err := c.ClientFrame([]byte(`{"type":"ping","id":"p"}`)); err != nil {
					errs <- err
				}
				if err := c.Response("GET", "/healthz", 200, "application/json", []byte(`{"status":"ok"}`)); err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
