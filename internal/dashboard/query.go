package dashboard

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// query runs sql and collects every row with rowTo (pgx.RowToStructByPos
// for a page's row types); an error says what was being read.
func query[T any](ctx context.Context, pool *pgxpool.Pool, rowTo pgx.RowToFunc[T], what, sql string, args ...any) ([]T, error) {
	rows, err := pool.Query(ctx, sql, args...)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	out, err := pgx.CollectRows(rows, rowTo)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	return out, nil
}
