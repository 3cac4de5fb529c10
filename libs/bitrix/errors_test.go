package bitrix

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"
)

func TestErrorKind(t *testing.T) {
	tests := []struct {
		name string
		err  Error
		want Kind
	}{
		{"query limit", Error{Status: 503, Code: "QUERY_LIMIT_EXCEEDED"}, KindQueryLimit},
		{"overload is its own kind", Error{Status: 503, Code: "OVERLOAD_LIMIT"}, KindOverload},
		{"operation limit", Error{Status: 429, Code: "OPERATION_TIME_LIMIT"}, KindOperationLimit},
		{"429 without code", Error{Status: 429}, KindOperationLimit},
		{"expired token", Error{Status: 401, Code: "expired_token"}, KindAuth},
		{"wrong webhook", Error{Status: 401, Code: "NO_AUTH_FOUND"}, KindAuth},
		{"access denied", Error{Status: 403, Code: "ACCESS_DENIED"}, KindAuth},
		{"invalid grant asks for re-authorization", Error{Status: 400, Code: "invalid_grant"}, KindReauthorize},
		{"empty code not found (crm.deal.get)", Error{Status: 400, Description: "Not found"}, KindNotFound},
		{"NOT_FOUND", Error{Status: 404, Code: "NOT_FOUND"}, KindNotFound},
		{"empty code bad params", Error{Status: 400, Description: "Parameter 'fields' must be array."}, KindPermanent},
		{"tasks numeric code", Error{Status: 400, Code: "100", Description: "Invalid value"}, KindPermanent},
		{"internal server error", Error{Status: 500, Code: "INTERNAL_SERVER_ERROR"}, KindTransient},
		{"network error", Error{Err: errors.New("connection reset")}, KindTransient},
		{"method not found", Error{Status: 404, Code: "ERROR_METHOD_NOT_FOUND"}, KindPermanent},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.err.Kind(); got != tt.want {
				t.Fatalf("Kind() = %v, want %v", got, tt.want)
			}
			wrapped := fmt.Errorf("outer: %w", &tt.err)
			if !errors.Is(wrapped, tt.want) {
				t.Fatalf("errors.Is(%v) false", tt.want)
			}
		})
	}
}

func TestRetryable(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"query limit", &Error{Code: CodeQueryLimitExceeded}, true},
		{"operation limit", &Error{Code: CodeOperationTimeLimit}, true},
		{"overload", &Error{Code: CodeOverloadLimit}, false},
		{"transient read", &Error{Status: 502}, true},
		{"ambiguous write", &Error{Status: 502, Ambiguous: true}, false},
		{"permanent", &Error{Status: 400, Code: "ERROR_CORE"}, false},
		{"canceled", &Error{Err: context.Canceled, kind: KindTransient}, false},
		{"not ours", errors.New("x"), false},
		{"nil", nil, false},
	}
	for _, tt := range tests {
		if got := Retryable(tt.err); got != tt.want {
			t.Errorf("%s: Retryable = %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestErrorMessage(t *testing.T) {
	e := &Error{Status: 400, Code: "invalid_grant", Method: "oauth/token", Portal: "m1"}
	if got := e.Error(); got != "bitrix: oauth/token: re-authorize portal m1: the refresh token was rejected: 400 invalid_grant" {
		t.Fatalf("got %q", got)
	}
	reset := time.Unix(1700000000, 0)
	if RetryAfter(&Error{ResetAt: reset}, reset.Add(-time.Minute)) != time.Minute {
		t.Fatal("RetryAfter")
	}
}
