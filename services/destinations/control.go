package destinations

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/b24hub/b24hub/libs/eventbus"
	"github.com/b24hub/b24hub/services/destinations/internal/delivery"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// controlQueue is the queue group the replicas answer control requests in:
// one answer per request.
const controlQueue = "destinations"

// subscribeControl answers eventbus.ControlDestinationsList and
// eventbus.ControlDestinationsReplay.
func (s *Service) subscribeControl(ctx context.Context) ([]*nats.Subscription, error) {
	var subs []*nats.Subscription
	for subj, answer := range map[string]func(context.Context, []byte) any{
		eventbus.ControlDestinationsList:   func(ctx context.Context, b []byte) any { return s.answerList(ctx, b) },
		eventbus.ControlDestinationsReplay: func(ctx context.Context, b []byte) any { return s.answerReplay(ctx, b) },
	} {
		sub, err := s.deps.NATS.QueueSubscribe(subj, controlQueue, func(m *nats.Msg) {
			go func() {
				rctx, cancel := context.WithTimeout(ctx, time.Minute)
				defer cancel()
				data, err := json.Marshal(answer(rctx, m.Data))
				if err == nil {
					_ = m.Respond(data)
				}
			}()
		})
		if err != nil {
			for _, sub := range subs {
				_ = sub.Unsubscribe()
			}
			return nil, fmt.Errorf("destinations: subscribe %s: %w", subj, err)
		}
		subs = append(subs, sub)
	}
	return subs, nil
}

// List describes the destinations being delivered (name selects one):
// what each receives, its limits, its circuit breaker as this replica sees
// it, and the durable's pause and backlog as the server sees them.
func (s *Service) List(ctx context.Context, name string) []eventbus.DestinationInfo {
	s.mu.Lock()
	rs := make([]*running, 0, len(s.running))
	for n, r := range s.running {
		if name == "" || n == name {
			rs = append(rs, r)
		}
	}
	s.mu.Unlock()
	slices.SortFunc(rs, func(a, b *running) int { return strings.Compare(a.d.Name, b.d.Name) })
	out := make([]eventbus.DestinationInfo, 0, len(rs))
	for _, r := range rs {
		d, st := r.d, r.runner.Status()
		u := *d.URL
		u.RawQuery, u.Fragment, u.User = "", "", nil
		info := eventbus.DestinationInfo{
			Name: d.Name, URL: u.String(), Consumer: d.Durable(), Stream: d.Stream, Subjects: d.Subjects,
			Timeout: d.Timeout.String(), Rate: d.Rate, Concurrency: d.Concurrency, RetryFor: d.RetryFor.String(),
			State: string(st.State), Failures: st.Failures, Pauses: st.Pauses, PausedUntil: st.PausedUntil, Paused: st.State == delivery.StatePaused,
		}
		if c, err := s.deps.JS.Consumer(ctx, d.Stream, d.Durable()); err == nil {
			ci := c.CachedInfo()
			info.Pending, info.AckPending = ci.NumPending, ci.NumAckPending
			info.Paused = ci.Paused
			if ci.Paused {
				info.PausedUntil = time.Now().Add(ci.PauseRemaining).UTC().Truncate(time.Second)
			}
		}
		out = append(out, info)
	}
	return out
}

func (s *Service) answerList(ctx context.Context, data []byte) eventbus.DestinationsReply {
	var req eventbus.DestinationsRequest
	if len(data) > 0 {
		if err := json.Unmarshal(data, &req); err != nil {
			return eventbus.DestinationsReply{Error: "bad request: " + err.Error()}
		}
	}
	rep := eventbus.DestinationsReply{Destinations: s.List(ctx, req.Name), File: s.cfg.File}
	if req.Name != "" && len(rep.Destinations) == 0 {
		rep.Error = fmt.Sprintf("no destination %q is declared", req.Name)
	}
	return rep
}

// ErrUnknownDestination is returned for a replay to a destination that is
// not declared.
var ErrUnknownDestination = errors.New("destinations: no such destination")

// Replay delivers one stored message again to one destination only (see
// delivery.Runner.Replay), found by stream sequence or by message id among
// the messages of a subject.
func (s *Service) Replay(ctx context.Context, req eventbus.DestinationReplayRequest) (eventbus.DestinationReplayReply, error) {
	name := strings.TrimPrefix(req.Destination, "dest-")
	s.mu.Lock()
	r, ok := s.running[name]
	s.mu.Unlock()
	if !ok {
		return eventbus.DestinationReplayReply{}, fmt.Errorf("%w: %q", ErrUnknownDestination, req.Destination)
	}
	sm, err := s.find(ctx, r.runner.Stream(), req)
	if err != nil {
		return eventbus.DestinationReplayReply{}, err
	}
	id, res, err := r.runner.Replay(ctx, sm, req.ReplayID)
	rep := eventbus.DestinationReplayReply{WebhookID: id, Status: res.Status, Delivered: err == nil && res.Err == nil}
	if err != nil {
		return rep, err
	}
	if res.Err != nil {
		rep.Error = res.Err.Error()
	}
	return rep, nil
}

// find reads the message a replay names from the stream.
func (s *Service) find(ctx context.Context, stream string, req eventbus.DestinationReplayRequest) (*jetstream.RawStreamMsg, error) {
	st, err := s.deps.JS.Stream(ctx, stream)
	if err != nil {
		return nil, err
	}
	if req.StreamSeq != 0 {
		sm, err := st.GetMsg(ctx, req.StreamSeq)
		if err != nil {
			return nil, fmt.Errorf("message %d of %s: %w", req.StreamSeq, stream, err)
		}
		if req.MessageID != "" && sm.Header.Get(eventbus.HeaderMsgID) != req.MessageID {
			return nil, fmt.Errorf("message %d of %s is not %s (the stream dropped it?)", req.StreamSeq, stream, req.MessageID)
		}
		return sm, nil
	}
	if req.Subject == "" || req.MessageID == "" {
		return nil, errors.New("replay: stream_seq, or subject and message_id, are required")
	}
	// A change's subject is its entity's: few messages to look through,
	// each read on its own (next by subject), so no consumer is created.
	for next, n := uint64(1), 0; n < maxScan; n++ {
		sm, err := st.GetMsg(ctx, next, jetstream.WithGetMsgSubject(req.Subject))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			break
		}
		if err != nil {
			return nil, err
		}
		if sm.Header.Get(eventbus.HeaderMsgID) == req.MessageID {
			return sm, nil
		}
		next = sm.Sequence + 1
	}
	return nil, fmt.Errorf("message %s not found on %s in %s", req.MessageID, req.Subject, stream)
}

// maxScan bounds how many messages of one subject a replay looks through.
const maxScan = 10000

func (s *Service) answerReplay(ctx context.Context, data []byte) eventbus.DestinationReplayReply {
	var req eventbus.DestinationReplayRequest
	if err := json.Unmarshal(data, &req); err != nil {
		return eventbus.DestinationReplayReply{Error: "bad request: " + err.Error()}
	}
	rep, err := s.Replay(ctx, req)
	if err != nil {
		rep.Error = err.Error()
		s.deps.Logger.WarnContext(ctx, "destination replay failed", "destination", req.Destination, "message_id", req.MessageID, "error", err)
	}
	return rep
}
