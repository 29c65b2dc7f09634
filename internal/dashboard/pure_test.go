package dashboard

import (
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestIsLoopback(t *testing.T) {
	t.Parallel()

	for addr, want := range map[string]bool{
		"127.0.0.1:9464": true, "[::1]:9464": true, "localhost:9464": true, "127.0.0.2:80": true,
		"0.0.0.0:9464": false, ":9464": false, "10.0.0.5:9464": false, "[::]:9464": false, "example.org:9464": false, "nonsense": false,
	} {
		require.Equal(t, want, IsLoopback(addr), addr)
	}
}

func TestLocalPath(t *testing.T) {
	t.Parallel()

	for in, want := range map[string]string{
		"/schedules?sort=name": "/schedules?sort=name", "": "/", "https://evil.example/": "/",
		"//evil.example/": "/", "/\\evil.example": "/", "/x\r\nSet-Cookie: a=b": "/",
		"/\t/evil.example": "/", "/\n/evil.example": "/", "/\x00/evil.example": "/", "/ /evil.example": "/",
		"/%09/evil.example": "/%09/evil.example", "/runs?schedule=x%20y": "/runs?schedule=x%20y", "/\xc0\xaf": "/",
	} {
		require.Equal(t, want, localPath(in), in)
	}
}

// FuzzLocalPath: whatever next= holds, what localPath lets through stays
// on this origin after a browser's URL parser has read it (tabs and
// newlines dropped, C0 controls and spaces trimmed at the ends, backslashes
// read as slashes).
func FuzzLocalPath(f *testing.F) {
	for _, seed := range []string{"/", "/schedules?sort=name", "/\t/evil.example", "//evil", "/\\evil", "/%2F%2Fevil", "/x#//y"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, in string) {
		out := localPath(in)
		if out == "/" {
			return
		}
		browser := strings.Map(func(r rune) rune {
			switch r {
			case '\t', '\n', '\r':
				return -1
			case '\\':
				return '/'
			}
			return r
		}, strings.TrimFunc(out, func(r rune) bool { return r <= ' ' }))
		u, err := url.Parse("https://dashboard.example" + browser)
		if err != nil || u.Host != "dashboard.example" || !strings.HasPrefix(browser, "/") || strings.HasPrefix(browser, "//") {
			t.Fatalf("localPath(%q) = %q, which a browser reads as %q", in, out, browser)
		}
	})
}

func TestScrub(t *testing.T) {
	t.Parallel()

	msg := "GET https://svc:pa55@lms.example.az/x failed; see http://host/y and mail a@b"
	require.Equal(t, "GET https://[redacted]@lms.example.az/x failed; see http://host/y and mail a@b", scrub(&msg))
	require.Equal(t, "—", scrub((*string)(nil)))
}

// TestDurations: a duration under a second is shown in milliseconds (it
// was "0s"), and a whole-seconds column that holds 0 says "<1s".
func TestDurations(t *testing.T) {
	t.Parallel()

	for in, want := range map[int64]string{0: "0 ms", 7: "7 ms", 999: "999 ms", 1000: "1.0s", 4250: "4.2s", 61000: "1m 01s", 3_600_000: "1h 00m"} {
		require.Equal(t, want, milliseconds(&in), in)
	}
	require.Equal(t, "—", milliseconds(nil))
	require.Equal(t, "<1s", duration(int32(0)))
	require.Equal(t, "12s", duration(int32(12)))
}

func TestZoneLabel(t *testing.T) {
	t.Parallel()

	baku, err := time.LoadLocation("Asia/Baku")
	require.NoError(t, err)
	now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	require.Equal(t, "UTC", zoneLabel(time.UTC, now))
	require.Equal(t, "Asia/Baku (+04)", zoneLabel(baku, now))
	require.Equal(t, "2026-11-23 16:00:00 +04", formatTime(now, baku))
}
