package onprem

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Request headers of a delivery. The signature covers the timestamp and the
// body; the installation header only selects the secret (a wrong one makes
// the signature fail), and the body repeats the installation id so the
// signed bytes name it too.
const (
	HeaderInstallation = "X-B24hub-Installation"
	HeaderTimestamp    = "X-B24hub-Timestamp"
	HeaderSignature    = "X-B24hub-Signature"
)

// signatureScheme prefixes the hex HMAC in HeaderSignature, so the scheme
// can change without ambiguity.
const signatureScheme = "v1="

// Errors of Verify. Each is a reason the module shows its administrator.
var (
	ErrBadSignature   = errors.New("bad signature")
	ErrStaleTimestamp = errors.New("stale timestamp")
	ErrBadTimestamp   = errors.New("malformed timestamp")
)

// Sign returns the HeaderSignature value for body sent at unix time ts:
// "v1=" and the hex HMAC-SHA256, keyed by secret, of the decimal timestamp,
// a '.', and the body. The PHP module computes the same with hash_hmac.
func Sign(secret []byte, ts int64, body []byte) string {
	return signatureScheme + hex.EncodeToString(mac(secret, strconv.FormatInt(ts, 10), body))
}

func mac(secret []byte, ts string, body []byte) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(ts))
	m.Write([]byte{'.'})
	m.Write(body)
	return m.Sum(nil)
}

// Verify checks a delivery's timestamp header and signature against secret
// at time now: the signature must match (compared in constant time) and
// the timestamp must lie within window of now in either direction, so a
// captured request cannot be replayed later. The signature is checked
// first, so only a holder of the secret learns that its clock is off.
func Verify(secret []byte, tsHeader, sigHeader string, body []byte, now time.Time, window time.Duration) error {
	ts, err := strconv.ParseInt(tsHeader, 10, 64)
	if err != nil || ts <= 0 || len(tsHeader) > 12 {
		return fmt.Errorf("%w: %s must be unix seconds", ErrBadTimestamp, HeaderTimestamp)
	}
	hexSig, ok := strings.CutPrefix(sigHeader, signatureScheme)
	if !ok {
		return fmt.Errorf("%w: %s must be %s followed by the hex HMAC-SHA256", ErrBadSignature, HeaderSignature, signatureScheme)
	}
	given, err := hex.DecodeString(hexSig)
	if err != nil {
		return fmt.Errorf("%w: %s is not hex", ErrBadSignature, HeaderSignature)
	}
	if !hmac.Equal(given, mac(secret, tsHeader, body)) {
		return ErrBadSignature
	}
	skew := now.Sub(time.Unix(ts, 0))
	if skew > window || skew < -window {
		return fmt.Errorf("%w: %s is %s from the ingress clock, allowed ±%s", ErrStaleTimestamp, HeaderTimestamp,
			skew.Round(time.Second), window)
	}
	return nil
}
