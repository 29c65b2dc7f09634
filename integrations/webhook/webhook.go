// Package webhook delivers notifications by HTTP POST, for integrations of
// type notification with provider webhook: generic JSON, Slack or
// Mattermost, Microsoft Teams (MessageCard or Adaptive Card) or a Telegram
// bot, signed with HMAC-SHA256 when a signing secret is configured.
package webhook

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/atis-edu/atis-scheduler/integrations/delivery"
	"github.com/atis-edu/atis-scheduler/internal/origin"
)

// Formats are the values of config.format.
var Formats = []string{"json", "slack", "mattermost", "teams", "teams_adaptive", "telegram"}

// DefaultTelegramURL is the Telegram Bot API's origin, config.url's default
// when format is telegram.
const DefaultTelegramURL = "https://api.telegram.org"

// Header names set on every request.
const (
	SignatureHeader   = "X-Atis-Signature"
	DeliveryHeader    = "X-Atis-Delivery"
	IdempotencyHeader = "Idempotency-Key"
)

// Config is the provider's part of integrations.config (the filter keys
// are delivery.Settings).
type Config struct {
	// URL receives the POST. For telegram it is the API's origin (defaults
	// to DefaultTelegramURL). A URL whose path is itself a secret (Slack's
	// hooks) may be put in credentials.url instead.
	URL string `json:"url"`
	// Format is one of Formats. Defaults to json.
	Format string `json:"format"`
	// ChatID is the Telegram chat (telegram only).
	ChatID json.RawMessage `json:"chat_id"`
}

// Credentials is integrations.credentials.
type Credentials struct {
	// SigningSecret, when set, signs every request (SignatureHeader).
	SigningSecret string `json:"signing_secret"`
	// BotToken is the Telegram bot's token; it goes in the URL path.
	BotToken string `json:"bot_token"`
	// URL overrides config.url, for URLs that are secrets themselves.
	URL string `json:"url"`
}

// Provider is the webhook provider.
type Provider struct {
	// Now is the clock of the signature's timestamp. Defaults to time.Now.
	Now func() time.Time
}

// Supports implements delivery.Provider.
func (Provider) Supports(integrationType string) bool { return integrationType == "notification" }

// Validate implements delivery.Provider.
func (Provider) Validate(config, credentials json.RawMessage) error {
	_, _, _, err := parse(config, credentials)
	return err
}

func parse(config, credentials json.RawMessage) (Config, Credentials, *url.URL, error) {
	var cfg Config
	var cred Credentials
	if err := json.Unmarshal(config, &cfg); err != nil {
		return cfg, cred, nil, fmt.Errorf("config: %w", err)
	}
	if err := json.Unmarshal(credentials, &cred); err != nil {
		return cfg, cred, nil, errors.New("credentials: not a JSON object of strings")
	}
	if cfg.Format == "" {
		cfg.Format = "json"
	}
	if !slices.Contains(Formats, cfg.Format) {
		return cfg, cred, nil, fmt.Errorf("config.format %q is not one of %s", cfg.Format, strings.Join(Formats, ", "))
	}
	raw := cred.URL
	if raw == "" {
		raw = cfg.URL
	}
	if raw == "" && cfg.Format == "telegram" {
		raw = DefaultTelegramURL
	}
	u, err := url.Parse(raw)
	switch {
	case raw == "":
		return cfg, cred, nil, errors.New("config.url is missing")
	case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
		return cfg, cred, nil, errors.New("config.url (or credentials.url) is not an http(s) URL")
	case u.User != nil:
		return cfg, cred, nil, errors.New("config.url must not hold a user or password: use credentials")
	}
	if cfg.Format == "telegram" {
		if cred.BotToken == "" {
			return cfg, cred, nil, errors.New("credentials.bot_token is missing (format telegram)")
		}
		if len(cfg.ChatID) == 0 || string(cfg.ChatID) == `""` || string(cfg.ChatID) == "null" {
			return cfg, cred, nil, errors.New("config.chat_id is missing (format telegram)")
		}
		u = u.JoinPath("bot"+cred.BotToken, "sendMessage")
	}
	return cfg, cred, u, nil
}

