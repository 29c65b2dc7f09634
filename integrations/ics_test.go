package integrations_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// calendar is an exam calendar: a weekly lesson in Baku time with one
// week off and one instance moved, an all-day holiday, and an event in UTC.
var calendar = strings.Join([]string{
	"BEGIN:VCALENDAR",
	"VERSION:2.0",
	"PRODID:-//ATIS//Exams//AZ",
	"BEGIN:VEVENT",
	"UID:math-101@school.az",
	"DTSTAMP:20260801T000000Z",
	"DTSTART;TZID=Asia/Baku:20260907T090000",
	"DTEND;TZID=Asia/Baku:20260907T103000",
	"RRULE:FREQ=WEEKLY;BYDAY=MO;UNTIL=20261221T050000Z",
	"EXDATE;TZID=Asia/Baku:20260928T090000",
	"SUMMARY:Riyaziyyat\\, 10-A",
	"CATEGORIES:LESSON,MATH",
	"END:VEVENT",
	"BEGIN:VEVENT",
	"UID:math-101@school.az",
	"DTSTAMP:20260801T000000Z",
	"RECURRENCE-ID;TZID=Asia/Baku:20260914T090000",
	"DTSTART;TZID=Asia/Baku:20260914T120000",
	"DTEND;TZID=Asia/Baku:20260914T133000",
	"SUMMARY:Riyaziyyat (moved)",
	"END:VEVENT",
	"BEGIN:VEVENT",
	"UID:holiday-2026-11-09@school.az",
	"DTSTAMP:20260801T000000Z",
	"DTSTART;VALUE=DATE:20261109",
	"DTEND;VALUE=DATE:20261110",
	"SUMMARY:Dövlət Bayrağı Günü",
	"END:VEVENT",
	"BEGIN:VEVENT",
	"UID:exam-final@school.az",
	"DTSTAMP:20260801T000000Z",
	"DTSTART:20261215T060000Z",
	"DURATION:PT2H",
	"SUMMARY:Final exam",
	"END:VEVENT",
}, "\r\n") + "\r\n"

// malformed are events that parse as iCalendar but cannot be read.
var malformed = strings.Join([]string{
	"BEGIN:VEVENT",
	"UID:broken-time@school.az",
	"DTSTART:2026-13-45",
	"END:VEVENT",
	"BEGIN:VEVENT",
	"UID:broken-zone@school.az",
	"DTSTART;TZID=Mars/Olympus:20260907T090000",
	"END:VEVENT",
	"BEGIN:VEVENT",
	"DTSTART:20260907T090000Z",
	"SUMMARY:no uid",
	"END:VEVENT",
	"BEGIN:VEVENT",
	"UID:broken-line@school.az",
	"this line has no colon",
	"END:VEVENT",
}, "\r\n") + "\r\n"

const endCalendar = "END:VCALENDAR\r\n"

