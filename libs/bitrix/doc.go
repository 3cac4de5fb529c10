// Package bitrix is b24hub's client for the Bitrix24 REST API.
//
// One [Client] talks to one portal, authenticated either by an incoming
// webhook URL (/rest/{user}/{code}/{method}) or as an OAuth application
// (client_endpoint plus an access token kept in a [TokenStore]). Every call
// goes through a per-portal leaky-bucket [Limiter] that can be shared by
// every replica through NATS KV ([KVLimiter]), is retried only when that is
// safe, and ends in a typed [*Error] whose [Kind] says what to do next:
//
//   - KindQueryLimit (503 QUERY_LIMIT_EXCEEDED): rejected before execution,
//     always safe to retry; the client already retried with backoff.
//   - KindOverload (503 OVERLOAD_LIMIT): a manual block by Bitrix24 support;
//     never retried, alert on it.
//   - KindOperationLimit (429 OPERATION_TIME_LIMIT): the method is paused for
//     this portal until [Error.ResetAt]; other methods keep working.
//   - KindAuth, KindReauthorize: credentials are wrong, or the refresh token
//     is gone and a human must re-install/re-authorize the app.
//   - KindNotFound, KindPermanent: do not retry.
//   - KindTransient: a read is retried by the client; a write that failed
//     ambiguously is not ([Error.Ambiguous]).
//
// Facts about the API are cited from docs/bitrix24.md as "§n.n".
package bitrix
