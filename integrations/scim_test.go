package integrations_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/atis-edu/atis-scheduler/integrations"
)

// scimServer is a SCIM 2.0 service provider with n users and 2 groups.
type scimServer struct {
	*httptest.Server

	n           int
	ignoreCount bool   // answer every resource from startIndex on
	ignoreStart bool   // answer from 1 whatever startIndex
	bearer      string // required token, if set
	user, pass  string // required basic credentials, if set
	noID        int    // a user without an id, if set

	mu      sync.Mutex
	queries []string
}

func newSCIM(t *testing.T, n int) *scimServer {
	s := &scimServer{n: n}
	s.Server = httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(s.Close)
	return s
}

func (s *scimServer) serve(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.queries = append(s.queries, r.URL.Path+"?"+r.URL.RawQuery)
	s.mu.Unlock()
	if u, p, ok := r.BasicAuth(); (s.bearer != "" && r.Header.Get("Authorization") != "Bearer "+s.bearer) ||
		(s.user != "" && (!ok || u != s.user || p != s.pass)) {
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	var all []map[string]any
	switch r.URL.Path {
	case "/scim/v2/Users":
		for i := 1; i <= s.n; i++ {
			u := map[string]any{"schemas": []string{"urn:ietf:params:scim:schemas:core:2.0:User"}, "id": fmt.Sprintf("u-%d", i),
				"userName": fmt.Sprintf("user%d@school.az", i), "active": true, "meta": map[string]any{"resourceType": "User"}}
			if i == s.noID {
				delete(u, "id")
			}
			all = append(all, u)
		}
	case "/scim/v2/Groups":
		all = []map[string]any{{"id": "g-1", "displayName": "Teachers"}, {"id": "g-2", "displayName": "Students"}}
	default:
		http.NotFound(w, r)
		return
	}
	start, _ := strconv.Atoi(r.URL.Query().Get("startIndex"))
	count, _ := strconv.Atoi(r.URL.Query().Get("count"))
	if s.ignoreStart {
		start = 1
	}
	if s.ignoreCount {
		count = len(all)
	}
	page := all[min(start-1, len(all)):min(start-1+count, len(all))]
	w.Header().Set("Content-Type", "application/scim+json")
	_ = json.NewEncoder(w).Encode(map[string]any{"schemas": []string{"urn:ietf:params:scim:api:messages:2.0:ListResponse"},
		"totalResults": len(all), "startIndex": start, "itemsPerPage": len(page), "Resources": page})
}

func (s *scimServer) seen() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.queries...)
}

func scimConfig(s *scimServer, extra map[string]any) map[string]any {
	c := map[string]any{"base_url": s.URL + "/scim/v2", "page_size": 10, "max_retries": 0}
	for k, v := range extra {
		c[k] = v
	}
	return c
}

