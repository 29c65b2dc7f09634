package workers_test

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/atis-edu/atis-scheduler/workers"
)

// TestDecodeParametersInAnAdminsWords: what is wrong with parameters is
// said without Go's type names (it said "cannot unmarshal string into Go
// value of type workers.httpRequestParams").
func TestDecodeParametersInAnAdminsWords(t *testing.T) {
	t.Parallel()

	type params struct {
		Count int      `json:"count"`
		Names []string `json:"names"`
	}
	for _, tt := range []struct{ raw, want string }{
		{`"a string"`, `demo parameters must be a JSON object such as {"key": "value"}, not a string`},
		{`[1, 2]`, "not a list"},
		{`42`, "not a number"},
		{`true`, "not true or false"},
		{`{"count": "x"}`, `demo parameters: "count" must be a whole number, got string`},
		{`{"names": "x"}`, `demo parameters: "names" must be a list, got string`},
		{`{"other": 1}`, `unknown field "other"`},
		{``, ""}, {`null`, ""}, {`{"count": 3}`, ""},
	} {
		var p params
		err := workers.DecodeParameters("demo", json.RawMessage(tt.raw), &p)
		if tt.want == "" {
			require.NoError(t, err, tt.raw)
			continue
		}
		require.ErrorContains(t, err, tt.want, tt.raw)
		require.NotContains(t, err.Error(), "Go value", tt.raw)
		require.NotContains(t, err.Error(), "workers.", tt.raw)
	}
}
