package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
)

// firstStatuses is the bench's body: the first n statuses of data/twitter.json.
func firstStatuses(t *testing.T, n int) string {
	t.Helper()
	raw, err := os.ReadFile("../../data/twitter.json")
	if err != nil {
		t.Fatalf("reading data/twitter.json: %v", err)
	}
	var all struct {
		Statuses []json.RawMessage `json:"statuses"`
	}
	if err := json.Unmarshal(raw, &all); err != nil {
		t.Fatalf("parsing data/twitter.json: %v", err)
	}
	body, _ := json.Marshal(map[string]any{"statuses": all.Statuses[:n]})
	return string(body)
}

func post(t *testing.T, body string) (int, map[string]any) {
	t.Helper()
	server := httptest.NewServer(newMux(NewCache(10)))
	defer server.Close()
	resp, err := http.Post(server.URL+"/orders", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatalf("POST /orders: %v", err)
	}
	defer resp.Body.Close()
	var answer map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&answer); err != nil {
		t.Fatalf("decoding the answer: %v", err)
	}
	return resp.StatusCode, answer
}

func TestAnswersTheFirstFiveStatuses(t *testing.T) {
	status, answer := post(t, firstStatuses(t, 5))
	want := map[string]any{"statuses": 5.0, "words": 25.0, "hashtags": 1.0, "followers": 3285.0}
	if status != http.StatusOK {
		t.Fatalf("status = %d, want 200", status)
	}
	for key, value := range want {
		if answer[key] != value {
			t.Errorf("%s = %v, want %v", key, answer[key], value)
		}
	}
}

func TestRejectsBadBodies(t *testing.T) {
	tooLarge := `{"statuses":[],"pad":"` + strings.Repeat("x", bodyLimitBytes) + `"}`
	cases := []struct {
		name, body string
		status     int
		kind       string
	}{
		{"empty", "", 400, "malformed_json"},
		{"truncated", `{"statuses":[`, 400, "malformed_json"},
		{"syntax beats type", `{"statuses":5,`, 400, "malformed_json"},
		{"too deep", strings.Repeat("[", 129) + strings.Repeat("]", 129), 400, "malformed_json"},
		{"not utf-8", "{\"statuses\":[{\"text\":\"\xff\"}]}", 400, "malformed_json"},
		{"deep but within the limit", strings.Repeat("[", 128) + strings.Repeat("]", 128), 422, "wrong_type"},
		{"top-level array", `[]`, 422, "wrong_type"},
		{"text a number", `{"statuses":[{"text":5}]}`, 422, "wrong_type"},
		{"followers a float", `{"statuses":[{"user":{"followers_count":1.5}}]}`, 422, "wrong_type"},
		{"no statuses", `{}`, 422, "missing_field"},
		{"null body", `null`, 422, "missing_field"},
		{"too large", tooLarge, 413, "body_too_large"},
	}
	for _, c := range cases {
		status, answer := post(t, c.body)
		if status != c.status || answer["error"] != c.kind {
			t.Errorf("%s: got %d %v, want %d %s", c.name, status, answer["error"], c.status, c.kind)
		}
	}
}

func TestNullsAndUnknownFieldsTakeDefaults(t *testing.T) {
	body := `{"statuses":[null,{"text":null,"user":null,"entities":{"hashtags":[null]},"extra":[1e400]}]}`
	status, answer := post(t, body)
	if status != http.StatusOK || answer["statuses"] != 2.0 || answer["hashtags"] != 1.0 {
		t.Errorf("got %d %v, want 200 with 2 statuses and 1 hashtag", status, answer)
	}
}

func TestReplaceNextWalksTheSlotsInOrder(t *testing.T) {
	cache := NewCache(3)
	for i := 0; i < 4; i++ {
		cache.ReplaceNext()
	}
	// Requests 0..3 rebuilt slots 0, 1, 2 and then slot 0 again from counter 3.
	if got := cache.slots[0].Load().Key; got != "order-00000003" {
		t.Errorf("slot 0 key = %q, want order-00000003", got)
	}
	if got := cache.slots[1].Load().Key; got != "order-00000001" {
		t.Errorf("slot 1 key = %q, want order-00000001", got)
	}
}

func TestEntriesMatchTheOtherServices(t *testing.T) {
	entry := buildEntry(123_456)
	if entry.Note[:13] != "order 123456 " || len(entry.Note) != noteChars {
		t.Errorf("note = %q", entry.Note)
	}
	if entry.Customer.Address.Zip != "23456" || entry.Lines[3].SKU != "SKU-123456-3" {
		t.Errorf("entry = %+v", entry.Customer.Address)
	}
}
