package main

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestAppendStringMatchesPython(t *testing.T) {
	// want is what json.dumps(s, ensure_ascii=False) prints in CPython 3.11.
	in := "a\"\\\n\r\t\b\f\x01\x1f\x7f<>&\u2028é😀"
	want := "\"a\\\"\\\\\\n\\r\\t\\b\\f\\u0001\\u001f\x7f<>&\u2028é😀\""
	if got := string(appendString(nil, in)); got != want {
		t.Errorf("appendString(%q) = %s, want %s", in, got, want)
	}
}

// sampleBody has every field the schema requires, plus one the summary
// ignores; the Python side's test uses the same body and the same want.
const sampleBody = `{"statuses":[
	{"id_str":"7","text":"hé😀","lang":"ja","retweet_count":2,"extra":[1],
	 "user":{"id_str":"1","followers_count":10},
	 "entities":{"hashtags":[{"text":"b"},{"text":"a"}]}},
	{"id_str":"8","text":"x","lang":"en","retweet_count":3,"retweeted_status":{"id":1},
	 "user":{"id_str":"1","followers_count":5},
	 "entities":{"hashtags":[{"text":"b"}]}},
	{"id_str":"9","text":"","lang":"ja","retweet_count":0,"retweeted_status":null,
	 "user":{"id_str":"2","followers_count":0},"entities":{"hashtags":[]}}
]}`

const sampleWant = `{"languages":{"en":1,"ja":2},"retweets":1,"statuses":3,"text_chars":4,` +
	`"top_hashtags":[{"count":2,"tag":"b"},{"count":1,"tag":"a"}],` +
	`"total_followers":15,"total_retweet_count":5,"users":2}`

func TestSummarise(t *testing.T) {
	s, err := Summarise([]byte(sampleBody))
	if err != nil {
		t.Fatalf("Summarise: %v", err)
	}
	if got := string(s.AppendCanonical(nil)); got != sampleWant {
		t.Errorf("got  %s\nwant %s", got, sampleWant)
	}
}

func TestSummariseRefuses(t *testing.T) {
	// ok is a valid status; each case breaks one thing.
	const ok = `"id_str":"1","text":"t","lang":"en","retweet_count":1,` +
		`"user":{"id_str":"1","followers_count":1},"entities":{"hashtags":[{"text":"h"}]}`
	cases := []struct {
		name, body string
		status     int
		kind       string
	}{
		{"valid", `{"statuses":[{` + ok + `}]}`, 0, ""},
		{"not json", `{"statuses":[`, 400, "malformed_json"},
		{"trailing data", `{"statuses":[]} x`, 400, "malformed_json"},
		{"invalid utf-8", "{\"statuses\":[{\"text\":\"\xff\"}]}", 400, "malformed_json"},
		{"top level array", `[]`, 422, "wrong_type"},
		{"top level null", `null`, 422, "wrong_type"},
		{"no statuses", `{}`, 422, "wrong_type"},
		{"statuses not array", `{"statuses":{}}`, 422, "wrong_type"},
		{"status not object", `{"statuses":[1]}`, 422, "wrong_type"},
		{"status null", `{"statuses":[null]}`, 422, "wrong_type"},
		{"status missing text", `{"statuses":[{"id_str":"1"}]}`, 422, "wrong_type"},
		{"text number", `{"statuses":[{` + ok + `,"text":1}]}`, 422, "wrong_type"},
		{"text null", `{"statuses":[{` + ok + `,"text":null}]}`, 422, "wrong_type"},
		{"count float", `{"statuses":[{` + ok + `,"retweet_count":1.5}]}`, 422, "wrong_type"},
		{"count bool", `{"statuses":[{` + ok + `,"retweet_count":true}]}`, 422, "wrong_type"},
		{"count negative", `{"statuses":[{` + ok + `,"retweet_count":-1}]}`, 422, "wrong_type"},
		{"count over u32", `{"statuses":[{` + ok + `,"retweet_count":4294967296}]}`, 422, "wrong_type"},
		{"user array", `{"statuses":[{` + ok + `,"user":["1",1]}]}`, 422, "wrong_type"},
		{"retweet string", `{"statuses":[{` + ok + `,"retweeted_status":"x"}]}`, 422, "wrong_type"},
		{"hashtag null", `{"statuses":[{` + ok + `,"entities":{"hashtags":[null]}}]}`, 422, "wrong_type"},
	}
	for _, c := range cases {
		_, err := Summarise([]byte(c.body))
		if c.status == 0 {
			if err != nil {
				t.Errorf("%s: got %v, want no error", c.name, err)
			}
			continue
		}
		bad, isBad := err.(*BadInput)
		if !isBad || bad.Status != c.status || bad.Kind != c.kind {
			t.Errorf("%s: got %v, want %d %s", c.name, err, c.status, c.kind)
		}
	}
}

