package eventbus

// InstallRequest is sent on ControlInstall. It carries the raw body with its
// tokens, so it travels over core NATS request/reply only and must never be
// published to a stream or logged.
type InstallRequest struct {
	ContentType string `json:"content_type"`
	Body        []byte `json:"body"`
}

// InstallReply answers an InstallRequest. Accepted means the portal is now
// registered and its events are authenticated by the application token.
type InstallReply struct {
	Accepted bool `json:"accepted"`
	// Busy means the install was not verified: every verification slot for
	// its kind of portal was taken. It is not a refusal; the ingress treats
	// it like an unavailable verifier.
	Busy bool `json:"busy,omitempty"`
	// Reason says why an install was refused (for logs; never sent to the caller).
	Reason string `json:"reason,omitempty"`
}
