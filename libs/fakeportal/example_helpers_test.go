package fakeportal_test

import (
	"net/http"
	"net/http/httptest"
	"sort"
)

func newServer(h http.Handler) *httptest.Server { return httptest.NewServer(h) }

func sortStrings(s []string) { sort.Strings(s) }