// Deliver implements delivery.Provider: one POST. A 2xx answer is success;
// 408, 429 and 5xx are worth retrying; any other status is permanent.
// Errors name the URL's origin only: the path may hold a token.
func (p Provider) Deliver(ctx context.Context, req delivery.Request) error {
	cfg, cred, u, err := parse(req.Config, req.Credentials)
	if err != nil {
		return delivery.Permanent(err)
	}
	body, err := Body(cfg.Format, cfg.ChatID, req)
	if err != nil {
		return delivery.Permanent(err)
	}
	r, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), bytes.NewReader(body))
	if err != nil {
		return delivery.Permanent(errors.New("build the request"))
	}
	r.Header.Set("Content-Type", "application/json")
	r.Header.Set("User-Agent", "atis-scheduler")
	r.Header.Set(DeliveryHeader, req.IdempotencyKey)
	r.Header.Set(IdempotencyHeader, req.IdempotencyKey)
	if cred.SigningSecret != "" {
		now := time.Now
		if p.Now != nil {
			now = p.Now
		}
		r.Header.Set(SignatureHeader, Sign(cred.SigningSecret, now(), body))
	}
	client := *req.Client // a copy: the redirect policy is this provider's
	// A 301/302/303 would turn the POST into a GET without the message,
	// and its 200 would look delivered: only 307/308 to the same origin
	// are followed, body and signature intact.
	client.CheckRedirect = origin.CheckBodyRedirect(func(to *url.URL) string { return shown(u, to) })
	resp, err := client.Do(r)
	where := "POST " + origin.Of(u)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // its message quotes the whole URL
		}
		if ctx.Err() != nil {
			return fmt.Errorf("%s: %w", where, ctx.Err())
		}
		return fmt.Errorf("%s: %w", where, err)
	}
	defer resp.Body.Close()
	reply, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return nil
	}
	err = fmt.Errorf("%s: answered %d %s: %s", where, resp.StatusCode, http.StatusText(resp.StatusCode),
		strings.ToValidUTF8(strings.TrimSpace(string(reply)), "?"))
	if resp.StatusCode == http.StatusRequestTimeout || resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500 {
		return err
	}
	return delivery.Permanent(err)
}

// Sign returns the SignatureHeader value for body sent at t:
// "t=<unix seconds>,v1=<hex HMAC-SHA256 of "<unix seconds>.<body>">", as
// Stripe does. A receiver recomputes it and rejects a timestamp too old.
func Sign(secret string, t time.Time, body []byte) string {
	ts := strconv.FormatInt(t.Unix(), 10)
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(ts + "."))
	mac.Write(body)
	return "t=" + ts + ",v1=" + hex.EncodeToString(mac.Sum(nil))
}

// Verify checks a SignatureHeader value against body, with a timestamp no
// older than tolerance: what a receiver (and the tests) do.
func Verify(secret, header string, body []byte, now time.Time, tolerance time.Duration) error {
	var ts, sig string
	for part := range strings.SplitSeq(header, ",") {
		k, v, _ := strings.Cut(part, "=")
		switch k {
		case "t":
			ts = v
		case "v1":
			sig = v
		}
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || sig == "" {
		return errors.New("webhook: malformed signature header")
	}
	if d := now.Sub(time.Unix(sec, 0)); d > tolerance || d < -tolerance {
		return errors.New("webhook: signature timestamp outside the tolerance")
	}
	want := Sign(secret, time.Unix(sec, 0), body)
	if !hmac.Equal([]byte(want), []byte("t="+ts+",v1="+sig)) {
		return errors.New("webhook: signature mismatch")
	}
	return nil
}

// shown is where a redirect from u pointed, as a message may show it: its
// origin only (a webhook URL's path often is its secret), and whether it is
// u's own.
func shown(u, to *url.URL) string {
	if origin.Of(to) == origin.Of(u) {
		return origin.Of(to) + "/… (the same origin)"
	}
	return origin.Of(to) + "/…"
}
