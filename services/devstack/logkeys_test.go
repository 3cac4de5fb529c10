package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"
)

// duplicateKey decodes one JSON value and returns the first key an object
// repeats, at any depth ("" when none): encoding/json would silently keep
// the last, log pipelines reject or mangle such lines.
func duplicateKey(dec *json.Decoder) (string, error) {
	tok, err := dec.Token()
	if err != nil {
		return "", err
	}
	switch tok {
	case json.Delim('{'):
		seen := map[string]bool{}
		for dec.More() {
			k, err := dec.Token()
			if err != nil {
				return "", err
			}
			key := k.(string)
			if seen[key] {
				return key, nil
			}
			seen[key] = true
			if dup, err := duplicateKey(dec); dup != "" || err != nil {
				return dup, err
			}
		}
		_, err = dec.Token()
		return "", err
	case json.Delim('['):
		for dec.More() {
			if dup, err := duplicateKey(dec); dup != "" || err != nil {
				return dup, err
			}
		}
		_, err = dec.Token()
		return "", err
	}
	return "", nil
}

// logKeyErrors lists the stack's JSON log lines that repeat a key.
func logKeyErrors(out string) []string {
	var errs []string
	for l := range strings.Lines(out) {
		if !strings.HasPrefix(l, "{") {
			continue // the banner and other plain text
		}
		dup, err := duplicateKey(json.NewDecoder(strings.NewReader(l)))
		switch {
		case err != nil:
			errs = append(errs, fmt.Sprintf("unparsable log line %q: %v", l, err))
		case dup != "":
			errs = append(errs, fmt.Sprintf("key %q twice in %s", dup, strings.TrimSpace(l)))
		}
	}
	return errs
}

func TestDuplicateKeyIsFound(t *testing.T) {
	for line, want := range map[string]string{
		`{"service":"devstack","service":"monitor"}`: "service",
		`{"a":{"b":1,"b":2}}`:                        "b",
		`{"service":"monitor","a":{"service":1}}`:    "",
	} {
		if got, _ := duplicateKey(json.NewDecoder(strings.NewReader(line))); got != want {
			t.Errorf("duplicateKey(%s) = %q, want %q", line, got, want)
		}
	}
}

// TestStackLogsOneKeyPerAttribute: the local stack wraps each service's
// logger in its own "service" on top of the stack's, and the monitor adds
// its name again; every line must still name one service, once.
func TestStackLogsOneKeyPerAttribute(t *testing.T) {
	s := startStack(t, stackOptions{env: map[string]string{"B24HUB_LOG_LEVEL": "debug"}})
	services := func() map[string]bool {
		seen := map[string]bool{}
		for l := range strings.Lines(s.logs.String()) {
			var rec struct{ Service string }
			if json.Unmarshal([]byte(l), &rec) == nil && rec.Service != "" {
				seen[rec.Service] = true
			}
		}
		return seen
	}
	s.eventually("lines from three services", 30*time.Second, func() bool {
		seen := services()
		return len(seen) >= 3
	})
	for _, e := range logKeyErrors(s.logs.String()) {
		t.Error(e)
	}
	if n := bytes.Count([]byte(s.logs.String()), []byte(`"service":"devstack","service"`)); n > 0 {
		t.Errorf("%d lines carry the stack's service and a service's", n)
	}
	t.Logf("services in the log: %v", services())
}
