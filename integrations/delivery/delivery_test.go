package delivery_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/atis-edu/atis-scheduler/integrations/delivery"
	"github.com/atis-edu/atis-scheduler/workers/licenses"
)

const (
	smtpUser      = "mailer"
	smtpPassword  = "smtp-PLANTED-password-7c1e"
	signingSecret = "whsec-PLANTED-secret-93ab"
)

// mailConfig is an smtp integration's config for server m.
func mailConfig(t *testing.T, m *mailServer, extra map[string]any) map[string]any {
	cfg := map[string]any{"host": "127.0.0.1", "port": m.port(t), "tls": "starttls", "auth": "plain",
		"from": "ATİS <noreply@atis.example>", "to": []string{"ops@atis.example"}}
	for k, v := range extra {
		cfg[k] = v
	}
	return cfg
}

func mailCredentials() map[string]string {
	return map[string]string{"username": smtpUser, "password": smtpPassword}
}

func TestLicenseExpiringReachesPeopleOnce(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t)
	hook := newReceiver(t, signingSecret)
	mail := newMailServer(t, b, smtpUser, smtpPassword)
	hookID := b.integration(t, "notification", "webhook", map[string]any{"url": hook.URL + "/atis", "format": "json"},
		map[string]string{"signing_secret": signingSecret})
	b.integration(t, "email", "smtp", mailConfig(t, mail, nil), mailCredentials())

	var moduleID int64
	require.NoError(t, b.pool.QueryRow(ctx, `INSERT INTO system_modules (name, code) VALUES ('Learning', 'lms') RETURNING id`).Scan(&moduleID))
	_, err := b.pool.Exec(ctx, `INSERT INTO licenses (license_key, module_code, license_type, issued_at, expires_at, status)
		VALUES ('key-1', 'lms', 'standard', '2026-01-01', localtimestamp + interval '7 days' - interval '1 minute', 'active')`)
	require.NoError(t, err)
	// The daemon's own alert, written by the license check as it always is.
	_, err = licenses.Checker{Pool: b.pool}.Check(ctx, nil)
	require.NoError(t, err)
	require.Equal(t, 1, b.count(t, "SELECT count(*) FROM system_notifications WHERE type = 'license_expiring'"))

	d := b.dispatcher()
	for range 3 {
		b.run(t, d)
		_, err := licenses.Checker{Pool: b.pool}.Check(ctx, nil)
		require.NoError(t, err)
	}

	got := hook.received()
	require.Len(t, got, 1, "one webhook call however many times the dispatch runs")
	require.Zero(t, hook.badSig)
	require.Equal(t, "license_expiring", got[0].Body["type"])
	require.NotEmpty(t, got[0].Headers.Get("Idempotency-Key"))
	msgs := mail.messages()
	require.Len(t, msgs, 1, "one e-mail however many times the dispatch runs")
	require.Equal(t, []string{"ops@atis.example"}, msgs[0].To)
	require.True(t, contains(msgs[0].Data, "text/plain", "text/html", "Message-ID: <atis-i"), msgs[0].Data)
	require.Equal(t, 2, b.count(t, "SELECT count(*) FROM notification_deliveries WHERE status = 'delivered' AND attempts = 1"))
	require.Equal(t, 1, b.count(t, `SELECT count(*) FROM integration_sync_logs WHERE integration_id = $1 AND sync_type = 'export'
		AND status = 'completed' AND records_processed = 1 AND records_created = 1`, hookID), "one export log, for the run that sent")
}

func TestFailingScheduleAlertIsDelivered(t *testing.T) {
	t.Parallel()
	b := setup(t)
	hook := newReceiver(t, "")
	b.integration(t, "notification", "webhook", map[string]any{"url": hook.URL, "format": "slack", "min_level": "danger"}, map[string]any{})
	// As scheduler/finalize.go writes it when a schedule has failed
	// ATIS_FAILURE_ALERT_THRESHOLD times in a row.
	_, err := b.pool.Exec(context.Background(), `INSERT INTO system_notifications (type, title, message, level, start_at, target_roles, target_institutions)
		VALUES ('scheduled_job_failing', '"nightly-export" has failed 3 times in a row', 'Last error: boom', 'danger', localtimestamp, '[]', '[]')`)
	require.NoError(t, err)
	b.notify(t, "announcement", "info", "below min_level")
	b.run(t, b.dispatcher())
	got := hook.received()
	require.Len(t, got, 1)
	require.Contains(t, got[0].Body["text"], `"nightly-export" has failed 3 times in a row`)
}

