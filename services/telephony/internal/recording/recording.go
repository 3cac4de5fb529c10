// Package recording answers eventbus.ControlRecording: a fresh download URL
// for a mirrored call's recording. The URL carries a live auth token, so
// the service never stores it; it keeps the Disk file id and asks the
// portal (disk.file.get) each time someone needs the file.
package recording

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"time"

	"github.com/b24hub/b24hub/libs/bitrix"
	"github.com/b24hub/b24hub/libs/eventbus"
	"github.com/b24hub/b24hub/services/telephony/internal/store"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
)

// Portals gives the REST client of a portal.
type Portals interface {
	ClientFor(ctx context.Context, memberID string) (*bitrix.Client, error)
}

// Server resolves recordings.
type Server struct {
	pool    *pgxpool.Pool
	portals Portals
	log     *slog.Logger
	timeout time.Duration
}

// New returns a Server; timeout bounds one answer (the portal's call).
func New(pool *pgxpool.Pool, portals Portals, log *slog.Logger, timeout time.Duration) *Server {
	return &Server{pool: pool, portals: portals, log: log, timeout: timeout}
}

// Resolve returns the recording of one call with a URL fresh from the
// portal, or a reply whose Error says why there is none.
func (s *Server) Resolve(ctx context.Context, req eventbus.RecordingRequest) eventbus.RecordingReply {
	if !eventbus.ValidToken(req.MemberID) || req.CallID == "" {
		return eventbus.RecordingReply{Error: "member_id and call_id are required"}
	}
	fileID, status, err := store.RecordingFile(ctx, s.pool, req.MemberID, req.CallID)
	switch {
	case errors.Is(err, store.ErrNoCall):
		return eventbus.RecordingReply{Error: "call " + req.CallID + " is not mirrored for portal " + req.MemberID}
	case err != nil:
		s.log.ErrorContext(ctx, "recording: ledger unavailable", "error", err)
		return eventbus.RecordingReply{Error: "telephony database unavailable, retry"}
	case fileID == 0:
		return eventbus.RecordingReply{Error: "call " + req.CallID + " has no recording (record status " + status + ")"}
	}
	client, err := s.portals.ClientFor(ctx, req.MemberID)
	if err != nil {
		return eventbus.RecordingReply{FileID: fileID, Error: "portal " + req.MemberID + ": " + err.Error()}
	}
	f, err := client.GetDiskFile(ctx, bitrix.ID(fileID))
	if err != nil {
		return eventbus.RecordingReply{FileID: fileID, Error: "disk.file.get: " + err.Error()}
	}
	return eventbus.RecordingReply{FileID: fileID, URL: f.DownloadURL}
}

// Subscribe answers ControlRecording requests on nc (one queue group for
// every replica) until the subscription is drained. The reply is never
// logged: it holds the URL.
func (s *Server) Subscribe(ctx context.Context, nc *nats.Conn) (*nats.Subscription, error) {
	return nc.QueueSubscribe(eventbus.ControlRecording, "telephony", func(m *nats.Msg) {
		var req eventbus.RecordingRequest
		rep := eventbus.RecordingReply{Error: "request must be JSON {member_id, call_id}"}
		if json.Unmarshal(m.Data, &req) == nil {
			rctx, cancel := context.WithTimeout(ctx, s.timeout)
			rep = s.Resolve(rctx, req)
			cancel()
		}
		b, _ := json.Marshal(rep)
		_ = m.Respond(b)
	})
}
