package retention

import "time"

// WithBudget returns p with a budget of d, which may be under a second.
func WithBudget(p Params, d time.Duration) Params {
	p.budgetOverride = d
	return p
}
