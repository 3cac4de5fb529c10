package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

func TestRun(t *testing.T) {
	var out, errOut bytes.Buffer
	getenv := func(string) string { return "" }
	if code := run(context.Background(), []string{"--help"}, getenv, strings.NewReader(""), &out, &errOut); code != 0 || !strings.Contains(out.String(), "b24ctl") {
		t.Fatalf("--help: %d %q", code, out.String())
	}
	if code := run(context.Background(), []string{"nope"}, getenv, strings.NewReader(""), &out, &errOut); code != 2 {
		t.Fatalf("unknown command exit %d", code)
	}
}
