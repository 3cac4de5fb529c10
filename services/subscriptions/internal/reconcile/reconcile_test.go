package reconcile

import (
	"context"
	"encoding/json"
	"errors"
	"iter"
	"testing"
	"time"

	"github.com/b24hub/b24hub/libs/eventbus"
	eventsv1 "github.com/b24hub/b24hub/proto/gen/go/b24hub/events/v1"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"
)

type walker struct {
	rows   []string
	err    error
	params map[string]any
	method string
}

func (w *walker) Walk(_ context.Context, method string, params map[string]any) iter.Seq2[json.RawMessage, error] {
	w.params, w.method = params, method
	return func(yield func(json.RawMessage, error) bool) {
		for _, r := range w.rows {
			if !yield(json.RawMessage(r), nil) {
				return
			}
		}
		if w.err != nil {
			yield(nil, w.err)
		}
	}
}

type marks map[string]time.Time

func (m marks) Watermark(_ context.Context, member, entity string) (time.Time, bool, error) {
	t, ok := m[member+"/"+entity]
	return t, ok, nil
}
func (m marks) SetWatermark(_ context.Context, member, entity string, t time.Time) error {
	m[member+"/"+entity] = t
	return nil
}

type publisher struct{ msgs []eventbus.Message }

func (p *publisher) Publish(_ context.Context, m eventbus.Message) (*jetstream.PubAck, error) {
	p.msgs = append(p.msgs, m)
	return &jetstream.PubAck{}, nil
}

func TestRun(t *testing.T) {
	wm := time.Date(2026, 9, 17, 10, 0, 0, 0, time.UTC)
	tests := []struct {
		entity, event string
		rows          []string
		filterKey     string
	}{
		{"deal", "ONCRMDEALUPDATE", []string{`{"ID":"5","DATE_MODIFY":"2026-09-17T12:00:00+02:00"}`, `{"ID":7,"DATE_MODIFY":"2026-09-17T12:30:00+02:00"}`}, ">DATE_MODIFY"},
		{"task", "ONTASKUPDATE", []string{`{"id":"5","changedDate":"2026-09-17T12:00:00+02:00"}`, `{"id":"7","changedDate":"2026-09-17T12:30:00+02:00"}`}, ">CHANGED_DATE"},
	}
	for _, tt := range tests {
		t.Run(tt.entity, func(t *testing.T) {
			w := &walker{rows: tt.rows}
			m := marks{"m1/" + tt.entity: wm}
			pub := &publisher{}
			r := New(Config{Overlap: time.Minute}, pub, m)
			st, err := r.Run(context.Background(), Portal{MemberID: "m1", Domain: "a.bitrix24.com"}, w, tt.entity)
			if err != nil {
				t.Fatal(err)
			}
			if got := w.params["filter"].(map[string]any)[tt.filterKey]; got != "2026-09-17T09:59:00Z" {
				t.Errorf("filter %s = %v", tt.filterKey, got)
			}
			if st.Published != 2 || len(pub.msgs) != 2 {
				t.Fatalf("stats = %+v", st)
			}
			if want := time.Date(2026, 9, 17, 10, 30, 0, 0, time.UTC); !m["m1/"+tt.entity].Equal(want) {
				t.Errorf("watermark = %v, want %v", m["m1/"+tt.entity], want)
			}
			var env eventsv1.Envelope
			_ = proto.Unmarshal(pub.msgs[1].Data, &env)
			if env.GetEvent() != tt.event || env.GetEntityId() != "7" || env.GetSource() != eventsv1.Source_SOURCE_RECONCILE {
				t.Errorf("envelope = %v", &env)
			}
			if pub.msgs[1].Header.Get(eventbus.HeaderSource) != eventbus.SourceReconcile {
				t.Error("missing source header")
			}
		})
	}
}

func TestRunKeepsWatermarkOnFailure(t *testing.T) {
	wm := time.Date(2026, 9, 17, 10, 0, 0, 0, time.UTC)
	m := marks{"m1/deal": wm}
	w := &walker{rows: []string{`{"ID":"5","DATE_MODIFY":"2026-09-17T12:00:00+02:00"}`}, err: errors.New("QUERY_LIMIT_EXCEEDED")}
	r := New(Config{}, &publisher{}, m)
	if _, err := r.Run(context.Background(), Portal{MemberID: "m1"}, w, "deal"); err == nil {
		t.Fatal("walk error swallowed")
	}
	if !m["m1/deal"].Equal(wm) {
		t.Errorf("watermark moved after a failed walk: %v", m["m1/deal"])
	}
}

func TestFirstRunLooksBack(t *testing.T) {
	m := marks{}
	w := &walker{}
	r := New(Config{InitialLookback: time.Hour, Overlap: time.Minute}, &publisher{}, m)
	now := time.Date(2026, 9, 17, 10, 0, 0, 0, time.UTC)
	r.now = func() time.Time { return now }
	st, err := r.Run(context.Background(), Portal{MemberID: "m1"}, w, "task")
	if err != nil || !st.Since.Equal(now.Add(-61*time.Minute)) {
		t.Fatalf("since = %v err = %v", st.Since, err)
	}
}
