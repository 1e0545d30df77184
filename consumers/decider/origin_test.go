package decider

import (
	"testing"

	"github.com/parley-chat/parley/schemas"
)

// TestOriginNode checks that the gateway node that appended a command is
// named on whatever answers it — event, rejection or duplicate — so that
// targeted routing sends the answer back to that node.
func TestOriginNode(t *testing.T) {
	t.Parallel()
	d := newDecider(t, Limits{})
	withOrigin := func(c cmd, node string) cmd {
		c.attrs.OriginNode = node
		return c
	}
	create := withOrigin(createDirect("alice", "bob", "c1"), "gw-a")
	ev := d.mustEvent(create)
	conv := create.attrs.Subject
	if ev.Attrs.OriginNode != "gw-a" {
		t.Errorf("creation event origin = %q, want gw-a", ev.Attrs.OriginNode)
	}
	back, err := schemas.ParseAttributes(ev.Attrs.Headers())
	if err != nil || back.OriginNode != "gw-a" {
		t.Errorf("origin header round trip = %q, %v; want gw-a", back.OriginNode, err)
	}
	for name, c := range map[string]cmd{
		"a duplicate":   withOrigin(createDirect("alice", "bob", "c1"), "gw-b"),
		"a rejection":   withOrigin(send("carol", conv, "s1", "hi"), "gw-b"),
		"a message":     withOrigin(send("bob", conv, "s2", "hi"), "gw-b"),
		"a bare record": send("bob", conv, "s3", "no origin"),
	} {
		dec, err := d.decide(c)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		out := dec.Event
		if out == nil {
			out = dec.Reply
		}
		if out.Attrs.OriginNode != c.attrs.OriginNode {
			t.Errorf("%s: answer origin = %q, want the command's %q", name, out.Attrs.OriginNode, c.attrs.OriginNode)
		}
	}
}
