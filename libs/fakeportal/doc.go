// Package fakeportal is an in-memory Bitrix24 portal for tests and local
// runs, in the spirit of net/http/httptest: New starts it on a loopback port,
// Close stops it.
//
// It serves the REST methods b24hub uses (crm.deal.*, tasks.task.get,
// tasks.task.list, task.checklistitem.getlist, voximplant.statistic.get,
// disk.file.get, event.*, event.offline.*, app.info, feature.get and batch)
// over both incoming-webhook URLs (/rest/{user}/{code}/{method}) and OAuth
// (/rest/{method} with auth=token), and behaves the way the documentation in
// docs/bitrix24.md says the real one does ("§n.n" below):
//
//   - a per-portal leaky bucket answering 503 QUERY_LIMIT_EXCEEDED (§4.5),
//     and a per-method operation-time limit answering 429 (§4.6);
//   - OAuth tokens that expire and rotate through its own /oauth/token/
//     endpoint, which plays the regional server_endpoint (§4.2);
//   - batch with halt, $result references and per-command errors (§4.7);
//   - events POSTed form-encoded in PHP bracket notation with the documented
//     field order and auth block, to event.bind handlers and to configured
//     outgoing webhooks (§3); an offline queue with coalescing and process_id
//     reservation (§2);
//   - fault injection: latency, 5xx, HTML pages, dropped pushes, expiring
//     tokens, and a record of every push with the handler's response time.
//
// Tests read what happened through Stats, Deliveries and the model
// accessors. The standalone binary in cmd/fakeportal serves the same portal
// and can post scenarios to a real ingress.
package fakeportal
