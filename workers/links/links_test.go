package links_test

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/atis-edu/atis-scheduler/internal/testkit/dbtest"
	"github.com/atis-edu/atis-scheduler/internal/testkit/schedtest"
	"github.com/atis-edu/atis-scheduler/workers/links"
)

func TestMain(m *testing.M) { dbtest.Main(m) }

const (
	aliveStudent = "00000000-0000-0000-0000-000000000001"
	goneStudent  = "00000000-0000-0000-0000-000000000002"
	goneRoom     = "00000000-0000-0000-0000-000000000003"
)

func TestClean(t *testing.T) {
	t.Parallel()

	ctx := context.Background()
	pool := dbtest.NewPool(t)
	exec := func(sql string, args ...any) {
		t.Helper()
		_, err := pool.Exec(ctx, sql, args...)
		require.NoError(t, err)
	}
	// Targets: a uuid-keyed table, one whose name needs quoting, and a
	// bigint-keyed one.
	exec(`CREATE TABLE students (id uuid PRIMARY KEY)`)
	exec(`CREATE TABLE "Class Rooms" (id uuid PRIMARY KEY)`)
	exec(`CREATE TABLE payments (id bigint PRIMARY KEY)`)
	exec(`CREATE TABLE victim (id int)`)
	exec(`INSERT INTO students VALUES ($1)`, aliveStudent)
	exec(`INSERT INTO payments VALUES (7)`)
	exec(`INSERT INTO platform.global_settings (key, value, linked_table, linked_id) VALUES
		('alive', '1', 'students', $1),
		('gone', '1', 'students', $2),
		('room', '1', 'Class Rooms', $3),
		('typo', '1', 'studnets', $2),
		('evil', '1', 'students; DROP TABLE victim; --', $2),
		('kind', '1', 'payments', $2),
		('nolink', '1', NULL, NULL)`, aliveStudent, goneStudent, goneRoom)
	exec(`INSERT INTO platform.audit_logs (action, resource, linked_table, linked_id) VALUES
		('create', 'x', 'students', $1), ('delete', 'x', 'students', $2), ('delete', 'x', 'students', $2)`, aliveStudent, goneStudent)
	exec(`INSERT INTO activity_logs (activity_type, entity_type, entity_id) VALUES ('x', 'payments', 7), ('x', 'payments', 8), ('x', 'students', 1)`)

	res, err := links.Cleaner{Pool: pool}.Clean(ctx)
	require.NoError(t, err)

	require.Equal(t, map[string]map[string]int64{"platform.global_settings": {"students": 1, "Class Rooms": 1}}, res.Cleared)
	require.Equal(t, map[string]map[string]int64{
		"platform.audit_logs": {"students": 2},
		"activity_logs":       {"payments": 1},
	}, res.Orphans)
	require.Equal(t, map[string]map[string]int64{"platform.global_settings": {"studnets": 1, "students; DROP TABLE victim; --": 1}}, res.Unresolved)
	require.Equal(t, map[string]map[string]string{
		"platform.global_settings": {"payments": "payments.id is bigint, the link holds uuid"},
		"activity_logs":            {"students": "students.id is uuid, the link holds bigint"},
	}, res.Incompatible)

	linkOf := func(key string) *string {
		return dbtest.Scalar[*string](t, pool, "SELECT linked_table FROM platform.global_settings WHERE key = $1", key)
	}
	require.Equal(t, "students", *linkOf("alive"))
	require.Nil(t, linkOf("gone"))
	require.Nil(t, linkOf("room"))
	require.Equal(t, "studnets", *linkOf("typo"), "unresolved names are reported, not touched")
	require.Equal(t, "payments", *linkOf("kind"))
	require.Equal(t, 1, dbtest.Scalar[int](t, pool, "SELECT count(*) FROM pg_tables WHERE tablename = 'victim'"), "a name from data never runs as SQL")
	require.Equal(t, 3, dbtest.Scalar[int](t, pool, "SELECT count(*) FROM platform.audit_logs WHERE linked_table IS NOT NULL"), "append-only logs untouched")

	// One audit row per cleared link, with the link it had.
	var prev string
	require.NoError(t, pool.QueryRow(ctx, `SELECT previous_state::text FROM platform.audit_logs a JOIN platform.global_settings g ON g.id = a.resource_id
		WHERE g.key = 'gone' AND a.resource = 'global_settings'`).Scan(&prev))
	require.JSONEq(t, `{"linked_table": "students", "linked_id": "`+goneStudent+`"}`, prev)
	require.Equal(t, 2, dbtest.Scalar[int](t, pool, "SELECT count(*) FROM platform.audit_logs WHERE resource = 'global_settings'"))

	// A second run finds nothing more to clear.
	res, err = links.Cleaner{Pool: pool}.Clean(ctx)
	require.NoError(t, err)
	require.Empty(t, res.Cleared)
}

func TestThroughTheScheduler(t *testing.T) {
	t.Parallel()

	pool := dbtest.NewPool(t)
	h := schedtest.Start(t, pool, links.New(links.Cleaner{Pool: pool}))
	out := h.Run(t, "linked_record_cleanup", map[string]any{})
	require.Equal(t, "completed", out.Status, out.Error)
	var res links.Result
	require.NoError(t, json.Unmarshal(out.Result, &res))
	require.Empty(t, res.Cleared)
	require.EqualError(t, links.New(links.Cleaner{}).ValidateParameters(json.RawMessage(`{"tables": 1}`)),
		`linked_record_cleanup parameters: json: unknown field "tables"`, "parameters it does not take are rejected")
}
