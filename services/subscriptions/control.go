package subscriptions

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"

	"github.com/b24hub/b24hub/libs/eventbus"
	"github.com/b24hub/b24hub/services/subscriptions/internal/binding"
	"github.com/b24hub/b24hub/services/subscriptions/internal/desired"
	"github.com/nats-io/nats.go"
)

func toBindings(bs []desired.Binding) []eventbus.SubscriptionBinding {
	out := make([]eventbus.SubscriptionBinding, 0, len(bs))
	for _, b := range bs {
		out = append(out, eventbus.SubscriptionBinding{Event: b.Event, Handler: b.Handler, Offline: b.Offline})
	}
	return out
}

// subscribeControl answers eventbus.ControlSubscriptionsDiff and
// eventbus.ControlSubscriptionsApply (queue group "subscriptions", so any
// replica answers).
func (s *Service) subscribeControl(ctx context.Context) ([]*nats.Subscription, error) {
	var subs []*nats.Subscription
	for subj, apply := range map[string]bool{eventbus.ControlSubscriptionsDiff: false, eventbus.ControlSubscriptionsApply: true} {
		sub, err := s.deps.NC.QueueSubscribe(subj, "subscriptions", func(m *nats.Msg) {
			go s.answerControl(ctx, m, apply)
		})
		if err != nil {
			return subs, fmt.Errorf("subscriptions: subscribe %s: %w", subj, err)
		}
		subs = append(subs, sub)
	}
	return subs, nil
}

func (s *Service) answerControl(ctx context.Context, m *nats.Msg, apply bool) {
	var req eventbus.SubscriptionsRequest
	var rep eventbus.SubscriptionsReply
	if len(m.Data) > 0 {
		if err := json.Unmarshal(m.Data, &req); err != nil {
			rep.Error = "bad request: " + err.Error()
		}
	}
	if rep.Error == "" {
		members := s.appPortals(ctx)
		if req.MemberID != "" {
			if !slices.Contains(members, req.MemberID) {
				rep.Error = fmt.Sprintf("portal %s is not an installed app portal with stored credentials (outgoing-webhook portals cannot use event.bind)", req.MemberID)
			}
			members = []string{req.MemberID}
		}
		if rep.Error == "" {
			for _, id := range members {
				rep.Portals = append(rep.Portals, s.syncPortal(ctx, id, apply))
			}
		}
	}
	b, _ := json.Marshal(rep)
	_ = m.Respond(b)
}

// syncPortal checks one portal and, when apply is set, repairs it. It
// records the drift metric and the sync status either way.
func (s *Service) syncPortal(ctx context.Context, memberID string, apply bool) eventbus.SubscriptionPlan {
	spec := s.desired().For(memberID)
	out := eventbus.SubscriptionPlan{MemberID: memberID, Mode: string(spec.Mode)}
	fail := func(err error) eventbus.SubscriptionPlan {
		out.Error = err.Error()
		s.m.syncErrors.Add(ctx, 1, member(memberID))
		s.recordSync(ctx, memberID, -1, 0, err)
		s.log.WarnContext(ctx, "subscription check failed", "member_id", memberID, "error", err)
		return out
	}
	c, err := s.clients.ClientFor(ctx, memberID)
	if err != nil {
		return fail(err)
	}
	plan, err := binding.Check(ctx, c, spec.Bindings())
	if err != nil {
		return fail(err)
	}
	out.InSync, out.Bind, out.Unbind = plan.InSync, toBindings(plan.Bind), toBindings(plan.Unbind)
	if !apply || plan.Drift() == 0 {
		s.m.drift.Record(ctx, int64(plan.Drift()), member(memberID))
		s.recordSync(ctx, memberID, plan.Drift(), 0, nil)
		return out
	}
	res, err := binding.Apply(ctx, c, plan)
	out.Bound, out.Unbound, out.Failed = toBindings(res.Bound), toBindings(res.Unbound), res.Failed
	s.m.repairs.Add(ctx, int64(res.Repaired()), member(memberID))
	// The gauge is what is still out of place, so an alert on it fires only
	// while repairs keep failing.
	s.m.drift.Record(ctx, int64(plan.Drift()-res.Repaired()), member(memberID))
	if err != nil {
		s.m.syncErrors.Add(ctx, 1, member(memberID))
		s.log.WarnContext(ctx, "subscription repair incomplete", "member_id", memberID, "error", err)
	} else {
		s.log.InfoContext(ctx, "subscriptions repaired", "member_id", memberID,
			"bound", len(res.Bound), "unbound", len(res.Unbound))
	}
	s.recordSync(ctx, memberID, plan.Drift(), res.Repaired(), err)
	return out
}
