package cli_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/atis-edu/atis-scheduler/internal/testkit/dbtest"
)

func TestDeliveriesList(t *testing.T) {
	t.Parallel()

	ctx := context.Background()
	url := dbtest.NewURL(t)
	pool := dbtest.Pool(t, url)
	var hook, mail, note int64
	require.NoError(t, pool.QueryRow(ctx, `INSERT INTO integrations (name, integration_type, provider, config)
		VALUES ('ops-slack', 'notification', 'webhook', '{"url": "https://hooks.example"}') RETURNING id`).Scan(&hook))
	require.NoError(t, pool.QueryRow(ctx, `INSERT INTO integrations (name, integration_type, provider, config)
		VALUES ('ops-mail', 'email', 'smtp', '{}') RETURNING id`).Scan(&mail))
	require.NoError(t, pool.QueryRow(ctx, `INSERT INTO system_notifications (type, title, message, level)
		VALUES ('license_expiring', 'License lms expires in 7 days', 'Renew it', 'warning') RETURNING id`).Scan(&note))
	_, err := pool.Exec(ctx, `INSERT INTO notification_deliveries (notification_id, integration_id, status, attempts, last_error, delivered_at) VALUES
		($1, $2, 'delivered', 1, NULL, localtimestamp), ($1, $3, 'pending', 2, 'smtp mail.example: connection refused', NULL)`, note, hook, mail)
	require.NoError(t, err)
	env := []string{"DATABASE_URL=" + url}

	out, errOut, code := execute(t, env, "deliveries", "list")
	require.Zero(t, code, errOut)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	require.Len(t, lines, 3)
	require.Regexp(t, `^DELIVERY\s+NOTIFICATION\s+INTEGRATION\s+STATUS\s+ATTEMPTS`, lines[0])
	require.Regexp(t, fmt.Sprintf(`ops-mail \(%d\)\s+pending\s+2\s.*connection refused$`, mail), lines[1])
	require.Regexp(t, fmt.Sprintf(`ops-slack \(%d\)\s+delivered\s+1\s`, hook), lines[2])

	out, _, code = execute(t, env, "deliveries", "list", "--integration", fmt.Sprint(hook), "--status", "delivered", "--json")
	require.Zero(t, code)
	var ds []map[string]any
	require.NoError(t, json.Unmarshal([]byte(out), &ds))
	require.Len(t, ds, 1)
	require.Equal(t, "License lms expires in 7 days", ds[0]["notification"])

	_, errOut, code = execute(t, env, "deliveries", "list", "--status", "lost")
	require.Equal(t, 2, code, errOut)
	require.Contains(t, errOut, `--status "lost" is not one of pending, sending, delivered, failed`)
}

func TestDeliveriesHelp(t *testing.T) {
	t.Parallel()

	for _, args := range [][]string{{"deliveries"}, {"deliveries", "list"}} {
		out, errOut, code := execute(t, nil, append(args, "--help")...)
		require.Zero(t, code, "%v: %s", args, errOut)
		require.Contains(t, out, "Usage:", "%v", args)
	}
}
