package fakeportal_test

import (
	"testing"

	"github.com/b24hub/b24hub/libs/fakeportal"
)

func TestInjectedQueryLimit(t *testing.T) {
	p := newPortal(t, fakeportal.Config{})
	p.AddWebhook(1, "qletest")
	p.SetQueryLimitRate(1)
	status, body := call(t, p, "/rest/1/qletest/crm.deal.fields", nil)
	if status != 503 || body["error"] != "QUERY_LIMIT_EXCEEDED" {
		t.Fatalf("rate 1: %d %v", status, body)
	}
	if n := p.InjectedQueryLimits(); n != 1 {
		t.Fatalf("InjectedQueryLimits = %d", n)
	}
	if st := p.Stats(); st.QueryLimitExceeded != 0 || st.Requests != 1 {
		t.Fatalf("stats %+v: injected answers must not count as bucket rejections", st)
	}
	p.SetQueryLimitRate(0)
	if status, body := call(t, p, "/rest/1/qletest/crm.deal.fields", nil); status != 200 {
		t.Fatalf("rate 0: %d %v", status, body)
	}
}
