package laravelcrypt_test

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"os/exec"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/atis-edu/atis-scheduler/internal/laravelcrypt"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// Vectors made with an independent implementation, OpenSSL, as Laravel
// does (K and IV in hex, P the plaintext, B the key bits):
//
//	v=$(printf '%s' "$P" | openssl enc -aes-$B-cbc -K $K -iv $IV -base64 -A)
//	ivb=$(echo -n $IV | xxd -r -p | base64 -w0)
//	mac=$(printf '%s' "$ivb$v" | openssl dgst -sha256 -mac HMAC -macopt hexkey:$K -r | cut -d' ' -f1)
//	printf '{"iv":"%s","value":"%s","mac":"%s","tag":""}' "$ivb" "$v" "$mac" | base64 -w0
const (
	key256Hex = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
	key256    = "base64:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
	key128Hex = "f0e1d2c3b4a5968778695a4b3c2d1e0f"
	key128    = "base64:8OHSw7Sllod4aVpLPC0eDw=="
	ivHex     = "a1a2a3a4a5a6a7a8a9aaabacadaeafb0"

	// "Bearer s3cr3t-from-config", AES-256-CBC.
	bearer256 = "eyJpdiI6Im9hS2pwS1dtcDZpcHFxdXNyYTZ2c0E9PSIsInZhbHVlIjoiVzVRSDVsa1JRd2F6R3BKUC9NMUF1YlZvOE9iVjE3YzJUQkYrV2h1NHpQdz0iLCJtYWMiOiJlYzFlNzQzYmY3MThlNDRlMzJjMDYzYWY0MGFkYTYyMWJkOTQwOTY0OTEzMWM4ZjkzZmUyNmMwYmNjYWM3YzIyIiwidGFnIjoiIn0="
	// `s:11:"hello world";`, AES-256-CBC.
	serialized256 = "eyJpdiI6Im9hS2pwS1dtcDZpcHFxdXNyYTZ2c0E9PSIsInZhbHVlIjoiSWNtazY0eE13K0l2bm5rQkJkbGtxRUlmNmY3RXNsY0wxYnFYZkQ3OWM4az0iLCJtYWMiOiI2MTBlZjQ0NTg5OTNhM2UxYjM1MzQyMjNlNjIzMDk4YzhiMGViM2VmNTc5MDg2OWRjZDRlY2NmOTc0ZDE4NGYzIiwidGFnIjoiIn0="
	// "i:45;", AES-256-CBC.
	int256 = "eyJpdiI6Im9hS2pwS1dtcDZpcHFxdXNyYTZ2c0E9PSIsInZhbHVlIjoidjNJUDJYOWpwNzBGbU83ZlpoSy90dz09IiwibWFjIjoiYTg1Njc5ZmJiMDY3YjY0MjUzYWEwNzhmZDY0OGZlM2Q3ZTc4NTlkMmQ3YTI1OTk3YzNiNmU5M2U3ODM5OGRjNSIsInRhZyI6IiJ9"
	// "[30, 7, 1]", AES-128-CBC.
	list128 = "eyJpdiI6Im9hS2pwS1dtcDZpcHFxdXNyYTZ2c0E9PSIsInZhbHVlIjoiMkhMeGloZ3ZjUGREUEhXRUtLb2JpZz09IiwibWFjIjoiZDA0YTA2ZGRkNmY4MmI0YjQ4NWRjZWEzZjAyZTBhYzkyYWE1MzcwMWQ0ODg5MGQyNTAwNjU3OWJjYWFkMTdkOCIsInRhZyI6IiJ9"
	// "", AES-256-CBC: one block of padding.
	empty256 = "eyJpdiI6Im9hS2pwS1dtcDZpcHFxdXNyYTZ2c0E9PSIsInZhbHVlIjoiVGJOd092bE1pZGtjNDE1RDh5djBiQT09IiwibWFjIjoiYmEyMjNhZDI3YjgyMGVkZmY0MDk5NTE0ZjM1NjY3ZWFhZjlmMDMxNjFiMDg5YWY4NjA5YmExZGRhOWY4OWZlNiIsInRhZyI6IiJ9"
)

