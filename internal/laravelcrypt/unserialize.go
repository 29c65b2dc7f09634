package laravelcrypt

import (
	"regexp"
	"strconv"
)

var (
	serializedNumber = regexp.MustCompile(`^(i|d):(-?[0-9]+(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?);$`)
	serializedBool   = regexp.MustCompile(`^b:([01]);$`)
)

// Unserialize reads the PHP serialization of a scalar, as Crypt::encrypt
// writes it: s:N:"…"; gives the string, i:N; and d:N; the number, b:0; and
// b:1; false and true, N; null. Anything else (Crypt::encryptString's
// plaintext, arrays, objects) is returned as is, with ok false.
func Unserialize(plain []byte) (text string, ok bool) {
	s := string(plain)
	if m := serializedNumber.FindStringSubmatch(s); m != nil {
		return m[2], true
	}
	if m := serializedBool.FindStringSubmatch(s); m != nil {
		return map[string]string{"0": "false", "1": "true"}[m[1]], true
	}
	if s == "N;" {
		return "null", true
	}
	if str, ok := unserializeString(s); ok {
		return str, true
	}
	return s, false
}

// unserializeString reads s:N:"…"; where N is the length in bytes.
func unserializeString(s string) (string, bool) {
	if len(s) < len(`s:0:"";`) || s[:2] != "s:" {
		return "", false
	}
	colon := 2
	for colon < len(s) && s[colon] >= '0' && s[colon] <= '9' {
		colon++
	}
	n, err := strconv.Atoi(s[2:colon])
	if err != nil || n > len(s) || colon+2+n+2 != len(s) || s[colon:colon+2] != `:"` || s[len(s)-2:] != `";` {
		return "", false
	}
	return s[colon+2 : colon+2+n], true
}
