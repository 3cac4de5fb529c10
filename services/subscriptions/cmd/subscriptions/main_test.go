package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

func TestRunHelpAndConfigErrors(t *testing.T) {
	var out bytes.Buffer
	if err := command.Run(context.Background(), []string{"--help"}, func(string) string { return "" }, &out); err != nil || !strings.Contains(out.String(), "README") {
		t.Fatalf("help: %v %q", err, out.String())
	}
	err := command.Run(context.Background(), nil, func(string) string { return "" }, &out)
	if err == nil || !strings.Contains(err.Error(), "B24HUB_CREDENTIALS_KEY") {
		t.Fatalf("missing key: %v", err)
	}
}
