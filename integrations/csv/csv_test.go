package csv_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/atis-edu/atis-scheduler/integrations/provider"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/atis-edu/atis-scheduler/integrations/csv"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestMemoryStaysFlat streams a generated CSV (100 MB; ATIS_CSV_MEMORY_MB
// sets another size, e.g. 1024) from a handler that writes rows as it goes,
// and checks that the heap never grows by more than 64 MiB while every row
// is read, however large the file.
func TestMemoryStaysFlat(t *testing.T) {
	t.Parallel()

	size := 100
	if s := os.Getenv("ATIS_CSV_MEMORY_MB"); s != "" {
		var err error
		size, err = strconv.Atoi(s)
		require.NoError(t, err)
	}
	const row = "%08d,Student number %08d with a reasonably long name,10-A,2026-09-01,some.address@school.example.az,+994500000000\n"
	rowLen := len(fmt.Sprintf(row, 0, 0))
	rows := size << 20 / rowLen
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		bw := bufio.NewWriterSize(w, 64<<10)
		_, _ = bw.WriteString("id,name,grade,enrolled,email,phone\n")
		for i := range rows {
			_, _ = fmt.Fprintf(bw, row, i, i)
		}
		_ = bw.Flush()
	}))
	t.Cleanup(srv.Close)

	cfg, _ := json.Marshal(map[string]any{"url": srv.URL, "id_column": "id"})
	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	// The heap is sampled every 10 ms while the file is read, and as each
	// page arrives (when it is largest).
	var mu sync.Mutex
	var peak uint64
	sample := func() {
		var now runtime.MemStats
		runtime.ReadMemStats(&now)
		mu.Lock()
		peak = max(peak, now.HeapAlloc)
		mu.Unlock()
	}
	done := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		for {
			select {
			case <-done:
				return
			case <-time.After(10 * time.Millisecond):
				sample()
			}
		}
	}()
	var seen int
	start := time.Now()
	err := csv.Provider{}.Fetch(context.Background(), provider.FetchRequest{Config: cfg, Client: &http.Client{}}, func(p provider.Page) error {
		seen += len(p.Records)
		sample()
		return nil
	})
	close(done)
	<-sampled
	require.NoError(t, err)
	require.Equal(t, rows, seen)
	growth := int64(peak) - int64(before.HeapAlloc)
	t.Logf("%d MiB, %d rows in %s: heap grew by at most %.1f MiB", size, rows, time.Since(start).Round(time.Millisecond), float64(growth)/(1<<20))
	require.Less(t, growth, int64(64<<20))
}

func TestConfigErrors(t *testing.T) {
	t.Parallel()

	for _, tt := range []struct{ name, config, want string }{
		{"NeitherURLNorFile", `{"id_column": "id"}`, `csv config: set one of "url" and "file"`},
		{"Both", `{"url": "https://data.example/a.csv", "file": "a.csv", "id_column": "id"}`, `set one of "url" and "file"`},
		{"NoIDColumn", `{"url": "https://data.example/a.csv"}`, `"id_column" is required`},
		{"LongDelimiter", `{"url": "https://data.example/a.csv", "id_column": "id", "delimiter": ";;"}`, `delimiter ";;" is not one character`},
		{"QuoteDelimiter", `{"url": "https://data.example/a.csv", "id_column": "id", "delimiter": "\""}`, `is not one character (other than a quote`},
		{"UnknownEncoding", `{"url": "https://data.example/a.csv", "id_column": "id", "encoding": "koi8-r"}`, `encoding "koi8-r" is not one of utf-8, windows-1251, utf-16`},
		{"PageTooLarge", `{"url": "https://data.example/a.csv", "id_column": "id", "rows_per_page": 100000}`, "rows_per_page 100000 is not between 1 and 10000"},
		{"FTP", `{"url": "ftp://data.example/a.csv", "id_column": "id"}`, `is not an absolute http(s) URL`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := csv.Provider{}.Fetch(context.Background(), provider.FetchRequest{Config: json.RawMessage(tt.config)},
				func(provider.Page) error { return nil })
			require.ErrorContains(t, err, tt.want)
		})
	}
}

// TestNotARegularFile: a named pipe (or a directory, a device) named by
// config.file is refused at once, without waiting for a writer (opening a
// FIFO for reading used to block the sync past its deadline and a
// shutdown until someone wrote to it).
func TestNotARegularFile(t *testing.T) {
	t.Parallel()

	dir := t.TempDir()
	require.NoError(t, syscall.Mkfifo(filepath.Join(dir, "pipe.csv"), 0o600))
	require.NoError(t, os.Mkdir(filepath.Join(dir, "folder.csv"), 0o700))
	for _, tt := range []struct{ file, want string }{
		{"pipe.csv", `"pipe.csv" under ATIS_IMPORT_DIR is not a regular file (a named pipe)`},
		{"folder.csv", `"folder.csv" under ATIS_IMPORT_DIR is not a regular file (a directory)`},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		start := time.Now()
		err := csv.Provider{ImportDir: dir}.Fetch(ctx, provider.FetchRequest{Config: json.RawMessage(`{"file": "` + tt.file + `", "id_column": "id"}`)},
			func(provider.Page) error { return nil })
		cancel()
		require.ErrorContains(t, err, tt.want)
		require.ErrorIs(t, err, provider.ErrPermanent, "an admin must fix it: no retry")
		require.Less(t, time.Since(start), time.Second, "refused at once, not after the deadline")
	}
}
