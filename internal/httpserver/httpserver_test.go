package httpserver_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/atis-edu/atis-scheduler/internal/httpserver"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(b)
}

// TestWithUI: the dashboard answers every path but the operational ones,
// which stay as they are; without it, those paths are all there is.
func TestWithUI(t *testing.T) {
	t.Parallel()

	ready := func(context.Context) error { return nil }
	ui := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "ui "+r.URL.Path) })
	for _, tt := range []struct {
		name string
		ui   http.Handler
		want map[string]string // path → body; "" means 404
	}{
		{"WithUI", ui, map[string]string{"/": "ui /", "/schedules/3": "ui /schedules/3", "/healthz": "ok\n", "/readyz": "ready\n"}},
		{"Off", nil, map[string]string{"/": "", "/schedules/3": "", "/healthz": "ok\n"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()

			s, err := httpserver.Listen("127.0.0.1:0", ready, nil, slog.New(slog.DiscardHandler), httpserver.WithUI(tt.ui))
			require.NoError(t, err)
			require.NoError(t, s.Start(context.Background()))
			defer s.Stop()
			for path, want := range tt.want {
				code, body := get(t, "http://"+s.Addr()+path)
				if want == "" {
					require.Equal(t, http.StatusNotFound, code, path)
					continue
				}
				require.Equal(t, http.StatusOK, code, path)
				require.Equal(t, want, body, path)
			}
		})
	}
}
