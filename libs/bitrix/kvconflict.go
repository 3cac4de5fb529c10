package bitrix

import (
	"errors"

	"github.com/nats-io/nats.go/jetstream"
)

// isRevisionConflict reports a failed create or revision-checked update:
// the key exists, or its last revision is not the expected one. A
// replicated bucket (R>1, as in production) reports the conflict with
// another API error code than a single-replica one (10164, not 10071), and
// jetstream.ErrKeyExists matches only the latter, so every code is checked.
func isRevisionConflict(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, jetstream.ErrKeyExists) || errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
		return true
	}
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && (apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
		apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant)
}
