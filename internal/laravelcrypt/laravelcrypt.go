// Package laravelcrypt decrypts values written by the ATİS web app with
// Laravel's encrypter (Crypt::encrypt, Crypt::encryptString, the
// "encrypted" casts), given the app's APP_KEY.
//
// A payload is the base64 of a JSON object {"iv", "value", "mac", "tag"}:
// iv and value are base64, value the ciphertext. AES-256-CBC (a 32-byte
// key) and AES-128-CBC (16 bytes) are authenticated by mac, the hex of
// HMAC-SHA256(key, iv + value) over the base64 texts; AES-256-GCM and
// AES-128-GCM carry their tag instead and an empty mac. The plaintext of
// Crypt::encrypt is PHP-serialized: see Unserialize.
package laravelcrypt

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
)

// Errors of Decrypt. None quotes a key, a plaintext or the payload.
var (
	// ErrNoKey: there is no key to decrypt with.
	ErrNoKey = errors.New("laravelcrypt: no key")
	// ErrMACMismatch: no key authenticates the payload; it was encrypted
	// with another key (or altered).
	ErrMACMismatch = errors.New("laravelcrypt: MAC mismatch")
	// ErrPayload: the text is not an encrypted payload, or a damaged one.
	ErrPayload = errors.New("laravelcrypt: not a valid encrypted payload")
)

type payload struct {
	IV    string `json:"iv"`
	Value string `json:"value"`
	MAC   string `json:"mac"`
	Tag   string `json:"tag"`

	iv, value, tag []byte
}

// Decrypt returns the plaintext of a payload, trying each key in turn as
// Laravel does with APP_PREVIOUS_KEYS. Empty keys are skipped.
func Decrypt(text string, keys Keys) ([]byte, error) {
	keys = keys.set()
	if len(keys) == 0 {
		return nil, ErrNoKey
	}
	p, err := parsePayload(text)
	if err != nil {
		return nil, err
	}
	if len(p.tag) > 0 {
		return p.openGCM(keys)
	}
	return p.openCBC(keys)
}

func parsePayload(text string) (*payload, error) {
	raw, err := base64.StdEncoding.DecodeString(text)
	if err != nil {
		return nil, fmt.Errorf("%w: not base64", ErrPayload)
	}
	var p payload
	if err := json.Unmarshal(raw, &p); err != nil {
		return nil, fmt.Errorf("%w: not the JSON of an encrypted payload", ErrPayload)
	}
	if p.iv, err = base64.StdEncoding.DecodeString(p.IV); err != nil || p.IV == "" {
		return nil, fmt.Errorf("%w: iv is missing or not base64", ErrPayload)
	}
	if p.value, err = base64.StdEncoding.DecodeString(p.Value); err != nil || p.Value == "" {
		return nil, fmt.Errorf("%w: value is missing or not base64", ErrPayload)
	}
	if p.tag, err = base64.StdEncoding.DecodeString(p.Tag); err != nil {
		return nil, fmt.Errorf("%w: tag is not base64", ErrPayload)
	}
	return &p, nil
}

// openCBC checks the MAC with each key and decrypts with the first that
// matches.
func (p *payload) openCBC(keys Keys) ([]byte, error) {
	if len(p.iv) != aes.BlockSize {
		return nil, fmt.Errorf("%w: iv is %d bytes, not %d", ErrPayload, len(p.iv), aes.BlockSize)
	}
	if len(p.value) == 0 || len(p.value)%aes.BlockSize != 0 {
		return nil, fmt.Errorf("%w: value is not whole AES blocks (truncated?)", ErrPayload)
	}
	for _, k := range keys {
		if subtle.ConstantTimeCompare([]byte(mac(k, p.IV, p.Value)), []byte(p.MAC)) != 1 {
			continue
		}
		block, err := aes.NewCipher(k)
		if err != nil {
			return nil, fmt.Errorf("laravelcrypt: %w", err) // unreachable: keys are 16 or 32 bytes
		}
		plain := make([]byte, len(p.value))
		cipher.NewCBCDecrypter(block, p.iv).CryptBlocks(plain, p.value)
		return unpad(plain)
	}
	return nil, ErrMACMismatch
}

// openGCM opens an AEAD payload with the first key whose tag matches.
func (p *payload) openGCM(keys Keys) ([]byte, error) {
	for _, k := range keys {
		block, err := aes.NewCipher(k)
		if err != nil {
			return nil, fmt.Errorf("laravelcrypt: %w", err)
		}
		aead, err := cipher.NewGCMWithTagSize(block, len(p.tag))
		if err != nil || len(p.iv) != aead.NonceSize() {
			return nil, fmt.Errorf("%w: iv or tag has the wrong size for AES-GCM", ErrPayload)
		}
		sealed := append(append([]byte{}, p.value...), p.tag...)
		if plain, err := aead.Open(nil, p.iv, sealed, nil); err == nil {
			return plain, nil
		}
	}
	return nil, fmt.Errorf("%w (AES-GCM tag)", ErrMACMismatch)
}

func mac(key Key, iv, value string) string {
	h := hmac.New(sha256.New, key)
	h.Write([]byte(iv + value))
	return hex.EncodeToString(h.Sum(nil))
}

// unpad removes PKCS#7 padding.
func unpad(b []byte) ([]byte, error) {
	n := int(b[len(b)-1])
	if n == 0 || n > aes.BlockSize || n > len(b) {
		return nil, fmt.Errorf("%w: bad padding", ErrPayload)
	}
	for _, c := range b[len(b)-n:] {
		if int(c) != n {
			return nil, fmt.Errorf("%w: bad padding", ErrPayload)
		}
	}
	return b[:len(b)-n], nil
}

// EncryptString encrypts plain as Laravel's Crypt::encryptString does
// with cipher AES-256-CBC (a 32-byte key) or AES-128-CBC (16 bytes), for
// tools and tests; serialize the value first for Crypt::encrypt.
func EncryptString(plain []byte, key Key) (string, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return "", fmt.Errorf("laravelcrypt: key of %d bytes: it must be 16 or 32", len(key))
	}
	iv := make([]byte, aes.BlockSize)
	if _, err := rand.Read(iv); err != nil {
		return "", err
	}
	n := aes.BlockSize - len(plain)%aes.BlockSize
	padded := append(append([]byte{}, plain...), make([]byte, n)...)
	for i := len(plain); i < len(padded); i++ {
		padded[i] = byte(n)
	}
	cipher.NewCBCEncrypter(block, iv).CryptBlocks(padded, padded)
	p := payload{IV: base64.StdEncoding.EncodeToString(iv), Value: base64.StdEncoding.EncodeToString(padded)}
	p.MAC = mac(key, p.IV, p.Value)
	raw, err := json.Marshal(p)
	if err != nil {
		return "", err
	}
	return base64.StdEncoding.EncodeToString(raw), nil
}