// feed serves body as text/calendar, asking for token when set.
func feed(t *testing.T, body, token string) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if token != "" && r.Header.Get("Authorization") != "Bearer "+token {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		w.Header().Set("Content-Type", "text/calendar; charset=utf-8")
		_, _ = w.Write([]byte(body))
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestICS(t *testing.T) {
	t.Parallel()

	t.Run("RecurringOverrideAllDayAndZones", func(t *testing.T) {
		t.Parallel()
		b := setupPull(t, "")
		srv := feed(t, calendar+endCalendar, "tok-SECRET-ics")
		id := b.pullIntegration(t, "ics", "calendar", map[string]any{"url": srv.URL + "/exams.ics", "max_retries": 0},
			`{"type": "bearer", "token": "tok-SECRET-ics"}`)
		res, err := b.sync(t, id)
		require.NoError(t, err)
		require.Equal(t, 4, res.Created)
		l := b.lastLog(t, id)
		require.Equal(t, []any{"completed", 4, 0}, []any{l.Status, l.Processed, l.Failed})

		// Baku is UTC+4: 09:00 there is 05:00 UTC; the zone and wall time are kept.
		require.Equal(t, "2026-09-07T05:00:00Z", b.payload(t, id, "math-101@school.az", "start,utc"))
		require.Equal(t, "Asia/Baku", b.payload(t, id, "math-101@school.az", "start,tzid"))
		require.Equal(t, "2026-09-07T09:00:00", b.payload(t, id, "math-101@school.az", "start,local"))
		require.Equal(t, "FREQ=WEEKLY;BYDAY=MO;UNTIL=20261221T050000Z", b.payload(t, id, "math-101@school.az", "rrule"), "as written")
		require.Equal(t, `[{"tzid": "Asia/Baku", "value": "20260928T090000"}]`, b.payload(t, id, "math-101@school.az", "exdate"))
		require.Equal(t, "Riyaziyyat, 10-A", b.payload(t, id, "math-101@school.az", "summary"))

		// The moved instance is a record of its own, keyed by its RECURRENCE-ID in UTC.
		require.Equal(t, "2026-09-14T08:00:00Z", b.payload(t, id, "math-101@school.az/20260914T050000Z", "start,utc"))
		require.Equal(t, "2026-09-14T05:00:00Z", b.payload(t, id, "math-101@school.az/20260914T050000Z", "recurrence_id,utc"))

		// All-day: a date, not an instant.
		require.Equal(t, "2026-11-09", b.payload(t, id, "holiday-2026-11-09@school.az", "start,date"))
		require.Empty(t, b.payload(t, id, "holiday-2026-11-09@school.az", "start,utc"))
		require.Equal(t, "PT2H", b.payload(t, id, "exam-final@school.az", "duration"))
		require.NotContains(t, b.everything(t), "tok-SECRET-ics")
	})

	t.Run("MalformedEventsAreInvalid", func(t *testing.T) {
		t.Parallel()
		b := setupPull(t, "")
		srv := feed(t, calendar+malformed+endCalendar, "")
		id := b.pullIntegration(t, "ics", "calendar", map[string]any{"url": srv.URL}, "")
		_, err := b.sync(t, id)
		require.NoError(t, err)
		l := b.lastLog(t, id)
		require.Equal(t, []any{"completed", 8, 4, 4}, []any{l.Status, l.Processed, l.Created, l.Failed})
		sample := fmt.Sprint(l.Details["invalid_records_sample"])
		require.Contains(t, sample, `page 1, event 5 (line 36, UID "broken-time@school.az"): DTSTART: "2026-13-45" is not a date-time`)
		require.Contains(t, sample, `event 6 (line 40, UID "broken-zone@school.az"): DTSTART: TZID "Mars/Olympus" is not an IANA time zone`)
		require.Contains(t, sample, "event 7 (line 44): no UID")
		require.Contains(t, sample, "event 8 (line 48): ical: malformed content line: missing colon")
	})

	t.Run("TruncatedFeedAppliesNothing", func(t *testing.T) {
		t.Parallel()
		b := setupPull(t, "")
		srv := feed(t, calendar, "") // no END:VCALENDAR
		id := b.pullIntegration(t, "ics", "calendar", map[string]any{"url": srv.URL}, "")
		_, err := b.sync(t, id)
		requireFailed(t, b, id, err, "page 1: the feed ends before END:VCALENDAR")
	})

	t.Run("TruncatedInsideAnEvent", func(t *testing.T) {
		t.Parallel()
		b := setupPull(t, "")
		srv := feed(t, calendar+"BEGIN:VEVENT\r\nUID:half", "")
		id := b.pullIntegration(t, "ics", "calendar", map[string]any{"url": srv.URL}, "")
		_, err := b.sync(t, id)
		requireFailed(t, b, id, err, "page 1: the feed ends inside the event that starts on line 36: it was cut off")
	})

	t.Run("NotICalendar", func(t *testing.T) {
		t.Parallel()
		b := setupPull(t, "")
		srv := feed(t, "<html>login</html>", "")
		id := b.pullIntegration(t, "ics", "calendar", map[string]any{"url": srv.URL}, "")
		_, err := b.sync(t, id)
		requireFailed(t, b, id, err, "page 1: the feed is not valid iCalendar (outside its events)")
	})

	t.Run("ServerDown", func(t *testing.T) {
		t.Parallel()
		b := setupPull(t, "")
		srv := feed(t, calendar+endCalendar, "")
		srv.Close()
		id := b.pullIntegration(t, "ics", "calendar", map[string]any{"url": srv.URL, "max_retries": 0}, "")
		_, err := b.sync(t, id)
		requireFailed(t, b, id, err, "connection refused")
	})
}
