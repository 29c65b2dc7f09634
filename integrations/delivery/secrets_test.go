package delivery_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
)

// TestSecretsStayInTheirColumn plants an SMTP password, a webhook signing
// secret and a Telegram bot token, makes every kind of delivery succeed and
// fail (a wrong password, a receiver that echoes the token-bearing path),
// and finds each secret only in integrations.credentials.
func TestSecretsStayInTheirColumn(t *testing.T) {
	t.Parallel()
	b := setup(t)
	const botToken = "424242:PLANTED-bot-token-e5d1"
	hook := newReceiver(t, signingSecret)
	mail := newMailServer(t, b, smtpUser, smtpPassword)
	wrongMail := newMailServer(t, b, smtpUser, "not-the-planted-one")
	telegram := newReceiver(t, "")
	telegram.status.Store(http.StatusBadRequest)
	b.integration(t, "notification", "webhook", map[string]any{"url": hook.URL}, map[string]string{"signing_secret": signingSecret})
	b.integration(t, "email", "smtp", mailConfig(t, mail, nil), mailCredentials())
	wrongID := b.integration(t, "email", "smtp", mailConfig(t, wrongMail, nil), mailCredentials())
	tgID := b.integration(t, "notification", "webhook", map[string]any{"url": telegram.URL, "format": "telegram", "chat_id": -100123},
		map[string]string{"bot_token": botToken})
	b.notify(t, "alert", "danger", "secret test")
	b.run(t, b.dispatcher())

	require.Len(t, hook.received(), 1)
	require.Len(t, mail.messages(), 1)
	require.Contains(t, lastError(t, b, wrongID), "smtp 127.0.0.1")
	tgErr := lastError(t, b, tgID)
	require.Contains(t, tgErr, "400")
	require.Contains(t, tgErr, "[redacted]", "the receiver echoed the path")

	for _, secret := range []string{smtpPassword, signingSecret, botToken} {
		found := scanDatabase(t, b, secret)
		require.Equal(t, []string{"public.integrations.credentials"}, found, secret)
		require.NotContains(t, b.logs.String(), secret)
	}
	require.Contains(t, b.logs.String(), "notification delivery failed", "the failures were logged")
}

// scanDatabase lists the columns (schema.table.column) of every table whose
// text holds secret.
func scanDatabase(t *testing.T, b *testBundle, secret string) []string {
	t.Helper()
	ctx := context.Background()
	rows, err := b.pool.Query(ctx, `SELECT c.table_schema, c.table_name, c.column_name::text
		FROM information_schema.columns c JOIN information_schema.tables t USING (table_schema, table_name)
		WHERE t.table_type = 'BASE TABLE' AND c.table_schema NOT IN ('pg_catalog', 'information_schema') AND c.table_schema NOT LIKE 'pg\_%'
		ORDER BY 1, 2, 3`)
	require.NoError(t, err)
	type column struct{ Schema, Table, Name string }
	cols, err := pgx.CollectRows(rows, pgx.RowToStructByPos[column])
	require.NoError(t, err)
	require.NotEmpty(t, cols)
	var found []string
	for _, c := range cols {
		var n int
		sql := fmt.Sprintf("SELECT count(*) FROM %s WHERE strpos(%s::text, $1) > 0", pgx.Identifier{c.Schema, c.Table}.Sanitize(),
			pgx.Identifier{c.Name}.Sanitize())
		require.NoError(t, b.pool.QueryRow(ctx, sql, secret).Scan(&n), sql)
		if n > 0 {
			found = append(found, strings.Join([]string{c.Schema, c.Table, c.Name}, "."))
		}
	}
	return found
}
