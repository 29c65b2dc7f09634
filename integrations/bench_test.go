package integrations_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/atis-edu/atis-scheduler/integrations"
)

const benchPageSize = 1000

// BenchmarkSync pulls records from a local API (pages pre-encoded, so the
// server costs little) into integration_records: a fresh full sync of 100k
// records, then a resync where nothing changed, with the heap sampled every
// 5 ms; a 20k-record sync's peak heap is the baseline for "flat memory".
// Target (issue 4): >= 50,000 records/s.
//
//	make bench   (or: go test ./integrations -run '^$' -bench Sync -benchtime 1x)
func BenchmarkSync(b *testing.B) {
	for b.Loop() {
		small := syncOnce(b, 20_000)
		big := syncOnce(b, 100_000)
		b.ReportMetric(big.fresh, "records/s")
		b.ReportMetric(big.resync, "records/s_resync")
		b.ReportMetric(float64(big.peak)/float64(small.peak), "heap_growth_ratio_100k_vs_20k")
		fmt.Printf("integration sync: 100k records fresh %.0f records/s, resync unchanged %.0f records/s; "+
			"heap growth during the sync %.1f MiB (100k) vs %.1f MiB (20k)\n", big.fresh, big.resync, mib(big.peak), mib(small.peak))
	}
}

type syncFigures struct {
	fresh, resync float64
	peak          uint64
}

func syncOnce(b *testing.B, n int) syncFigures {
	pages := make([][]byte, 0, n/benchPageSize)
	for p := 0; p < n/benchPageSize; p++ {
		recs := make([]map[string]any, benchPageSize)
		for i := range recs {
			id := p*benchPageSize + i + 1
			recs[i] = map[string]any{"id": id, "name": fmt.Sprintf("student %d", id), "grade": id % 12, "school": "School " + strconv.Itoa(id%300),
				"email": fmt.Sprintf("s%d@example.az", id), "updated_at": "2026-01-01T00:00:00Z", "tags": []string{"a", "b"}}
		}
		body, _ := json.Marshal(map[string]any{"data": recs})
		pages = append(pages, body)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, _ := strconv.Atoi(r.URL.Query().Get("page"))
		w.Header().Set("Content-Type", "application/json")
		if p >= 1 && p <= len(pages) {
			_, _ = w.Write(pages[p-1])
			return
		}
		_, _ = w.Write([]byte(`{"data": []}`))
	}))
	defer srv.Close()

	bench := setup(b)
	id := bench.integration(b, map[string]any{"base_url": srv.URL, "records_path": "data", "id_field": "id",
		"pagination": map[string]any{"type": "page", "page_size": benchPageSize}}, nil)

	runtime.GC()
	var base runtime.MemStats
	runtime.ReadMemStats(&base) // the benchmark's own pages are in here
	var peak atomic.Uint64
	stop := make(chan struct{})
	go func() {
		var m runtime.MemStats
		for {
			select {
			case <-stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
			runtime.ReadMemStats(&m)
			if m.HeapInuse > peak.Load() {
				peak.Store(m.HeapInuse)
			}
		}
	}()
	began := time.Now()
	res, err := bench.engine.Sync(context.Background(), integrations.SyncParams{IntegrationID: id, SyncType: "full"}, nil)
	fresh := time.Since(began)
	close(stop)
	require.NoError(b, err)
	require.Equal(b, n, res.Created)
	fmt.Printf("  %d records: fetch+stage %d ms, apply %d ms\n", n, res.FetchMs, res.ApplyMs)
	began = time.Now()
	res, err = bench.engine.Sync(context.Background(), integrations.SyncParams{IntegrationID: id, SyncType: "full"}, nil)
	resync := time.Since(began)
	require.NoError(b, err)
	require.Equal(b, n, res.Unchanged)
	return syncFigures{fresh: float64(n) / fresh.Seconds(), resync: float64(n) / resync.Seconds(), peak: peak.Load() - min(peak.Load(), base.HeapInuse)}
}

func mib(b uint64) float64 { return float64(b) / (1 << 20) }
