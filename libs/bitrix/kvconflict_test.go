package bitrix

import (
	"errors"
	"fmt"
	"testing"

	"github.com/nats-io/nats.go/jetstream"
)

// TestIsRevisionConflict covers the answers a compare-and-swap on a KV
// bucket can fail with. Single-replica test servers only produce the first
// kind; production buckets (R3) produce code 10164, which
// jetstream.ErrKeyExists does not match.
func TestIsRevisionConflict(t *testing.T) {
	for name, tt := range map[string]struct {
		err  error
		want bool
	}{
		"nil":                  {nil, false},
		"key exists (R1)":      {fmt.Errorf("create: %w", jetstream.ErrKeyExists), true},
		"revision mismatch":    {fmt.Errorf("update: %w", jetstream.ErrKeyRevisionMismatch), true},
		"wrong last seq 10071": {&jetstream.APIError{ErrorCode: jetstream.JSErrCodeStreamWrongLastSequence, Code: 400}, true},
		"wrong last seq 10164": {&jetstream.APIError{ErrorCode: jetstream.JSErrCodeStreamWrongLastSequenceConstant, Code: 400}, true},
		"wrapped 10164":        {fmt.Errorf("x: %w", &jetstream.APIError{ErrorCode: jetstream.JSErrCodeStreamWrongLastSequenceConstant}), true},
		"bucket gone":          {jetstream.ErrBucketNotFound, false},
		"other API error":      {&jetstream.APIError{ErrorCode: jetstream.JSErrCodeStreamNotFound, Code: 404}, false},
		"plain error":          {errors.New("nats: timeout"), false},
	} {
		if got := isRevisionConflict(tt.err); got != tt.want {
			t.Errorf("%s: isRevisionConflict(%v) = %v, want %v", name, tt.err, got, tt.want)
		}
	}
}
