package ledger

import (
	"testing"
	"time"
)

func TestFold(t *testing.T) {
	t0 := time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	key := deliveryKey{"e", "c"}
	tests := []struct {
		name       string
		existing   *deliveryRow
		attempts   []Attempt
		dead       []DeadLetter
		wantStatus string
		wantTries  int
		wantCounts int64
		wantErr    string
	}{
		{"first success", nil, []Attempt{{Status: StatusDone, Attempt: 1, At: at(1)}}, nil, StatusDone, 1, 1, ""},
		{"retry then success", nil, []Attempt{{Status: StatusError, Attempt: 1, Error: "x", At: at(1)}, {Status: StatusDone, Attempt: 2, At: at(2)}},
			nil, StatusDone, 2, 2, ""},
		{"out of order", nil, []Attempt{{Status: StatusDone, Attempt: 2, At: at(2)}, {Status: StatusError, Attempt: 1, Error: "x", At: at(1)}},
			nil, StatusDone, 2, 1, ""},
		{"redelivered outcome", &deliveryRow{deliveryKey: key, Status: StatusError, Attempts: 1, LastAt: at(1), LastError: "x"},
			[]Attempt{{Status: StatusError, Attempt: 1, Error: "x", At: at(1)}}, nil, StatusError, 1, 0, "x"},
		{"delivery count reset by a broker restart", nil, []Attempt{{Status: StatusError, Attempt: 2, Error: "x", At: at(1)}, {Status: StatusDone, Attempt: 1, At: at(2)}},
			nil, StatusDone, 2, 2, ""},
		// TestBrokerKilledUnderLoad, 9 events stuck at "error after 2
		// attempts": copy 1 done and acknowledged, copy 2 (delivered again
		// while copy 1 was still held) failed afterwards.
		{"stale redelivered copy fails after the success", nil, []Attempt{{Status: StatusDone, Attempt: 1, At: at(1)}, {Status: StatusError, Attempt: 2, Error: "x", At: at(2)}},
			nil, StatusDone, 2, 2, ""},
		// TestDemoCurlIsAccepted under load: copy 1 done, copy 2 (delivered
		// again while copy 1 was held) found the deal already fetched.
		{"stale redelivered copy skips after the success", nil, []Attempt{{Status: StatusDone, Attempt: 1, At: at(1)}, {Status: StatusSkipped, Attempt: 2, At: at(2)}},
			nil, StatusDone, 2, 2, ""},
		{"a skip, then done", nil, []Attempt{{Status: StatusSkipped, Attempt: 1, At: at(1)}, {Status: StatusDone, Attempt: 2, At: at(2)}},
			nil, StatusDone, 2, 2, ""},
		{"stale copy after a skip", &deliveryRow{deliveryKey: key, Status: StatusSkipped, Attempts: 1, LastAt: at(1)},
			[]Attempt{{Status: StatusError, Attempt: 2, Error: "x", At: at(2)}}, nil, StatusSkipped, 2, 1, ""},
		{"done, then dead after all", nil, []Attempt{{Status: StatusDone, Attempt: 1, At: at(1)}, {Status: StatusDead, Attempt: 4, Error: "y", At: at(4)}},
			nil, StatusDead, 4, 2, "y"},
		{"retry then dead on the same attempt", nil, []Attempt{{Status: StatusError, Attempt: 3, Error: "x", At: at(1)}, {Status: StatusDead, Attempt: 3, Error: "y", At: at(2)}},
			nil, StatusDead, 3, 2, "y"},
		{"dead is sticky", &deliveryRow{deliveryKey: key, Status: StatusDead, Attempts: 3, LastAt: at(3), DeadAt: at(3)},
			[]Attempt{{Status: StatusDone, Attempt: 4, At: at(4)}}, nil, StatusDead, 4, 1, ""},
		{"dead letter counted once", nil, nil, []DeadLetter{{Consumer: "c", Deliveries: 5, At: at(5), Reason: "max_deliveries"},
			{Consumer: "c", Deliveries: 5, At: at(5)}}, StatusDead, 5, 1, ""},
		{"pending replay gets its outcome", &deliveryRow{deliveryKey: key, Status: StatusPending},
			[]Attempt{{Status: StatusDone, Attempt: 1, At: at(1)}}, nil, StatusDone, 1, 1, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			existing := map[deliveryKey]*deliveryRow{}
			if tt.existing != nil {
				existing[key] = tt.existing
			}
			for i := range tt.attempts {
				tt.attempts[i].EventID, tt.attempts[i].Consumer = "e", "c"
			}
			for i := range tt.dead {
				tt.dead[i].Event.ID = "e"
			}
			rows, counts := fold(existing, tt.attempts, tt.dead)
			if len(rows) != 1 {
				t.Fatalf("rows = %d", len(rows))
			}
			r := rows[0]
			var n int64
			for _, v := range counts {
				n += v
			}
			if r.Status != tt.wantStatus || r.Attempts != tt.wantTries || n != tt.wantCounts || r.LastError != tt.wantErr {
				t.Errorf("got status %s attempts %d counts %d error %q", r.Status, r.Attempts, n, r.LastError)
			}
		})
	}
}
