package integrations

import (
	"encoding/base64"
	"encoding/json"
	"net/url"
	"strings"
)

// minSecretLen is the shortest credential value cut from messages: shorter
// ones ("none", a username like "bot") would cut ordinary words.
const minSecretLen = 6

// credentialKinds are the credentials' "type" values (pull's Bearer, Basic
// and APIKey; pull imports this package), which are no secret: anything
// else under "type" is redacted like any other value.
var credentialKinds = map[string]bool{"bearer": true, "basic": true, "api_key": true, "none": true}

// secretValues lists the strings an integration's credentials hold, and
// the forms a request carries them in (URL-escaped in a path or query;
// basic auth's base64 of user:password), so that whatever a provider
// echoes back of them can be cut from messages before they are stored or
// logged.
func secretValues(credentials json.RawMessage) []string {
	var v any
	if json.Unmarshal(credentials, &v) != nil {
		return nil
	}
	var out []string
	var walk func(any)
	walk = func(v any) {
		switch v := v.(type) {
		case string:
			if len(v) >= minSecretLen {
				out = append(out, v)
				for _, form := range []string{url.PathEscape(v), url.QueryEscape(v)} {
					if form != v {
						out = append(out, form)
					}
				}
			}
		case map[string]any:
			for k, x := range v {
				if kind, _ := x.(string); k == "type" && credentialKinds[kind] {
					continue // what kind of credential is no secret, and cut it made messages unreadable
				}
				walk(x)
			}
			user, _ := v["username"].(string)
			pass, _ := v["password"].(string)
			if pass != "" {
				out = append(out, base64.StdEncoding.EncodeToString([]byte(user+":"+pass)))
			}
		case []any:
			for _, x := range v {
				walk(x)
			}
		}
	}
	walk(v)
	return out
}

// redactSecrets replaces every occurrence of secrets in s.
func redactSecrets(s string, secrets []string) string {
	for _, secret := range secrets {
		s = strings.ReplaceAll(s, secret, "[redacted]")
	}
	return s
}

// RedactCredentials cuts from s every value of credentials (see
// secretValues): for messages written outside a sync (deliveries).
func RedactCredentials(s string, credentials json.RawMessage) string {
	return redactSecrets(s, secretValues(credentials))
}

// headerValues lists the values of the headers a config sends with every
// request ("headers": {"X-Api-Key": "…"}): secrets as much as credentials.
func headerValues(config json.RawMessage) []string {
	var c struct {
		Headers map[string]string `json:"headers"`
	}
	if json.Unmarshal(config, &c) != nil {
		return nil
	}
	var out []string
	for _, v := range c.Headers {
		if len(v) >= minSecretLen {
			out = append(out, v)
		}
	}
	return out
}
