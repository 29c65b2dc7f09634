package integrations

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// TestIDSet: ids at the edges of its pages, far apart and added twice are
// each in the set once, until removed.
func TestIDSet(t *testing.T) {
	t.Parallel()
	s := newIDSet()
	ids := []int64{1, 63, 64, 4095, 4096, 4097, 1 << 40, 1<<62 + 12345}
	for _, id := range ids {
		require.False(t, s.has(id), id)
		require.True(t, s.add(id), id)
		require.False(t, s.add(id), id)
	}
	for _, id := range ids {
		require.True(t, s.has(id), id)
	}
	require.False(t, s.has(2))
	require.False(t, s.has(4094))
	require.False(t, s.has(8192))
	require.True(t, s.remove(4096))
	require.False(t, s.remove(4096))
	require.False(t, s.has(4096))
	require.True(t, s.has(4095))
	require.True(t, s.has(4097))
	require.Len(t, s.pages, 4) // 1-4095, 4096-8191, and one each for the far ids
}
