package alert

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"time"
)

// Sink delivers alert transitions somewhere a person will see them.
type Sink interface {
	// Name identifies the sink in Alert.Notified.
	Name() string
	// Send delivers a; an error means "try again at the next evaluation".
	Send(ctx context.Context, a Alert) error
}

// NewSink builds the sink cfg describes.
func NewSink(cfg SinkConfig, client *http.Client, log *slog.Logger) (Sink, error) {
	switch cfg.Type {
	case "log":
		return logSink{name: cfg.Name, log: log}, nil
	case "webhook", "slack":
		return &webhookSink{cfg: cfg, client: client}, nil
	}
	return nil, fmt.Errorf("alert: sink type %q", cfg.Type)
}

type logSink struct {
	name string
	log  *slog.Logger
}

// Name implements Sink.
func (s logSink) Name() string { return s.name }

// Send implements Sink: a warn record when firing, info when resolved.
func (s logSink) Send(ctx context.Context, a Alert) error {
	level := slog.LevelWarn
	if a.State == StateResolved {
		level = slog.LevelInfo
	}
	s.log.Log(ctx, level, "alert "+a.State, "alert", a.Key, "rule", a.Rule, "kind", a.Kind, "target", a.Target,
		"message", a.Message, "value", a.Value, "started_at", a.StartedAt)
	return nil
}

// WebhookPayload is the JSON body the generic webhook sink posts.
type WebhookPayload struct {
	Source     string     `json:"source"` // always "b24hub-monitor"
	Key        string     `json:"key"`
	Rule       string     `json:"rule"`
	Kind       string     `json:"kind"`
	Target     string     `json:"target"`
	State      string     `json:"state"` // firing or resolved
	Message    string     `json:"message"`
	Value      float64    `json:"value"`
	StartedAt  time.Time  `json:"started_at"`
	ResolvedAt *time.Time `json:"resolved_at,omitempty"`
}

type webhookSink struct {
	cfg    SinkConfig
	client *http.Client
}

// Name implements Sink.
func (s *webhookSink) Name() string { return s.cfg.Name }

func (s *webhookSink) body(a Alert) any {
	if s.cfg.Type == "slack" {
		icon := ":red_circle: FIRING"
		if a.State == StateResolved {
			icon = ":large_green_circle: RESOLVED"
		}
		return map[string]string{"text": fmt.Sprintf("%s *%s* (%s): %s", icon, a.Rule, a.Target, a.Message)}
	}
	return WebhookPayload{Source: "b24hub-monitor", Key: a.Key, Rule: a.Rule, Kind: a.Kind, Target: a.Target, State: a.State,
		Message: a.Message, Value: a.Value, StartedAt: a.StartedAt, ResolvedAt: a.ResolvedAt}
}

// Send implements Sink: POST the JSON body; any non-2xx status is an error.
func (s *webhookSink) Send(ctx context.Context, a Alert) error {
	b, err := json.Marshal(s.body(a))
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, time.Duration(s.cfg.Timeout))
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.cfg.URL, bytes.NewReader(b))
	if err != nil {
		return fmt.Errorf("alert: sink %s: %w", s.cfg.Name, err)
	}
	req.Header.Set("Content-Type", "application/json")
	for k, v := range s.cfg.Headers {
		req.Header.Set(k, v)
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return fmt.Errorf("alert: sink %s: %w", s.cfg.Name, err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("alert: sink %s: HTTP %d", s.cfg.Name, resp.StatusCode)
	}
	return nil
}
