package admin

import (
	"strconv"
	"strings"
)

// filter builds a WHERE clause of the filters given, each value a bound
// parameter: only the filters given are in it, so that each shape gets
// its own plan (and index).
type filter struct {
	conds []string
	args  []any
}

// arg binds v and returns its placeholder ($1, $2, …).
func (f *filter) arg(v any) string {
	f.args = append(f.args, v)
	return "$" + strconv.Itoa(len(f.args))
}

// add adds a condition (built with arg).
func (f *filter) add(cond string) { f.conds = append(f.conds, cond) }

// where is "WHERE a AND b …", or "" when no filter was given.
func (f *filter) where() string {
	if len(f.conds) == 0 {
		return ""
	}
	return "WHERE " + strings.Join(f.conds, " AND ")
}