func TestSCIM(t *testing.T) {
	t.Parallel()

	t.Run("ThreePagesWithTotalResults", func(t *testing.T) {
		t.Parallel()
		b, s := setupPull(t, ""), newSCIM(t, 25)
		id := b.pullIntegration(t, "scim", "sso", scimConfig(s, nil), "")
		res, err := b.sync(t, id)
		require.NoError(t, err)
		require.Equal(t, 3, res.Pages)
		require.Equal(t, 25, res.Created)
		require.Equal(t, "user25@school.az", b.payload(t, id, "u-25", "userName"))
		require.Equal(t, []string{"/scim/v2/Users?count=10&startIndex=1", "/scim/v2/Users?count=10&startIndex=11",
			"/scim/v2/Users?count=10&startIndex=21"}, s.seen())
		l := b.lastLog(t, id)
		require.Equal(t, "completed", l.Status)
		require.Equal(t, 25, l.Processed)
	})

	t.Run("ServerIgnoresCount", func(t *testing.T) {
		t.Parallel()
		b, s := setupPull(t, ""), newSCIM(t, 25)
		s.ignoreCount = true
		id := b.pullIntegration(t, "scim", "sso", scimConfig(s, nil), "")
		res, err := b.sync(t, id)
		require.NoError(t, err)
		require.Equal(t, 1, res.Pages, "25 resources on the first page: startIndex 26 is past totalResults")
		require.Equal(t, 25, b.live(t, id))
	})

	t.Run("ServerIgnoresStartIndex", func(t *testing.T) {
		t.Parallel()
		b, s := setupPull(t, ""), newSCIM(t, 25)
		s.ignoreStart = true
		id := b.pullIntegration(t, "scim", "sso", scimConfig(s, nil), "")
		_, err := b.sync(t, id)
		requireFailed(t, b, id, err, "page 2: Users: asked for startIndex 11, the server answered startIndex 1")
	})

	t.Run("UsersAndGroups", func(t *testing.T) {
		t.Parallel()
		b, s := setupPull(t, ""), newSCIM(t, 5)
		id := b.pullIntegration(t, "scim", "sso", scimConfig(s, map[string]any{"resources": []string{"Users", "Groups"}}), "")
		res, err := b.sync(t, id)
		require.NoError(t, err)
		require.Equal(t, 7, res.Created)
		require.Equal(t, "Teachers", b.payload(t, id, "Groups/g-1", "displayName"))
	})

	t.Run("Bearer", func(t *testing.T) {
		t.Parallel()
		b, s := setupPull(t, ""), newSCIM(t, 3)
		s.bearer = "tok-SECRET-scim"
		good := b.pullIntegration(t, "scim", "sso", scimConfig(s, nil), `{"type": "bearer", "token": "tok-SECRET-scim"}`)
		_, err := b.sync(t, good)
		require.NoError(t, err)
		require.Equal(t, 3, b.live(t, good))
		wrong := b.pullIntegration(t, "scim", "sso", scimConfig(s, nil), `{"type": "bearer", "token": "tok-SECRET-wrong"}`)
		_, err = b.sync(t, wrong)
		requireFailed(t, b, wrong, err, "page 1: the provider answered 401 Unauthorized")
		require.Equal(t, 1, b.count(t, "SELECT count(*) FROM security_events WHERE event_type = 'integration_auth_failed'"))
		for _, secret := range []string{"tok-SECRET-scim", "tok-SECRET-wrong"} {
			require.NotContains(t, b.everything(t), secret)
		}
	})

	t.Run("Basic", func(t *testing.T) {
		t.Parallel()
		b, s := setupPull(t, ""), newSCIM(t, 3)
		s.user, s.pass = "sync", "pw-SECRET-scim"
		id := b.pullIntegration(t, "scim", "sso", scimConfig(s, nil), `{"type": "basic", "username": "sync", "password": "pw-SECRET-scim"}`)
		_, err := b.sync(t, id)
		require.NoError(t, err)
		require.Equal(t, 3, b.live(t, id))
		require.NotContains(t, b.everything(t), "pw-SECRET-scim")
	})

	t.Run("IncrementalFilter", func(t *testing.T) {
		t.Parallel()
		b, s := setupPull(t, ""), newSCIM(t, 3)
		id := b.pullIntegration(t, "scim", "sso", scimConfig(s, map[string]any{"filter_last_modified": true}), "")
		_, err := b.sync(t, id)
		require.NoError(t, err)
		res, err := b.sync(t, id)
		require.NoError(t, err)
		require.Equal(t, "incremental", res.SyncType)
		last := s.seen()[len(s.seen())-1]
		require.Contains(t, last, "filter=meta.lastModified+gt+%22")
		require.NotContains(t, s.seen()[0], "filter")
	})

	t.Run("NoFilterMeansFull", func(t *testing.T) {
		t.Parallel()
		b, s := setupPull(t, ""), newSCIM(t, 3)
		id := b.pullIntegration(t, "scim", "sso", scimConfig(s, nil), "")
		_, err := b.sync(t, id)
		require.NoError(t, err)
		res, err := b.sync(t, id)
		require.NoError(t, err)
		require.Equal(t, "full", res.SyncType)
		_, err = b.engine.Sync(context.Background(), integrations.SyncParams{IntegrationID: id, SyncType: "incremental"}, nil)
		require.ErrorContains(t, err, "provider scim cannot with this config (http_json needs updated_since_param, scim filter_last_modified")
	})

	t.Run("ResourceWithoutID", func(t *testing.T) {
		t.Parallel()
		b, s := setupPull(t, ""), newSCIM(t, 12)
		s.noID = 11
		id := b.pullIntegration(t, "scim", "sso", scimConfig(s, nil), "")
		_, err := b.sync(t, id)
		require.NoError(t, err)
		l := b.lastLog(t, id)
		require.Equal(t, []int{12, 11, 1}, []int{l.Processed, l.Created, l.Failed})
		require.Contains(t, fmt.Sprint(l.Details["invalid_records_sample"]), `page 2, Users resource 11: no "id"`)
	})

	t.Run("NotAListResponse", func(t *testing.T) {
		t.Parallel()
		b := setupPull(t, "")
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "application/scim+json")
			_, _ = w.Write([]byte(`{"Resources": []}`))
		}))
		t.Cleanup(srv.Close)
		id := b.pullIntegration(t, "scim", "sso", map[string]any{"base_url": srv.URL}, "")
		_, err := b.sync(t, id)
		requireFailed(t, b, id, err, "page 1: Users: not a SCIM ListResponse: no totalResults")
	})

	t.Run("ServerDown", func(t *testing.T) {
		t.Parallel()
		b, s := setupPull(t, ""), newSCIM(t, 3)
		s.Close()
		id := b.pullIntegration(t, "scim", "sso", scimConfig(s, nil), `{"type": "bearer", "token": "tok-SECRET-down"}`)
		_, err := b.sync(t, id)
		requireFailed(t, b, id, err, "page 1: ")
		require.Contains(t, *b.lastLog(t, id).Error, "connection refused")
		require.NotContains(t, b.everything(t), "tok-SECRET-down")
	})

	t.Run("WrongTypeIsRefused", func(t *testing.T) {
		t.Parallel()
		b, s := setupPull(t, ""), newSCIM(t, 3)
		id := b.pullIntegration(t, "scim", "lms", scimConfig(s, nil), "")
		_, err := b.sync(t, id)
		requireFailed(t, b, id, err, `provider scim does not support integration_type "lms"`)
		require.True(t, strings.HasPrefix(s.URL, "http://"))
	})
}