func mustKey(t *testing.T, s string) laravelcrypt.Key {
	t.Helper()
	k, err := laravelcrypt.ParseKey(s)
	require.NoError(t, err)
	return k
}

// edit decodes a payload, lets f change its fields and encodes it again.
func edit(t *testing.T, payload string, f func(m map[string]string)) string {
	t.Helper()
	raw, err := base64.StdEncoding.DecodeString(payload)
	require.NoError(t, err)
	var m map[string]string
	require.NoError(t, json.Unmarshal(raw, &m))
	f(m)
	raw, err = json.Marshal(m)
	require.NoError(t, err)
	return base64.StdEncoding.EncodeToString(raw)
}

// gcmPayload seals plain as Laravel's AES-*-GCM does: a 12-byte iv, the
// tag apart, an empty mac. (Go's own AES-GCM: OpenSSL's enc has no AEAD.)
func gcmPayload(t *testing.T, keyHex, plain string) string {
	t.Helper()
	key, err := hex.DecodeString(keyHex)
	require.NoError(t, err)
	block, err := aes.NewCipher(key)
	require.NoError(t, err)
	aead, err := cipher.NewGCM(block)
	require.NoError(t, err)
	iv := bytes.Repeat([]byte{7}, aead.NonceSize())
	sealed := aead.Seal(nil, iv, []byte(plain), nil)
	ct, tag := sealed[:len(sealed)-aead.Overhead()], sealed[len(sealed)-aead.Overhead():]
	raw, err := json.Marshal(map[string]string{"iv": base64.StdEncoding.EncodeToString(iv),
		"value": base64.StdEncoding.EncodeToString(ct), "mac": "", "tag": base64.StdEncoding.EncodeToString(tag)})
	require.NoError(t, err)
	return base64.StdEncoding.EncodeToString(raw)
}

func TestDecrypt(t *testing.T) {
	t.Parallel()

	k256, k128 := mustKey(t, key256), mustKey(t, key128)
	other := mustKey(t, "base64:"+base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{9}, 32)))
	tests := []struct {
		name    string
		payload string
		keys    laravelcrypt.Keys
		want    string
		wantErr error
	}{
		{name: "AES256CBC", payload: bearer256, keys: laravelcrypt.Keys{k256}, want: "Bearer s3cr3t-from-config"},
		{name: "Serialized", payload: serialized256, keys: laravelcrypt.Keys{k256}, want: `s:11:"hello world";`},
		{name: "Integer", payload: int256, keys: laravelcrypt.Keys{k256}, want: "i:45;"},
		{name: "AES128CBC", payload: list128, keys: laravelcrypt.Keys{k128}, want: "[30, 7, 1]"},
		{name: "EmptyPlaintext", payload: empty256, keys: laravelcrypt.Keys{k256}, want: ""},
		{name: "PreviousKey", payload: bearer256, keys: laravelcrypt.Keys{other, nil, k256}, want: "Bearer s3cr3t-from-config"},
		{name: "AES256GCM", payload: gcmPayload(t, key256Hex, "gcm secret"), keys: laravelcrypt.Keys{k256}, want: "gcm secret"},
		{name: "AES128GCM", payload: gcmPayload(t, key128Hex, "gcm 128"), keys: laravelcrypt.Keys{other, k128}, want: "gcm 128"},

		{name: "NoKey", payload: bearer256, keys: laravelcrypt.Keys{nil}, wantErr: laravelcrypt.ErrNoKey},
		{name: "WrongKey", payload: bearer256, keys: laravelcrypt.Keys{other}, wantErr: laravelcrypt.ErrMACMismatch},
		{name: "WrongKeySize", payload: bearer256, keys: laravelcrypt.Keys{k128}, wantErr: laravelcrypt.ErrMACMismatch},
		{name: "WrongMAC", payload: edit(t, bearer256, func(m map[string]string) { m["mac"] = strings.Repeat("0", 64) }),
			keys: laravelcrypt.Keys{k256}, wantErr: laravelcrypt.ErrMACMismatch},
		{name: "AlteredValue", payload: edit(t, bearer256, func(m map[string]string) { m["value"] = "A" + m["value"][1:] }),
			keys: laravelcrypt.Keys{k256}, wantErr: laravelcrypt.ErrMACMismatch},
		{name: "GCMWrongKey", payload: gcmPayload(t, key256Hex, "x"), keys: laravelcrypt.Keys{other}, wantErr: laravelcrypt.ErrMACMismatch},
		{name: "TruncatedValue", payload: edit(t, bearer256, func(m map[string]string) { m["value"] = m["value"][:20] }),
			keys: laravelcrypt.Keys{k256}, wantErr: laravelcrypt.ErrPayload},
		{name: "TruncatedPayload", payload: bearer256[:len(bearer256)/2], keys: laravelcrypt.Keys{k256}, wantErr: laravelcrypt.ErrPayload},
		{name: "NotBase64", payload: "not base64 at all!", keys: laravelcrypt.Keys{k256}, wantErr: laravelcrypt.ErrPayload},
		{name: "NotJSON", payload: base64.StdEncoding.EncodeToString([]byte("hello")), keys: laravelcrypt.Keys{k256}, wantErr: laravelcrypt.ErrPayload},
		{name: "IVNotBase64", payload: edit(t, bearer256, func(m map[string]string) { m["iv"] = "%%" }),
			keys: laravelcrypt.Keys{k256}, wantErr: laravelcrypt.ErrPayload},
		{name: "ShortIV", payload: edit(t, bearer256, func(m map[string]string) { m["iv"] = "AAAA" }),
			keys: laravelcrypt.Keys{k256}, wantErr: laravelcrypt.ErrPayload},
		{name: "NoValue", payload: edit(t, bearer256, func(m map[string]string) { delete(m, "value") }),
			keys: laravelcrypt.Keys{k256}, wantErr: laravelcrypt.ErrPayload},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()

			got, err := laravelcrypt.Decrypt(tt.payload, tt.keys)
			if tt.wantErr != nil {
				require.ErrorIs(t, err, tt.wantErr)
				require.NotContains(t, err.Error(), "s3cr3t")
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.want, string(got))
		})
	}
}

