package scheduler

// WithFault returns cfg that fails the enqueue at the named step.
func WithFault(cfg Config, fault func(step string) error) Config {
	cfg.fault = fault
	return cfg
}
