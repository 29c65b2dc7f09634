// Package bench holds the benchmarks of issue 10 that measure what users run:
// the real atis-scheduler binary with its default settings against River's
// own periodic jobs, the full recording path against bare River, an
// http_json sync against COPY, and the idle daemon. Its TestMain prints one
// markdown table of every figure, including the rows other packages'
// benchmarks appended to ATIS_BENCH_TABLE earlier in the same `make bench`.
//
// The package has no code outside its tests.
//
//	make bench
//	bin/atis-devdb -durable -env TEST_DATABASE_URL -database postgres -- \
//	    go test -run '^$' -bench Steady -benchtime 1x ./internal/testkit/bench/
//
// ATIS_BENCH_SCALE (default 1) scales every count and duration, for trying
// a scenario small; figures at another scale are not the issue's.
package bench
