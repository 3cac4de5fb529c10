package eventbus

import "slices"

// Error kinds: the whole vocabulary of Outcome.error_kind (and of the
// error_kind label of the consumer metrics). The consumer runtime assigns
// the first group, libs/bitrix/bitrixport maps the Bitrix24 client's
// errors onto the second, and the monitor's error_kind alert rules accept
// only these names, so that a rule can never wait for a kind nobody
// produces. Adding a kind is a change of this contract: add it here and to
// docs/monitor.md ("Error kinds").
const (
	// ErrorKindPermanent: no retry can fix it; dead-lettered at once.
	ErrorKindPermanent = "permanent"
	// ErrorKindTransient: retried with backoff (the default for errors
	// that classify nothing).
	ErrorKindTransient = "transient"
	// ErrorKindUndecodable: the payload could not be decoded; terminated
	// and dead-lettered, never retried.
	ErrorKindUndecodable = "undecodable"
	// ErrorKindPanic: the handler panicked; retried like a transient error.
	ErrorKindPanic = "panic"
	// ErrorKindMaxDeliveries: the last delivery failed; dead-lettered.
	ErrorKindMaxDeliveries = "max_deliveries"
	// ErrorKindShutdown: the process stopped while the handler ran.
	ErrorKindShutdown = "shutdown"
	// ErrorKindUnavailable: a dependency (PostgreSQL, NATS, a portal
	// answering 5xx or not at all) did not answer; the consumer pauses and
	// the message waits without spending its delivery budget.
	ErrorKindUnavailable = "unavailable"

	// ErrorKindOverload is 503 OVERLOAD_LIMIT: Bitrix24 blocked REST access
	// for the application on the portal. Alert on it (monitor rule
	// overload-limit); retrying makes the block longer.
	ErrorKindOverload = "overload"
	// ErrorKindQueryLimit is 503 QUERY_LIMIT_EXCEEDED that outlasted the
	// client's own retries: the portal's leaky bucket is full.
	ErrorKindQueryLimit = "query_limit"
	// ErrorKindOperationLimit is 429 OPERATION_TIME_LIMIT: the method is
	// paused for the portal until its reset time.
	ErrorKindOperationLimit = "operation_limit"
	// ErrorKindAuth: the webhook or access token is rejected (deleted
	// webhook, deactivated user, missing scope on auth).
	ErrorKindAuth = "auth"
	// ErrorKindReauthorize: the OAuth refresh token is gone; a human must
	// reinstall or re-authorize the application (monitor rule
	// reauthorization).
	ErrorKindReauthorize = "reauthorize"
	// ErrorKindNotFound: the entity no longer exists on the portal.
	ErrorKindNotFound = "not_found"
	// ErrorKindLimiter: the shared rate limiter (a NATS KV bucket) could
	// not grant a REST slot, so no request was sent; the consumer pauses
	// as for NATS being down, the portal is not blamed.
	ErrorKindLimiter = "limiter"
)

var errorKinds = []string{
	ErrorKindPermanent, ErrorKindTransient, ErrorKindUndecodable, ErrorKindPanic, ErrorKindMaxDeliveries, ErrorKindShutdown, ErrorKindUnavailable,
	ErrorKindOverload, ErrorKindQueryLimit, ErrorKindOperationLimit, ErrorKindAuth, ErrorKindReauthorize, ErrorKindNotFound,
	ErrorKindLimiter,
}

// ErrorKinds returns every error kind, in the order documented above.
func ErrorKinds() []string { return slices.Clone(errorKinds) }

// IsErrorKind reports whether kind belongs to the vocabulary.
func IsErrorKind(kind string) bool { return slices.Contains(errorKinds, kind) }
