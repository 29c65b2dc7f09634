package schedule_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/atis-edu/atis-scheduler/internal/schedule"
)

func TestDescribe(t *testing.T) {
	t.Parallel()

	for _, tt := range []struct{ expr, want string }{
		{"30 2 * * *", "at 02:30 every day"},
		{"*/5 * * * *", "every 5 minutes"},
		{"* * * * *", "every minute"},
		{"15 * * * *", "at :15 past every hour"},
		{"0 9 * * 1-5", "at 09:00 on weekdays (Monday to Friday)"},
		{"0 9 * * MON,WED", "at 09:00 on Mondays and Wednesdays"},
		{"0 0 1 * *", "at 00:00 on day 1 of the month"},
		{"0 0 L * *", "at 00:00 on the last day of the month"},
		{"0 6 1 1,7 *", "at 06:00 on day 1 of the month in January and July"},
		{"0 0 */2 * *", "at 00:00 on day */2 of the month"},
		{"0 */2 * * *", "at :00 every 2 hours"},
		{"30 2 * * * *", "at :02:30 past every hour"},
		{"0 30 2 * * *", "at 02:30 every day"},
		{"*/20 * * * * *", "every 20 seconds"},
		{"* * * * * *", "every second"},
		{"@daily", "at 00:00 every day"},
		{"@every 90m", "every 1h30m"},
		{"0 9-17 * * *", "at :00 past hours 9-17"},
		{"*/5 * * * 1-5", "every 5 minutes on weekdays (Monday to Friday)"},
		{"not a cron", "not a cron"},
	} {
		require.Equal(t, tt.want, schedule.Describe(tt.expr), tt.expr)
	}
}

// TestSixFieldWarning: a 6-field expression whose first five fields mean
// something else as a 5-field one is flagged ("30 2 * * * *" meant as 02:30
// daily is hourly at :02:30); one that agrees is not.
func TestSixFieldWarning(t *testing.T) {
	t.Parallel()

	require.Equal(t, `6 fields are read as second, minute, hour, day, month, weekday: "30 2 * * * *" fires at :02:30 past every hour; `+
		`if you meant at 02:30 every day, write "30 2 * * *"`, schedule.SixFieldWarning("30 2 * * * *", time.UTC))
	require.Empty(t, schedule.SixFieldWarning("0 30 2 * * *", time.UTC), "its first five fields are no 5-field expression")
	require.Empty(t, schedule.SixFieldWarning("30 2 * * *", time.UTC), "5 fields")
	require.Empty(t, schedule.SixFieldWarning("@daily", time.UTC))

	_, err := schedule.ParseCron("0 2 * * * 2026", time.UTC)
	require.ErrorContains(t, err, `its sixth field "2026" looks like a year, but cron has no year field`)
}
