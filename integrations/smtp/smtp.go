// Package smtp delivers notifications as e-mail (plain text with an HTML
// alternative), for integrations of type email with provider smtp, through
// github.com/wneessen/go-mail: STARTTLS, implicit TLS or none, PLAIN or
// LOGIN authentication.
package smtp

import (
	"cmp"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/atis-edu/atis-scheduler/integrations/ratelimit"

	mail "github.com/wneessen/go-mail"

	"github.com/atis-edu/atis-scheduler/integrations/delivery"
)

// TLS modes (config.tls).
const (
	TLSStartTLS = "starttls"
	TLSImplicit = "tls"
	TLSNone     = "none"
)

// DefaultTimeout bounds connecting and each SMTP command. Config key
// timeout_seconds.
const DefaultTimeout = ratelimit.DefaultRequestTimeout

// Config is the provider's part of integrations.config (the filter keys
// are delivery.Settings).
type Config struct {
	// Host is the SMTP server.
	Host string `json:"host"`
	// Port defaults to 587 for starttls, 465 for tls, 25 for none.
	Port int `json:"port"`
	// TLS is starttls (required, not opportunistic), tls (implicit) or
	// none. Defaults to starttls.
	TLS string `json:"tls"`
	// Auth is plain, login or none. Defaults to plain when
	// credentials.username is set, else none.
	Auth string `json:"auth"`
	// InsecureAuth allows a password over a connection without TLS.
	InsecureAuth bool `json:"insecure_auth"`
	// From is the sender, "Name <address>" or an address.
	From string `json:"from"`
	// To receive every notification.
	To []string `json:"to"`
	// InstitutionTo maps an institution id to the addresses that also
	// receive the notifications targeting it (and those targeting every
	// institution).
	InstitutionTo map[string][]string `json:"institution_to"`
	// SubjectPrefix starts every subject. Defaults to "[ATİS]".
	SubjectPrefix *string `json:"subject_prefix"`
	// TimeoutSeconds: see DefaultTimeout.
	TimeoutSeconds int `json:"timeout_seconds"`
}

// Credentials is integrations.credentials.
type Credentials struct {
	Username string `json:"username"`
	Password string `json:"password"`
}

// Provider is the smtp provider.
type Provider struct {
	// RootCAs, when set, are the CAs trusted for the server's certificate
	// instead of the system's (tests).
	RootCAs *x509.CertPool
}

// Supports implements delivery.Provider.
func (Provider) Supports(integrationType string) bool { return integrationType == "email" }

// Validate implements delivery.Provider.
func (Provider) Validate(config, credentials json.RawMessage) error {
	_, _, err := parse(config, credentials)
	return err
}

func parse(config, credentials json.RawMessage) (Config, Credentials, error) {
	var cfg Config
	var cred Credentials
	if err := json.Unmarshal(config, &cfg); err != nil {
		return cfg, cred, fmt.Errorf("config: %w", err)
	}
	if err := json.Unmarshal(credentials, &cred); err != nil {
		return cfg, cred, errors.New("credentials: not a JSON object of strings")
	}
	cfg.TLS = cmp.Or(strings.ToLower(cfg.TLS), TLSStartTLS)
	if cfg.Auth == "" && cred.Username != "" {
		cfg.Auth = "plain"
	}
	cfg.Auth = cmp.Or(strings.ToLower(cfg.Auth), "none")
	switch {
	case cfg.Host == "":
		return cfg, cred, errors.New("config.host is missing")
	case !slices.Contains([]string{TLSStartTLS, TLSImplicit, TLSNone}, cfg.TLS):
		return cfg, cred, fmt.Errorf("config.tls %q is not starttls, tls or none", cfg.TLS)
	case !slices.Contains([]string{"plain", "login", "none"}, cfg.Auth):
		return cfg, cred, fmt.Errorf("config.auth %q is not plain, login or none", cfg.Auth)
	case cfg.Auth != "none" && cred.Username == "":
		return cfg, cred, fmt.Errorf("config.auth is %s but credentials.username is missing", cfg.Auth)
	case cfg.Auth != "none" && cfg.TLS == TLSNone && !cfg.InsecureAuth:
		return cfg, cred, errors.New("config.auth over config.tls none would send the password in clear: set insecure_auth to allow it")
	case cfg.From == "":
		return cfg, cred, errors.New("config.from is missing")
	case len(cfg.To) == 0 && len(cfg.InstitutionTo) == 0:
		return cfg, cred, errors.New("config.to and config.institution_to are both empty: nobody to send to")
	}
	for k := range cfg.InstitutionTo {
		if _, err := strconv.ParseInt(k, 10, 64); err != nil {
			return cfg, cred, fmt.Errorf("config.institution_to key %q is not an institution id", k)
		}
	}
	return cfg, cred, nil
}

