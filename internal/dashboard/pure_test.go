package dashboard

import (
	"testing"

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
