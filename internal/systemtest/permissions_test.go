package systemtest_test

import (
	"fmt"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/conversation/conversationtest"
)

// TestPermissionMatrixAPI runs every cell of the permission matrix
// (README "Roles and permissions") through the real HTTP API, and the
// message cells through the WebSocket protocol too: each cell on a fresh
// group of owner olga, admins adam and ada, members mia and max, where
// olga, adam, mia and max have sent one message each (seqs 3 to 6), and
// nick, who is not a member. A refused cell appends nothing: the group's
// last seq stays 6.
func TestPermissionMatrixAPI(t *testing.T) {
	if testing.Short() {
		t.Skip("slow (every cell of the permission matrix on a fresh group of its own, about 8 s); make test runs it")
	}
	sys := startSystem(t, t.TempDir())
	defer stopSystem(t, sys)
	addr := sys.HTTPAddr()
	users := map[string]api{}
	for _, u := range []string{"olga", "adam", "ada", "mia", "max", "nick"} {
		users[u] = api{t, addr, token(t, u, time.Hour)}
	}
	own := map[string]int{"olga": 3, "adam": 4, "mia": 5, "nick": 6}
	const maxMsg = 6
	type cell struct {
		method, path string
		body         map[string]any
		ws           map[string]any // the same action as a WebSocket frame, if it has one
	}
	actions := []struct {
		name string
		do   func(actor, conv string) cell
	}{
		{"send", func(a, c string) cell {
			return cell{"POST", "/messages", map[string]any{"command_id": "x", "body": "hi"}, map[string]any{"type": "send", "body": "hi"}}
		}},
		{"reply", func(a, c string) cell {
			return cell{"POST", "/messages", map[string]any{"command_id": "x", "body": "re", "reply_to": maxMsg}, map[string]any{"type": "send", "body": "re", "reply_to": maxMsg}}
		}},
		{"add member", func(a, c string) cell {
			return cell{"POST", "/members", map[string]any{"command_id": "x", "user_ids": []string{"newbie"}}, nil}
		}},
		{"remove member", func(a, c string) cell { return cell{"DELETE", "/members/max", nil, nil} }},
		{"remove admin", func(a, c string) cell { return cell{"DELETE", "/members/ada", nil, nil} }},
		{"remove owner", func(a, c string) cell { return cell{"DELETE", "/members/olga", nil, nil} }},
		{"promote member to admin", func(a, c string) cell {
			return cell{"PUT", "/members/max/role", map[string]any{"role": "admin"}, nil}
		}},
		{"demote admin to member", func(a, c string) cell {
			return cell{"PUT", "/members/ada/role", map[string]any{"role": "member"}, nil}
		}},
		{"transfer ownership", func(a, c string) cell {
			return cell{"PUT", "/members/max/role", map[string]any{"role": "owner"}, nil}
		}},
		{"rename", func(a, c string) cell { return cell{"PATCH", "", map[string]any{"title": "New title"}, nil} }},
		{"archive", func(a, c string) cell { return cell{"PATCH", "", map[string]any{"archived": true}, nil} }},
		{"edit own message", func(a, c string) cell {
			return cell{"PATCH", fmt.Sprint("/messages/", own[a]), map[string]any{"body": "edited"}, map[string]any{"type": "edit", "seq": own[a], "body": "edited"}}
		}},
		{"edit another's message", func(a, c string) cell {
			return cell{"PATCH", fmt.Sprint("/messages/", maxMsg), map[string]any{"body": "edited"}, map[string]any{"type": "edit", "seq": maxMsg, "body": "edited"}}
		}},
		{"delete own message", func(a, c string) cell {
			return cell{"DELETE", fmt.Sprint("/messages/", own[a]), nil, map[string]any{"type": "delete", "seq": own[a]}}
		}},
		{"delete another's message", func(a, c string) cell {
			return cell{"DELETE", fmt.Sprint("/messages/", maxMsg), nil, map[string]any{"type": "delete", "seq": maxMsg}}
		}},
		{"react", func(a, c string) cell {
			return cell{"PUT", fmt.Sprint("/messages/", maxMsg, "/reactions/", url.PathEscape("👍")), nil, map[string]any{"type": "react", "seq": maxMsg, "emoji": "👍"}}
		}},
		{"leave", func(a, c string) cell { return cell{"POST", "/leave", map[string]any{"command_id": "x"}, nil} }},
	}
	want := map[string][4]string{}
	for _, row := range conversationtest.Matrix() {
		want[row.Action] = row.Outcomes
	}
	const ok = conversationtest.Accepted
	if len(want) != len(actions) {
		t.Fatalf("%d actions, %d rows", len(actions), len(want))
	}
	n := 0
	for _, a := range actions {
		for i, actor := range conversationtest.Actors {
			for _, overWS := range []bool{false, true} {
				if overWS && a.do(actor, "").ws == nil {
					continue
				}
				n++
				conv := matrixGroup(t, users, n)
				c := a.do(actor, conv)
				code := want[a.name][i]
				name := fmt.Sprintf("%s by %s over HTTP", a.name, actor)
				if overWS {
					name = fmt.Sprintf("%s by %s over WebSocket", a.name, actor)
				}
				t.Run(name, func(t *testing.T) {
					var gotCode string
					if overWS {
						gotCode = wsAction(t, addr, users[actor].token, conv, c.ws)
					} else {
						status, out := users[actor].do(c.method, "/v1/conversations/"+conv+c.path, c.body)
						if status >= 400 {
							gotCode, _ = out["code"].(string)
						}
					}
					if gotCode != code {
						t.Errorf("got %q, want %q", gotCode, code)
					}
					if code != ok {
						// Refused: nothing was appended.
						_, conv := users["olga"].do("GET", "/v1/conversations/"+conv, nil)
						if conv["last_seq"] != float64(maxMsg) {
							t.Errorf("a refused %s moved the last seq to %v", a.name, conv["last_seq"])
						}
					}
				})
			}
		}
	}
}

// wsAction sends an action frame over a fresh socket of the user and
// returns the error code it was answered with, or "" for an ack.
func wsAction(t *testing.T, addr, tok, conv string, frame map[string]any) string {
	t.Helper()
	ws := dial(t, addr, tok, false)
	f := map[string]any{"id": "a1", "command_id": "ws-x", "conversation_id": conv}
	for k, v := range frame {
		f[k] = v
	}
	ws.send(f)
	got := ws.await(func(f map[string]any) bool { return f["id"] == "a1" && (f["type"] == "ack" || f["type"] == "error") })
	if got["type"] == "error" {
		return got["code"].(string)
	}
	return ""
}

// matrixGroup creates the group of one cell of the matrix.
func matrixGroup(t *testing.T, users map[string]api, n int) string {
	t.Helper()
	olga := users["olga"]
	status, out := olga.do("POST", "/v1/conversations", map[string]any{"kind": "group", "title": "Matrix", "members": []string{"adam", "ada", "mia", "max"}, "command_id": fmt.Sprint("matrix-", n)})
	if status != http.StatusCreated {
		t.Fatalf("create: %d %v", status, out)
	}
	conv := out["conversation_id"].(string)
	for _, admin := range []string{"adam", "ada"} {
		if status, out := olga.do("PUT", "/v1/conversations/"+conv+"/members/"+admin+"/role", map[string]any{"role": "admin"}); status != http.StatusOK {
			t.Fatalf("making %s an admin: %d %v", admin, status, out)
		}
	}
	for _, u := range []string{"olga", "adam", "mia", "max"} {
		users[u].send(conv, "m-"+u)
	}
	return conv
}
