package elasticsearch_test

import (
	"encoding/json"
	"slices"
	"testing"

	"github.com/parley-chat/parley/schemas/elasticsearch"
)

func TestTemplate(t *testing.T) {
	t.Parallel()
	b, err := elasticsearch.Template("parley-test-1")
	if err != nil {
		t.Fatal(err)
	}
	var tpl struct {
		IndexPatterns []string `json:"index_patterns"`
		Template      struct {
			Mappings struct {
				Dynamic    string                    `json:"dynamic"`
				Routing    struct{ Required bool }   `json:"_routing"`
				Properties map[string]map[string]any `json:"properties"`
			} `json:"mappings"`
		} `json:"template"`
	}
	if err := json.Unmarshal(b, &tpl); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(tpl.IndexPatterns, []string{"parley-test-1-*"}) {
		t.Errorf("index_patterns %v", tpl.IndexPatterns)
	}
	m := tpl.Template.Mappings
	if m.Dynamic != "strict" || !m.Routing.Required {
		t.Errorf("mapping is not strict with required routing: %+v", m)
	}
	want := map[string]string{"conversation_id": "keyword", "seq": "long", "sender_id": "keyword", "body": "text", "sent_at": "date", "deleted": "boolean", "files": "keyword"}
	for f, typ := range want {
		if m.Properties[f]["type"] != typ {
			t.Errorf("field %s has type %q, want %q", f, m.Properties[f]["type"], typ)
		}
	}
	if f := m.Properties["files"]; f["index"] != false || f["doc_values"] != false {
		t.Errorf("files is %v, want kept in _source only (index and doc_values false)", f)
	}
	if len(m.Properties) != len(want) {
		t.Errorf("mapping has fields %v, want exactly %v", m.Properties, want)
	}
	if _, err := elasticsearch.Template("Bad Alias"); err == nil {
		t.Error("an invalid alias was accepted")
	}
}

func TestIndexNames(t *testing.T) {
	t.Parallel()
	name := elasticsearch.IndexName("parley-messages", 12)
	if name != "parley-messages-000012" {
		t.Fatalf("IndexName = %q", name)
	}
	if n, ok := elasticsearch.ParseIndexName("parley-messages", name); !ok || n != 12 {
		t.Errorf("ParseIndexName(%q) = %d, %v", name, n, ok)
	}
	for _, bad := range []string{"parley-messages", "parley-messages-00001x", "parley-messages-1-000001", "other-000001", "parley-messages-000000", ""} {
		if _, ok := elasticsearch.ParseIndexName("parley-messages", bad); ok {
			t.Errorf("ParseIndexName accepted %q", bad)
		}
	}
}
