package admin_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/atis-edu/atis-scheduler/internal/admin"
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
		// Every expression in words (these said just "cron").
		{str("0 0 1 * *"), nil, "at 00:00 on day 1 of the month"},
		{str("0 */2 * * *"), nil, "at :00 every 2 hours"},
		{str("0 30 2 * * *"), nil, "at 02:30 every day"},
		{str(""), n(15), "every 15 minutes"},
		{nil, n(120), "every 2 hour(s)"},
		{nil, n(2880), "every 2 day(s)"},
		{nil, nil, "no schedule"},
	} {
		require.Equal(t, tt.want, admin.Schedule{Cron: tt.cron, Interval: tt.interval}.Words(), "%v %v", tt.cron, tt.interval)
	}
}