// TestOpenSSLRoundTrip: a payload OpenSSL makes now, with a fresh IV,
// decrypts; one EncryptString makes, OpenSSL decrypts.
func TestOpenSSLRoundTrip(t *testing.T) {
	t.Parallel()

	if _, err := exec.LookPath("openssl"); err != nil {
		t.Skip("openssl is not installed")
	}
	run := func(stdin string, args ...string) string {
		cmd := exec.Command("openssl", args...)
		cmd.Stdin = strings.NewReader(stdin)
		out, err := cmd.Output()
		require.NoError(t, err, "openssl %v", args)
		return strings.TrimSpace(string(out))
	}
	key := mustKey(t, key256)
	ivb := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{0x5a}, 16))
	value := run("token with ünïcode and 16-byte-aligned!", "enc", "-aes-256-cbc", "-K", key256Hex, "-iv", strings.Repeat("5a", 16), "-base64", "-A")
	mac, _, _ := strings.Cut(run(ivb+value, "dgst", "-sha256", "-mac", "HMAC", "-macopt", "hexkey:"+key256Hex, "-r"), " ")
	raw, err := json.Marshal(map[string]string{"iv": ivb, "value": value, "mac": mac, "tag": ""})
	require.NoError(t, err)
	got, err := laravelcrypt.Decrypt(base64.StdEncoding.EncodeToString(raw), laravelcrypt.Keys{key})
	require.NoError(t, err)
	require.Equal(t, "token with ünïcode and 16-byte-aligned!", string(got))

	payload, err := laravelcrypt.EncryptString([]byte("back again"), key)
	require.NoError(t, err)
	outer, err := base64.StdEncoding.DecodeString(payload)
	require.NoError(t, err)
	var p map[string]string
	require.NoError(t, json.Unmarshal(outer, &p))
	wantMAC, _, _ := strings.Cut(run(p["iv"]+p["value"], "dgst", "-sha256", "-mac", "HMAC", "-macopt", "hexkey:"+key256Hex, "-r"), " ")
	require.Equal(t, wantMAC, p["mac"])
	iv, err := base64.StdEncoding.DecodeString(p["iv"])
	require.NoError(t, err)
	require.Equal(t, "back again", run(p["value"]+"\n", "enc", "-d", "-aes-256-cbc", "-K", key256Hex, "-iv", hex.EncodeToString(iv), "-base64", "-A"))
}

