package integrations_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"
)

// api is a real HTTP server serving records the way a provider would, with
// each pagination type, optional auth, and faults to inject.
type api struct {
	*httptest.Server

	mu       sync.Mutex
	records  []map[string]any // ordered by id
	requests []time.Time
	token    string // required bearer token, if set
	// fault, if set, may answer a request itself (return true).
	fault func(w http.ResponseWriter, r *http.Request, n int) bool
}

func newAPI(t testing.TB, n int) *api {
	a := &api{}
	for i := 1; i <= n; i++ {
		a.records = append(a.records, record(i, "v1", time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)))
	}
	a.Server = httptest.NewServer(http.HandlerFunc(a.serve))
	t.Cleanup(a.Close)
	return a
}

func record(id int, version string, updated time.Time) map[string]any {
	return map[string]any{"id": id, "name": fmt.Sprintf("student %d", id), "version": version, "updated_at": updated.Format(time.RFC3339)}
}

// set replaces (or adds) a record; remove drops one.
func (a *api) set(id int, version string, updated time.Time) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for i, r := range a.records {
		if r["id"] == id {
			a.records[i] = record(id, version, updated)
			return
		}
	}
	a.records = append(a.records, record(id, version, updated))
}

func (a *api) remove(ids ...int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.records = slices.DeleteFunc(a.records, func(r map[string]any) bool { return slices.Contains(ids, r["id"].(int)) })
}

func (a *api) requestTimes() []time.Time {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.requests)
}

func (a *api) serve(w http.ResponseWriter, r *http.Request) {
	a.mu.Lock()
	a.requests = append(a.requests, time.Now())
	n := len(a.requests)
	fault, token := a.fault, a.token
	all := slices.Clone(a.records)
	a.mu.Unlock()
	if fault != nil && fault(w, r, n) {
		return
	}
	if token != "" && r.Header.Get("Authorization") != "Bearer "+token {
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	q := r.URL.Query()
	if since := q.Get("updated_since"); since != "" {
		t, _ := time.Parse(time.RFC3339, since)
		all = slices.DeleteFunc(all, func(rec map[string]any) bool {
			u, _ := time.Parse(time.RFC3339, rec["updated_at"].(string))
			return u.Before(t)
		})
	}
	from, size := 0, len(all)
	body := map[string]any{}
	switch r.URL.Path {
	case "/page":
		p, _ := strconv.Atoi(q.Get("page"))
		size, _ = strconv.Atoi(q.Get("per_page"))
		from = (p - 1) * size
	case "/offset":
		from, _ = strconv.Atoi(q.Get("offset"))
		size, _ = strconv.Atoi(q.Get("limit"))
	case "/cursor":
		from, _ = strconv.Atoi(q.Get("after"))
		size = 100
		if from+size < len(all) {
			body["meta"] = map[string]any{"next": strconv.Itoa(from + size)}
		} else {
			body["meta"] = map[string]any{"next": nil}
		}
	case "/link":
		from, _ = strconv.Atoi(q.Get("start"))
		size = 100
		if from+size < len(all) {
			w.Header().Add("Link", fmt.Sprintf(`</link?start=%d>; rel="next", </link?start=0>; rel="first"`, from+size))
		}
	}
	from = min(from, len(all))
	body["data"] = all[from:min(from+size, len(all))]
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(body)
}