// Deliver implements delivery.Provider. Each distinct set of recipients
// gets one message listing the notifications meant for it (one, unless a
// digest); all go over one connection. The Message-ID derives from the
// idempotency key, so a resend after a crash carries the same one.
func (p Provider) Deliver(ctx context.Context, req delivery.Request) error {
	cfg, cred, err := parse(req.Config, req.Credentials)
	if err != nil {
		return delivery.Permanent(err)
	}
	var msgs []*mail.Msg
	for i, g := range group(cfg, req.Notifications) {
		m, err := p.message(cfg, req, g.notes, g.rcpts, i)
		if err != nil {
			return delivery.Permanent(err)
		}
		msgs = append(msgs, m)
	}
	if len(msgs) == 0 {
		return nil // nobody is to receive these
	}
	if req.Wait != nil {
		if err := req.Wait(ctx); err != nil {
			return err
		}
	}
	client, err := p.client(cfg, cred)
	if err != nil {
		return delivery.Permanent(err)
	}
	if err := client.DialAndSendWithContext(ctx, msgs...); err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("smtp %s: %w", cfg.Host, ctx.Err())
		}
		return fmt.Errorf("smtp %s: %w", cfg.Host, err)
	}
	return nil
}

func (p Provider) client(cfg Config, cred Credentials) (*mail.Client, error) {
	timeout := DefaultTimeout
	if cfg.TimeoutSeconds > 0 {
		timeout = time.Duration(cfg.TimeoutSeconds) * time.Second
	}
	opts := []mail.Option{mail.WithTimeout(timeout)}
	tlsConfig := &tls.Config{ServerName: cfg.Host, RootCAs: p.RootCAs, MinVersion: tls.VersionTLS12}
	switch cfg.TLS {
	case TLSStartTLS:
		opts = append(opts, mail.WithTLSPolicy(mail.TLSMandatory), mail.WithPort(cmp.Or(cfg.Port, 587)), mail.WithTLSConfig(tlsConfig))
	case TLSImplicit:
		opts = append(opts, mail.WithSSL(), mail.WithPort(cmp.Or(cfg.Port, 465)), mail.WithTLSConfig(tlsConfig))
	case TLSNone:
		opts = append(opts, mail.WithTLSPolicy(mail.NoTLS), mail.WithPort(cmp.Or(cfg.Port, 25)))
	}
	auth := map[string]mail.SMTPAuthType{"plain": mail.SMTPAuthPlain, "login": mail.SMTPAuthLogin}[cfg.Auth]
	if cfg.TLS == TLSNone {
		auth = map[string]mail.SMTPAuthType{"plain": mail.SMTPAuthPlainNoEnc, "login": mail.SMTPAuthLoginNoEnc}[cfg.Auth]
	}
	if auth != "" {
		opts = append(opts, mail.WithSMTPAuth(auth), mail.WithUsername(cred.Username), mail.WithPassword(cred.Password))
	}
	c, err := mail.NewClient(cfg.Host, opts...)
	if err != nil {
		return nil, fmt.Errorf("smtp client for %s: %w", cfg.Host, err)
	}
	return c, nil
}