func TestBuildBatchesRotates(t *testing.T) {
	path := filepath.Join(t.TempDir(), "in.json")
	doc := `{"search_metadata": {}, "statuses": [ {"id": 1}, {"id": 2},
	  {"id": 3} ]}`
	if err := os.WriteFile(path, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := buildBatches(path, 4, 2)
	if err != nil {
		t.Fatalf("buildBatches: %v", err)
	}
	// Three distinct batches for four: batch 3 is batch 0 again.
	want := []string{
		`{"statuses":[{"id": 1},{"id": 2}]}`,
		`{"statuses":[{"id": 2},{"id": 3}]}`,
		`{"statuses":[{"id": 3},{"id": 1}]}`,
	}
	if len(got) != len(want) {
		t.Fatalf("got %d batches, want %d", len(got), len(want))
	}
	for i := range want {
		if string(got[i]) != want[i] {
			t.Errorf("batch %d = %s, want %s", i, got[i], want[i])
		}
	}
	if _, err := buildBatches(path, 1, 4); err == nil {
		t.Error("batch size 4 of 3 statuses: want an error")
	}
}

func TestRunBatchesCompressRoundTrip(t *testing.T) {
	batches := [][]byte{[]byte(`{"statuses":[]}`), bytes.Repeat([]byte("ab"), 5000)}
	line, err := runBatches("compress", 3, 5, batches, 1)
	if err != nil {
		t.Fatalf("runBatches: %v", err)
	}
	if line.CompressedBytes == nil || *line.CompressedBytes <= 0 || len(line.Digest) != 64 {
		t.Errorf("unexpected line %+v", line)
	}
}

func TestHandlers(t *testing.T) {
	srv := httptest.NewServer(newMux())
	defer srv.Close()
	cases := []struct {
		name, method, path, body string
		status                   int
		inBody                   string
	}{
		{"ok", "POST", "/summarise", `{"statuses":[]}`, 200, `"statuses":0`},
		{"malformed", "POST", "/summarise", `{`, 400, `"error":"malformed_json"`},
		{"wrong type", "POST", "/summarise", `{"statuses":1}`, 422, `"error":"wrong_type"`},
		{"too large", "POST", "/summarise", strings.Repeat(" ", bodyLimitBytes+1), 413, `"error":"body_too_large"`},
		{"get", "GET", "/summarise", "", 405, `"error":"method_not_allowed"`},
		{"unknown path", "POST", "/nope", "{}", 404, `"error":"not_found"`},
	}
	for _, c := range cases {
		req, err := http.NewRequest(c.method, srv.URL+c.path, strings.NewReader(c.body))
		if err != nil {
			t.Fatal(err)
		}
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		var got bytes.Buffer
		got.ReadFrom(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != c.status || !strings.Contains(got.String(), c.inBody) {
			t.Errorf("%s: got %d %s, want %d with %s", c.name, resp.StatusCode, got.String(), c.status, c.inBody)
		}
		if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
			t.Errorf("%s: Content-Type %q", c.name, ct)
		}
	}
}
