package scim_test

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/atis-edu/atis-scheduler/integrations/provider"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/atis-edu/atis-scheduler/integrations/scim"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestConfigErrors(t *testing.T) {
	t.Parallel()

	for _, tt := range []struct{ name, config, credentials, want string }{
		{"NoBaseURL", `{}`, `{}`, `scim config: "base_url" is required`},
		{"RelativeBaseURL", `{"base_url": "/scim/v2"}`, `{}`, `"base_url" "/scim/v2" is not an absolute http(s) URL`},
		{"PasswordInURL", `{"base_url": "https://u:pw-SECRET@idp.example/scim"}`, `{}`, `"base_url" has a user or password: put them in credentials`},
		{"UnknownResource", `{"base_url": "https://idp.example/scim", "resources": ["Roles"]}`, `{}`, `resource "Roles" is not "Users" or "Groups"`},
		{"PageTooLarge", `{"base_url": "https://idp.example/scim", "page_size": 5000}`, `{}`, "page_size 5000 is not between 1 and 1000"},
		{"BadOrigin", `{"base_url": "https://idp.example/scim", "allowed_origins": ["https://cdn.example/path"]}`, `{}`, `"allowed_origins" entry 1`},
		{"APIKeyCredentials", `{"base_url": "https://idp.example/scim"}`, `{"type": "api_key", "header": "X", "value": "v-SECRET"}`, `type "api_key" is not one of bearer, basic, none`},
		{"BearerWithoutToken", `{"base_url": "https://idp.example/scim"}`, `{"type": "bearer"}`, `bearer needs "token"`},
		{"CredentialsNotJSON", `{"base_url": "https://idp.example/scim"}`, `"pw-SECRET"`, "scim credentials: not a JSON object"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := scim.Provider{}.Fetch(context.Background(), provider.FetchRequest{Config: json.RawMessage(tt.config),
				Credentials: json.RawMessage(tt.credentials)}, func(provider.Page) error { return nil })
			require.ErrorContains(t, err, tt.want)
			require.NotContains(t, err.Error(), "SECRET")
		})
	}
}

func TestSupports(t *testing.T) {
	t.Parallel()

	ok, incremental := scim.Provider{}.Supports("sso", json.RawMessage(`{"base_url": "https://idp.example/scim"}`))
	require.Equal(t, []bool{true, false}, []bool{ok, incremental})
	ok, incremental = scim.Provider{}.Supports("sso", json.RawMessage(`{"base_url": "https://idp.example/scim", "filter_last_modified": true}`))
	require.Equal(t, []bool{true, true}, []bool{ok, incremental})
	ok, _ = scim.Provider{}.Supports("lms", nil)
	require.False(t, ok)
}
