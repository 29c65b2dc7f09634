package httpjson_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/atis-edu/atis-scheduler/integrations/provider"

	"github.com/atis-edu/atis-scheduler/integrations/httpjson"
)

// answer serves every request with one status, Link header and body,
// without a network.
type answer struct {
	link string
	body []byte
}

func (a answer) RoundTrip(r *http.Request) (*http.Response, error) {
	h := http.Header{"Content-Type": {"application/json"}}
	if a.link != "" {
		h.Set("Link", a.link)
	}
	return &http.Response{StatusCode: http.StatusOK, Header: h, Body: io.NopCloser(bytes.NewReader(a.body)),
		ContentLength: int64(len(a.body)), Request: r}, nil
}

var paginations = []map[string]any{
	{"type": "none"},
	{"type": "link"},
	{"type": "cursor", "cursor_param": "after", "next_cursor_path": "meta.next"},
	{"type": "page", "page_size": 2},
	{"type": "offset", "limit": 2},
}

// FuzzFetchPage: whatever a provider answers, reading and parsing its pages
// never panics, and every record handed on has a non-empty external id and
// a JSON payload.
func FuzzFetchPage(f *testing.F) {
	for _, seed := range []struct {
		body, recordsPath, idField, link string
		pagination                       uint8
	}{
		{`{"data": [{"id": 1}, {"id": "2"}, {"id": null}, {"id": ""}, 3, {"id": {"a": 1}}]}`, "data", "id", "", 0},
		{`[{"id": 1, "name": "a"}]`, "", "id", `<https://provider.test/items?page=2>; rel="next"`, 1},
		{`{"data": [{"a": {"b": 7}}], "meta": {"next": "c2"}}`, "data", "a.b", "", 2},
		{`{"data": [{"id": 1}, {"id": 2}]}`, "data", "id", "", 3},
		{`{"data": [{"id": 1}, {"id": 2}]}`, "data", "id", "", 4},
		{`{"data": [{"id": "\u0000"}, {"id*": 1}, {"@this": 2}]}`, "data", "id*", "", 0},
		{`{"data": {"id": 1}}`, "data", "id", "", 0},
		{`{"data": [{"id": 1}]`, "data", "id", "", 0},
		{`{"data": [{"id": 1}]}`, "data|@reverse", "#", `<//other.test/x>; rel="next"`, 1},
		{"{\"data\": [{\"id\": \"\xff\"}]}", "data", "id", "", 0},
	} {
		f.Add([]byte(seed.body), seed.recordsPath, seed.idField, seed.link, seed.pagination)
	}
	f.Fuzz(func(t *testing.T, body []byte, recordsPath, idField, link string, pagination uint8) {
		cfg, err := json.Marshal(map[string]any{"base_url": "https://provider.test/items", "records_path": recordsPath, "id_field": idField,
			"pagination": paginations[int(pagination)%len(paginations)], "max_pages": 3, "max_retries": 0, "timeout_seconds": 5})
		if err != nil {
			return // a field name that is not UTF-8 cannot be configured either
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		req := provider.FetchRequest{Config: cfg, Client: &http.Client{Transport: answer{link: link, body: body}}}
		_ = httpjson.Provider{}.Fetch(ctx, req, func(p provider.Page) error {
			for _, r := range p.Records {
				if r.ExternalID == "" {
					t.Fatalf("page %d: a record without an external id: %q", p.Number, r.Payload)
				}
				if !json.Valid(r.Payload) {
					t.Fatalf("page %d: record %q: payload is not JSON: %q", p.Number, r.ExternalID, r.Payload)
				}
			}
			return nil
		})
	})
}
