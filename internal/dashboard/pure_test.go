package dashboard

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestDescribe(t *testing.T) {
	t.Parallel()

	str := func(s string) *string { return &s }
	n := func(i int32) *int32 { return &i }
	for _, tt := range []struct {
		cron     *string
		interval *int32
		want     string
	}{
		{str("*/5 * * * *"), nil, "every 5 minutes"},
		{str("30 2 * * *"), nil, "daily at 02:30"},
		{str("0 9 * * 1-5"), nil, "on weekdays at 09:00"},
		{str("5 * * * *"), nil, "hourly at minute 5"},
		{str("* * * * *"), nil, "every minute"},
		{str("@daily"), nil, "daily at 00:00"},
		{str("@every 90m"), nil, "every 90m"},
		{str("0 0 1 * *"), nil, "cron"},
		{str("0 */2 * * *"), nil, "cron"},
		{str(""), n(15), "every 15 minutes"},
		{nil, n(120), "every 2 hour(s)"},
		{nil, n(2880), "every 2 day(s)"},
		{nil, nil, "no schedule"},
	} {
		require.Equal(t, tt.want, describe(tt.cron, tt.interval), "%v %v", tt.cron, tt.interval)
	}
}

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
	} {
		require.Equal(t, want, localPath(in), in)
	}
}

func TestScrub(t *testing.T) {
	t.Parallel()

	msg := "GET https://svc:pa55@lms.example.az/x failed; see http://host/y and mail a@b"
	require.Equal(t, "GET https://[redacted]@lms.example.az/x failed; see http://host/y and mail a@b", scrub(&msg))
	require.Equal(t, "—", scrub((*string)(nil)))
}