// recipients group: the notifications one set of addresses receives.
type recipientGroup struct {
	rcpts []string
	notes []delivery.Notification
}

// group sorts the notifications by who receives them: config.to always,
// plus institution_to of each institution a notification targets (all of
// them when it targets every institution).
func group(cfg Config, notes []delivery.Notification) []recipientGroup {
	var out []recipientGroup
	index := map[string]int{}
	for _, n := range notes {
		set := slices.Clone(cfg.To)
		for k, addrs := range cfg.InstitutionTo {
			id, _ := strconv.ParseInt(k, 10, 64)
			if len(n.TargetInstitutions) == 0 || slices.Contains(n.TargetInstitutions, id) {
				set = append(set, addrs...)
			}
		}
		for i := range set {
			set[i] = strings.TrimSpace(set[i])
		}
		slices.Sort(set)
		set = slices.DeleteFunc(slices.Compact(set), func(s string) bool { return s == "" })
		if len(set) == 0 {
			continue
		}
		key := strings.Join(set, ",")
		i, ok := index[key]
		if !ok {
			i = len(out)
			index[key] = i
			out = append(out, recipientGroup{rcpts: set})
		}
		out[i].notes = append(out[i].notes, n)
	}
	return out
}

func (p Provider) message(cfg Config, req delivery.Request, notes []delivery.Notification, rcpts []string, part int) (*mail.Msg, error) {
	m := mail.NewMsg()
	if err := m.From(cfg.From); err != nil {
		return nil, fmt.Errorf("config.from: %w", err)
	}
	if err := m.To(rcpts...); err != nil {
		return nil, fmt.Errorf("recipients: %w", err)
	}
	prefix := "[ATİS]"
	if cfg.SubjectPrefix != nil {
		prefix = *cfg.SubjectPrefix
	}
	digest := req.Digest && len(notes) > 1
	subject := fmt.Sprintf("%d notifications", len(notes))
	if !digest {
		subject = fmt.Sprintf("[%s] %s", strings.ToUpper(notes[0].Level), notes[0].Title)
	}
	m.Subject(strings.TrimSpace(prefix + " " + subject))
	domain := "atis-scheduler.invalid"
	if _, d, ok := strings.Cut(cfg.From, "@"); ok {
		domain = strings.Trim(d, "> ")
	}
	m.SetMessageIDWithValue(fmt.Sprintf("%s.%d@%s", req.IdempotencyKey, part, domain))
	m.SetGenHeader("X-Atis-Delivery", req.IdempotencyKey)
	m.SetDate()
	m.SetBodyString(mail.TypeTextPlain, plain(notes))
	m.AddAlternativeString(mail.TypeTextHTML, htmlBody(subject, notes))
	return m, nil
}

func plain(notes []delivery.Notification) string {
	var b strings.Builder
	for _, n := range notes {
		fmt.Fprintf(&b, "[%s] %s\n\n%s\n", strings.ToUpper(n.Level), n.Title, n.Message)
		if n.ActionURL != "" {
			fmt.Fprintf(&b, "\n%s: %s\n", cmp.Or(n.ActionText, "Open"), n.ActionURL)
		}
		b.WriteString("\n")
	}
	return b.String()
}

func htmlBody(subject string, notes []delivery.Notification) string {
	var b strings.Builder
	fmt.Fprintf(&b, "<!doctype html><html><body><h2>%s</h2>", html.EscapeString(subject))
	for _, n := range notes {
		fmt.Fprintf(&b, "<h3>[%s] %s</h3><p>%s</p>", html.EscapeString(strings.ToUpper(n.Level)), html.EscapeString(n.Title),
			strings.ReplaceAll(html.EscapeString(n.Message), "\n", "<br>"))
		if n.ActionURL != "" {
			fmt.Fprintf(&b, `<p><a href="%s">%s</a></p>`, html.EscapeString(n.ActionURL), html.EscapeString(cmp.Or(n.ActionText, "Open")))
		}
	}
	b.WriteString("</body></html>")
	return b.String()
}
