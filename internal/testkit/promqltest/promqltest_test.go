package promqltest_test

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/stretchr/testify/require"

	"github.com/atis-edu/atis-scheduler/internal/testkit/promqltest"
)

func TestParse(t *testing.T) {
	t.Parallel()

	type sel = promqltest.Selector
	tests := []struct {
		name, expr string
		want       promqltest.Expr
	}{
		{"Bare", `up`, promqltest.Expr{Selectors: []sel{{Name: "up"}}}},
		{"MatchersWithBracesInStrings", `up{job="a}b", instance=~"x|{y}"} == 0`,
			promqltest.Expr{Selectors: []sel{{Name: "up", Matchers: `{job="a}b", instance=~"x|{y}"}`}}}},
		{"FunctionsRangesAndAggregation",
			`histogram_quantile(0.99, sum by (le) (rate(a_bucket{x="1"}[10m]))) > 30`,
			promqltest.Expr{Selectors: []sel{{Name: "a_bucket", Matchers: `{x="1"}`}}, Labels: []string{"le"}}},
		{"AggregationClauseAfter", `sum(rate(a_total[$__rate_interval])) without (instance, job)`,
			promqltest.Expr{Selectors: []sel{{Name: "a_total"}}, Labels: []string{"instance", "job"}}},
		{"VectorMatching", `max by (j) (a >= on (job, instance) group_left b) and ignoring(state) c offset 5m`,
			promqltest.Expr{Selectors: []sel{{Name: "a"}, {Name: "b"}, {Name: "c"}}, Labels: []string{"instance", "j", "job", "state"}}},
		{"GroupLeftWithoutList", `a * on (x) group_left b`,
			promqltest.Expr{Selectors: []sel{{Name: "a"}, {Name: "b"}}, Labels: []string{"x"}}},
		{"StringsAndVariablesAreNotNames", `label_replace(a{job=~"$job"}, "dst", "$1 up", "src", "(.*)") / ${b} + 1e3 - time()`,
			promqltest.Expr{Selectors: []sel{{Name: "a", Matchers: `{job=~"$job"}`}}}},
		{"Comment", "a # b\n+ c", promqltest.Expr{Selectors: []sel{{Name: "a"}, {Name: "c"}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()

			got, err := promqltest.Parse(tt.expr)
			require.NoError(t, err)
			require.Empty(t, cmp.Diff(tt.want, got), "(-want +got)")
		})
	}

	for _, bad := range []string{`{__name__="up"}`, `up{job="x"`, `rate(up[5m)`, `"open`} {
		_, err := promqltest.Parse(bad)
		require.Error(t, err, bad)
	}
}
