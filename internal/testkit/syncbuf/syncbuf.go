// Package syncbuf is a bytes.Buffer that goroutines may write and read at
// once: where tests collect a logger's or a process's output.
package syncbuf

import (
	"bytes"
	"sync"
)

// Buffer is safe for concurrent writes and reads. The zero value is ready.
type Buffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

// Write appends p.
func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// String returns what was written so far.
func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
