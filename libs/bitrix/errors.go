package bitrix

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Kind classifies a failure by what the caller should do about it. A Kind is
// itself an error so that errors.Is(err, bitrix.KindNotFound) works on any
// error returned by this package.
type Kind uint8

// The failure kinds. See the package documentation for the handling each one
// asks for.
const (
	// KindPermanent is a request the portal will reject again: bad
	// parameters, unknown method, a rule violated. Do not retry.
	KindPermanent Kind = iota + 1
	// KindTransient is a failure that may succeed later: network errors,
	// 5xx answers, HTML error pages. Reads were already retried.
	KindTransient
	// KindQueryLimit is 503 QUERY_LIMIT_EXCEEDED (§4.5): the portal's leaky
	// bucket overflowed. It is rejected before execution, so always safe to
	// retry.
	KindQueryLimit
	// KindOverload is 503 OVERLOAD_LIMIT (§4.4): REST is blocked for the
	// portal by Bitrix24 support. Never retried; alert on it.
	KindOverload
	// KindOperationLimit is 429 OPERATION_TIME_LIMIT (§4.6): the method used
	// up its execution-time budget and is blocked until Error.ResetAt.
	KindOperationLimit
	// KindAuth is an authentication or authorization failure that a token
	// refresh did not (or could not) fix: a wrong webhook code, an app that
	// is not installed, missing scope, access denied.
	KindAuth
	// KindReauthorize means the OAuth refresh token was rejected
	// (invalid_grant, §4.2): the portal must re-install or re-authorize the
	// application. Nothing automatic can fix it.
	KindReauthorize
	// KindNotFound is a missing entity, including Bitrix24's "result: []"
	// answer for a get of something that does not exist (§5.3).
	KindNotFound
	// KindLimiter is the shared rate limiter failing to grant a slot before
	// any request was sent: its NATS KV bucket did not answer, or the
	// caller's context ended while it waited. The portal was not asked, so
	// the error says nothing about the portal. Retrying later may succeed.
	KindLimiter
)

var kindNames = map[Kind]string{
	KindPermanent:      "permanent",
	KindTransient:      "transient",
	KindQueryLimit:     "query_limit",
	KindOverload:       "overload",
	KindOperationLimit: "operation_limit",
	KindAuth:           "auth",
	KindReauthorize:    "reauthorize",
	KindNotFound:       "not_found",
	KindLimiter:        "limiter",
}

