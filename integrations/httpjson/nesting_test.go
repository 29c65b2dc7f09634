package httpjson

import (
	"strings"
	"testing"
)

func TestNesting(t *testing.T) {
	t.Parallel()

	tests := map[string]int{
		`1`:                       0,
		`[]`:                      1,
		`{"a": [1, {"b": []}]}`:   4,
		`["[[[", "{{\"]]"]`:       1,
		`{"a\\": "[", "b": [[]]}`: 3,
		strings.Repeat("[", 600) + strings.Repeat("]", 600): MaxNesting + 1,
	}
	for in, want := range tests {
		if got := nesting([]byte(in)); got != want {
			t.Errorf("nesting(%.40q) = %d, want %d", in, got, want)
		}
	}
}