func TestConcurrentDispatchesSendOnce(t *testing.T) {
	t.Parallel()
	b := setup(t)
	hook := newReceiver(t, signingSecret)
	hook.delay.Store(int64(20 * time.Millisecond))
	mail := newMailServer(t, b, smtpUser, smtpPassword)
	b.integration(t, "notification", "webhook", map[string]any{"url": hook.URL, "digest_over": 1000},
		map[string]string{"signing_secret": signingSecret})
	b.integration(t, "email", "smtp", mailConfig(t, mail, map[string]any{"digest_over": 1000}), mailCredentials())
	const n = 8
	for i := range n {
		b.notify(t, "alert", "warning", fmt.Sprintf("n%d", i))
	}
	// Two replicas, each with its own engine, dispatching at once, twice.
	var wg sync.WaitGroup
	for range 4 {
		d := b.dispatcher()
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := d.Run(context.Background())
			require.NoError(t, err)
		}()
	}
	wg.Wait()
	b.run(t, b.dispatcher())

	seen := map[string]int{}
	for _, r := range hook.received() {
		seen[r.Body["title"].(string)]++
	}
	require.Len(t, seen, n)
	for title, c := range seen {
		require.Equal(t, 1, c, "webhook %s", title)
	}
	mails := map[string]int{}
	for _, m := range mail.messages() {
		for i := range n {
			if strings.Contains(m.Data, fmt.Sprintf("] n%d", i)) {
				mails[fmt.Sprintf("n%d", i)]++
			}
		}
	}
	require.Len(t, mails, n)
	for title, c := range mails {
		require.Equal(t, 1, c, "mail %s", title)
	}
	require.Zero(t, hook.badSig)
}

func TestFailuresRetryWithBackoffAndDoNotBlockOthers(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t)
	good := newReceiver(t, "")
	broken := newReceiver(t, "")
	broken.status.Store(http.StatusInternalServerError)
	slow := newReceiver(t, "")
	slow.delay.Store(int64(10 * time.Second))
	down := newReceiver(t, "")
	down.Close()
	goodID := b.integration(t, "notification", "webhook", map[string]any{"url": good.URL}, map[string]any{})
	brokenID := b.integration(t, "notification", "webhook", map[string]any{"url": broken.URL}, map[string]any{})
	slowID := b.integration(t, "notification", "webhook", map[string]any{"url": slow.URL}, map[string]any{})
	downID := b.integration(t, "notification", "webhook", map[string]any{"url": down.URL}, map[string]any{})
	b.notify(t, "alert", "warning", "first")
	b.notify(t, "alert", "warning", "second")

	d := b.dispatcher()
	d.IntegrationTimeout = 500 * time.Millisecond
	start := time.Now()
	res := b.run(t, d)
	require.Less(t, time.Since(start), 5*time.Second, "a slow receiver costs its own timeout only")
	require.Len(t, good.received(), 2)
	require.Equal(t, 2, res.Integrations[goodID].Delivered)
	for _, id := range []int64{brokenID, slowID, downID} {
		r := res.Integrations[id]
		require.Equal(t, 1, r.Failed, "integration %d: one attempt, then the rest wait", id)
		require.Equal(t, 1, r.Released, "integration %d", id)
		require.Equal(t, 1, b.count(t, `SELECT count(*) FROM notification_deliveries WHERE integration_id = $1 AND status = 'pending'
			AND attempts = 1 AND last_error IS NOT NULL AND next_attempt_at > localtimestamp + interval '20 seconds'`, id), "integration %d backs off", id)
		require.Equal(t, 1, b.count(t, `SELECT count(*) FROM integration_sync_logs WHERE integration_id = $1 AND sync_type = 'export'
			AND status = 'failed' AND records_failed = 1 AND error_message IS NOT NULL`, id))
	}
	require.Contains(t, lastError(t, b, brokenID), "500")

	// Before the backoff ends, nothing is tried again.
	res = b.run(t, d)
	require.Zero(t, res.Integrations[brokenID].Claimed)

	// The receiver recovers and the backoff ends: delivered, once each.
	broken.status.Store(http.StatusOK)
	_, err := b.pool.Exec(ctx, `UPDATE notification_deliveries SET next_attempt_at = localtimestamp WHERE integration_id = $1`, brokenID)
	require.NoError(t, err)
	b.run(t, d)
	require.Len(t, broken.received(), 2)
	require.Equal(t, 2, b.count(t, `SELECT count(*) FROM notification_deliveries WHERE integration_id = $1 AND status = 'delivered'
		AND last_error IS NULL`, brokenID))
	require.Equal(t, 2, b.count(t, `SELECT max(attempts) FROM notification_deliveries WHERE integration_id = $1`, brokenID),
		"the failed one took two attempts, the released one's unsent turn was not counted")
}

func lastError(t *testing.T, b *testBundle, integrationID int64) string {
	t.Helper()
	var s string
	require.NoError(t, b.pool.QueryRow(context.Background(), `SELECT string_agg(last_error, ' | ') FROM notification_deliveries WHERE integration_id = $1`,
		integrationID).Scan(&s))
	return s
}