// String returns a short snake_case name, used as a metric attribute.
func (k Kind) String() string {
	if s, ok := kindNames[k]; ok {
		return s
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// Error makes a Kind usable as an errors.Is target.
func (k Kind) Error() string { return "bitrix: " + k.String() }

// Error codes the client reacts to. Codes are compared case-sensitively, as
// Bitrix24 sends them (§4.4).
const (
	CodeQueryLimitExceeded = "QUERY_LIMIT_EXCEEDED"
	CodeOverloadLimit      = "OVERLOAD_LIMIT"
	CodeOperationTimeLimit = "OPERATION_TIME_LIMIT"
	CodeExpiredToken       = "expired_token"
	CodeInvalidToken       = "invalid_token"
	CodeInvalidGrant       = "invalid_grant"
	CodeNoAuthFound        = "NO_AUTH_FOUND"
	CodeMethodNotFound     = "ERROR_METHOD_NOT_FOUND"
	CodeBatchLength        = "ERROR_BATCH_LENGTH_EXCEEDED"
)

var authCodes = map[string]bool{
	CodeExpiredToken: true, CodeInvalidToken: true, CodeNoAuthFound: true,
	"authorization_error": true, "ERROR_OAUTH": true, "APPLICATION_NOT_FOUND": true,
	"PAYMENT_REQUIRED": true, "METHOD_CONFIRM_WAITING": true, "insufficient_scope": true,
	"invalid_scope": true, "INVALID_CREDENTIALS": true, "ACCESS_DENIED": true,
	"user_access_error": true, "WRONG_AUTH_TYPE": true, "METHOD_CONFIRM_DENIED": true,
	"invalid_client": true, "invalid_request": true, "WRONG_CLIENT": true, "NOT_INSTALLED": true,
}

var notFoundCodes = map[string]bool{"NOT_FOUND": true, "ERROR_NOT_FOUND": true, "ERROR_ENTITY_NOT_FOUND": true}

// Error is every failure this package returns for a call that reached (or
// tried to reach) a portal. Bitrix24 is inconsistent about codes: many CRM
// errors have an empty code and only a description, and the tasks module
// answers "100" or "0" (§4.4), so Kind looks at status, code and description
// together.
type Error struct {
	// Status is the HTTP status; 0 when no response arrived, and for a batch
	// sub-command (the batch itself answered 200, §4.7).
	Status int
	// Code is the Bitrix24 error code, possibly empty.
	Code string
	// Description is error_description, or a summary of a non-JSON body.
	Description string
	// Method is the REST method that failed (the sub-command's method for
	// batch results).
	Method string
	// Portal is the member_id (or host) of the portal that answered.
	Portal string
	// ResetAt is when a method blocked by OPERATION_TIME_LIMIT unblocks;
	// zero otherwise.
	ResetAt time.Time
	// Ambiguous is true when a write failed after the request may have been
	// executed (timeout, 5xx, broken connection). The client never retries
	// such a write on its own and Retryable reports false for it.
	Ambiguous bool
	// Err is the underlying transport or decoding error, if any.
	Err error

	kind Kind // set when the kind is known from context, not from the answer
}

// Kind classifies the error; see the Kind constants.
func (e *Error) Kind() Kind {
	if e.kind != 0 {
		return e.kind
	}
	switch {
	case e.Code == CodeQueryLimitExceeded:
		return KindQueryLimit
	case e.Code == CodeOverloadLimit:
		return KindOverload
	case e.Code == CodeOperationTimeLimit:
		return KindOperationLimit
	case e.Code == CodeInvalidGrant:
		return KindReauthorize
	case authCodes[e.Code]:
		return KindAuth
	case notFoundCodes[e.Code]:
		return KindNotFound
	case e.Code == "" && strings.EqualFold(strings.TrimSpace(strings.TrimSuffix(e.Description, ".")), "not found"):
		// crm.deal.get of a missing ID: 400 {"error":"","error_description":"Not found"} (§4.4).
		return KindNotFound
	case e.Status == 401:
		return KindAuth
	case e.Status == 429:
		return KindOperationLimit
	case e.Status == 0 && e.Err != nil, e.Status >= 500:
		return KindTransient
	}
	return KindPermanent
}

// Error renders "bitrix: <method>: <status> <code>: <description>".
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("bitrix: ")
	if e.Method != "" {
		b.WriteString(e.Method)
		b.WriteString(": ")
	}
	if e.Kind() == KindReauthorize {
		fmt.Fprintf(&b, "re-authorize portal %s: the refresh token was rejected: ", e.Portal)
	}
	if e.Status != 0 {
		fmt.Fprintf(&b, "%d ", e.Status)
	}
	if e.Code != "" {
		b.WriteString(e.Code)
		if e.Description != "" {
			b.WriteString(": ")
		}
	}
	b.WriteString(e.Description)
	if e.Err != nil && e.Description == "" {
		b.WriteString(e.Err.Error())
	}
	if !e.ResetAt.IsZero() {
		fmt.Fprintf(&b, " (blocked until %s)", e.ResetAt.UTC().Format(time.RFC3339))
	}
	if e.Ambiguous {
		b.WriteString(" (write may have been applied)")
	}
	return b.String()
}

// Unwrap returns the underlying transport error, so errors.Is(err,
// context.DeadlineExceeded) keeps working.
func (e *Error) Unwrap() error { return e.Err }

// Is reports whether target is this error's Kind.
func (e *Error) Is(target error) bool {
	k, ok := target.(Kind)
	return ok && k == e.Kind()
}

// Retryable reports whether repeating the same call later may succeed
// without changing anything: query-limit and operation-limit rejections
// (the portal did not execute the call), the limiter's wait failing
// (nothing was sent) and transient failures that are not
// ambiguous writes. Context cancellation is not retryable.
func Retryable(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) {
		return false
	}
	var e *Error
	if !errors.As(err, &e) {
		return false
	}
	switch e.Kind() {
	case KindQueryLimit, KindOperationLimit, KindLimiter:
		return true
	case KindTransient:
		return !e.Ambiguous
	}
	return false
}

// RetryAfter suggests how long to wait before retrying err: the time left
// until ResetAt for an operation-limit error, otherwise zero (let the caller's
// backoff decide).
func RetryAfter(err error, now time.Time) time.Duration {
	var e *Error
	if errors.As(err, &e) && !e.ResetAt.IsZero() && e.ResetAt.After(now) {
		return e.ResetAt.Sub(now)
	}
	return 0
}