func TestParseKey(t *testing.T) {
	t.Parallel()

	tests := []struct {
		name    string
		in      string
		wantLen int
		wantErr string
	}{
		{name: "Base64AES256", in: key256, wantLen: 32},
		{name: "Base64AES128", in: key128, wantLen: 16},
		{name: "TrailingNewline", in: key256 + "\n", wantLen: 32},
		{name: "Raw32Bytes", in: "abcdefghijklmnopqrstuvwxyz012345", wantLen: 32},
		{name: "Empty", in: " ", wantErr: "the key is empty"},
		{name: "BadBase64", in: "base64:s3cr3t!!", wantErr: `the part after "base64:" is not valid base64`},
		{name: "WrongLength", in: "base64:" + base64.StdEncoding.EncodeToString([]byte("s3cr3t")), wantErr: "the key is 6 bytes; it must be 32"},
		{name: "RawWrongLength", in: "s3cr3t", wantErr: "the key is 6 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()

			k, err := laravelcrypt.ParseKey(tt.in)
			if tt.wantErr != "" {
				require.ErrorContains(t, err, tt.wantErr)
				require.NotContains(t, err.Error(), "s3cr3t")
				return
			}
			require.NoError(t, err)
			require.Len(t, k, tt.wantLen)
		})
	}
}

// TestKeyNeverPrints: however a key is printed, logged or encoded, it shows
// "(hidden)".
func TestKeyNeverPrints(t *testing.T) {
	t.Parallel()

	k := laravelcrypt.Key("abcdefghijklmnopqrstuvwxyz012345")
	var logged bytes.Buffer
	slog.New(slog.NewJSONHandler(&logged, nil)).Info("x", slog.Any("key", k), slog.Any("keys", laravelcrypt.Keys{k}))
	slog.New(slog.NewTextHandler(&logged, nil)).Info("x", slog.Any("key", k))
	encoded, err := json.Marshal(struct{ K laravelcrypt.Key }{k})
	require.NoError(t, err)
	for _, s := range []string{fmt.Sprint(k), fmt.Sprintf("%d %x %q %+v %#v %s", k, k, k, k, k, k),
		fmt.Sprintf("%v", struct{ K laravelcrypt.Key }{k}), logged.String(), string(encoded)} {
		require.NotContains(t, s, "abcdef")
		require.NotContains(t, s, "97 98") // the bytes as numbers
		require.NotContains(t, s, "616263")
		require.Contains(t, s, "(hidden)")
	}
}

func TestUnserialize(t *testing.T) {
	t.Parallel()

	tests := []struct {
		in     string
		want   string
		wantOK bool
	}{
		{`s:11:"hello world";`, "hello world", true},
		{`s:0:"";`, "", true},
		{`s:5:"ünï";`, "ünï", true},                // N counts bytes
		{`s:9:"a";b"c";d";`, "a\";b\"c\";d", true}, // quotes inside
		{`i:45;`, "45", true},
		{`i:-3;`, "-3", true},
		{`d:0.5;`, "0.5", true},
		{`d:1.0E+25;`, "1.0E+25", true},
		{`b:1;`, "true", true},
		{`b:0;`, "false", true},
		{`N;`, "null", true},
		{`s:5:"hello world";`, `s:5:"hello world";`, false}, // length disagrees: taken as is
		{`s:99999999999999999999:"x";`, `s:99999999999999999999:"x";`, false},
		{`a:1:{i:0;i:1;}`, `a:1:{i:0;i:1;}`, false},
		{`plain token`, `plain token`, false},
		{`[30, 7, 1]`, `[30, 7, 1]`, false},
		{`i:45`, `i:45`, false},
	}
	for _, tt := range tests {
		got, ok := laravelcrypt.Unserialize([]byte(tt.in))
		require.Equal(t, tt.want, got, tt.in)
		require.Equal(t, tt.wantOK, ok, tt.in)
	}
}