func TestPermanentFailureIsGivenUp(t *testing.T) {
	t.Parallel()
	b := setup(t)
	hook := newReceiver(t, "")
	hook.status.Store(http.StatusBadRequest)
	id := b.integration(t, "notification", "webhook", map[string]any{"url": hook.URL}, map[string]any{})
	b.notify(t, "alert", "warning", "rejected")
	res := b.run(t, b.dispatcher())
	require.Equal(t, 1, res.Integrations[id].GaveUp)
	require.Equal(t, 1, b.count(t, "SELECT count(*) FROM notification_deliveries WHERE status = 'failed' AND last_error LIKE '%400%'"))
}

func TestOlderThanIntegrationIsNotSent(t *testing.T) {
	t.Parallel()
	b := setup(t)
	hook := newReceiver(t, "")
	old := b.notify(t, "alert", "warning", "before the integration")
	_, err := b.pool.Exec(context.Background(), "UPDATE system_notifications SET created_at = localtimestamp - interval '1 hour' WHERE id = $1", old)
	require.NoError(t, err)
	b.integration(t, "notification", "webhook", map[string]any{"url": hook.URL}, map[string]any{})
	b.notify(t, "alert", "warning", "after the integration")
	b.run(t, b.dispatcher())
	got := hook.received()
	require.Len(t, got, 1)
	require.Equal(t, "after the integration", got[0].Body["title"])
	require.Zero(t, b.count(t, "SELECT count(*) FROM notification_deliveries WHERE notification_id = $1", old))
}

func TestDigestAboveN(t *testing.T) {
	t.Parallel()
	b := setup(t)
	hook := newReceiver(t, "")
	mail := newMailServer(t, b, smtpUser, smtpPassword)
	b.integration(t, "notification", "webhook", map[string]any{"url": hook.URL, "digest_over": 3}, map[string]any{})
	b.integration(t, "email", "smtp", mailConfig(t, mail, nil), mailCredentials()) // default digest_over: 10
	for i := range 12 {
		b.notify(t, "alert", "warning", fmt.Sprintf("item %d", i))
	}
	b.run(t, b.dispatcher())
	got := hook.received()
	require.Len(t, got, 1)
	require.Equal(t, true, got[0].Body["digest"])
	require.EqualValues(t, 12, got[0].Body["count"])
	msgs := mail.messages()
	require.Len(t, msgs, 1)
	require.True(t, contains(msgs[0].Data, "12 notifications", "item 0", "item 11"))
	require.Equal(t, 24, b.count(t, "SELECT count(*) FROM notification_deliveries WHERE status = 'delivered'"))
}

func TestFilterAndInstitutionRecipients(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t)
	var inst1, inst2 int64
	require.NoError(t, b.pool.QueryRow(ctx, "INSERT INTO institutions DEFAULT VALUES RETURNING id").Scan(&inst1))
	require.NoError(t, b.pool.QueryRow(ctx, "INSERT INTO institutions DEFAULT VALUES RETURNING id").Scan(&inst2))
	mail := newMailServer(t, b, smtpUser, smtpPassword)
	b.integration(t, "email", "smtp", mailConfig(t, mail, map[string]any{"to": []string{},
		"institution_to": map[string][]string{fmt.Sprint(inst1): {"one@school.example"}, fmt.Sprint(inst2): {"two@school.example"}},
		"types":          []string{"license_expiring"}}), mailCredentials())
	b.notify(t, "license_expiring", "warning", "for one", inst1)
	b.notify(t, "license_expiring", "warning", "for everyone")
	b.notify(t, "maintenance", "warning", "other type", inst1)
	b.run(t, b.dispatcher())
	byRcpt := map[string][]string{}
	for _, m := range mail.messages() {
		for _, to := range m.To {
			for _, title := range []string{"for one", "for everyone", "other type"} {
				if strings.Contains(m.Data, title) {
					byRcpt[to] = append(byRcpt[to], title)
				}
			}
		}
	}
	require.Equal(t, map[string][]string{"one@school.example": {"for one", "for everyone"}, "two@school.example": {"for everyone"}}, byRcpt)
}

func TestStatusesAndCLIFilter(t *testing.T) {
	t.Parallel()
	b := setup(t)
	hook := newReceiver(t, "")
	id := b.integration(t, "notification", "webhook", map[string]any{"url": hook.URL}, map[string]any{})
	b.notify(t, "alert", "info", "listed")
	b.run(t, b.dispatcher())
	ds, err := delivery.ListDeliveries(context.Background(), b.pool, delivery.Filter{IntegrationID: id, Status: "delivered", Limit: 10})
	require.NoError(t, err)
	require.Len(t, ds, 1)
	require.Equal(t, "listed", *ds[0].Notification)
	_, err = delivery.ListDeliveries(context.Background(), b.pool, delivery.Filter{Status: "bogus"})
	require.Error(t, err)
}
