package scheduler

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/atis-edu/atis-scheduler/internal/runqueue"
	"github.com/atis-edu/atis-scheduler/internal/schedule"
)

func TestDueTicks(t *testing.T) {
	t.Parallel()

	at := func(m int) time.Time { return time.Date(2026, 6, 1, 12, m, 0, 0, time.UTC) }
	every10 := schedule.Every(10 * time.Minute)
	tests := []struct {
		name        string
		first, now  time.Time
		misfire     string
		runAllCap   int
		wantRun     []time.Time
		wantLastDue time.Time
		wantNext    time.Time
		wantDropped int
	}{
		{"OnTime", at(10), at(10), MisfireRunOnce, 100, []time.Time{at(10)}, at(10), at(20), 0},
		{"RunOnceStandsForEveryMissedTick", at(0), at(35), MisfireRunOnce, 100, []time.Time{at(30)}, at(30), at(40), 0},
		{"RunAllRunsEveryMissedTick", at(0), at(35), MisfireRunAll, 100, []time.Time{at(0), at(10), at(20), at(30)}, at(30), at(40), 0},
		{"RunAllKeepsTheLatestCap", at(0), at(35), MisfireRunAll, 2, []time.Time{at(20), at(30)}, at(30), at(40), 2},
		{"SkipRunsALateTickWithinGrace", at(30), at(30).Add(59 * time.Second), MisfireSkip, 100, []time.Time{at(30)}, at(30), at(40), 0},
		{"SkipDropsTicksPastGrace", at(0), at(35), MisfireSkip, 100, nil, at(30), at(40), 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			run, lastDue, next, dropped := dueTicks(every10, tt.first, tt.misfire, tt.now, tt.runAllCap, time.Minute)
			require.Equal(t, tt.wantRun, run)
			require.Equal(t, tt.wantLastDue, lastDue)
			require.Equal(t, tt.wantNext, next)
			require.Equal(t, tt.wantDropped, dropped)
		})
	}
}

func TestOverlapFilter(t *testing.T) {
	t.Parallel()

	ticks := []time.Time{time.Unix(0, 0), time.Unix(60, 0), time.Unix(120, 0)}
	tests := []struct {
		policy           string
		running, waiting int
		wantRuns         int
		wantDropped      int
	}{
		{runqueue.OverlapAllow, 1, 5, 3, 0},
		{runqueue.OverlapSkip, 0, 0, 1, 2},
		{runqueue.OverlapSkip, 1, 0, 0, 3},
		{runqueue.OverlapSkip, 0, 1, 0, 3},
		{runqueue.OverlapQueueOne, 1, 0, 1, 2},
		{runqueue.OverlapQueueOne, 0, 0, 1, 2},
		{runqueue.OverlapQueueOne, 1, 1, 0, 3},
	}
	for _, tt := range tests {
		run, dropped := overlapFilter(tt.policy, ticks, tt.running, tt.waiting)
		require.Len(t, run, tt.wantRuns, "%+v", tt)
		require.Equal(t, tt.wantDropped, dropped, "%+v", tt)
	}
}
