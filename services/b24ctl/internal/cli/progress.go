package cli

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"time"
)

// progress draws a one-line progress bar on a terminal; it is a no-op when
// disabled, so output piped to a file stays clean.
type progress struct {
	w       io.Writer
	on      bool
	total   int64
	label   string
	mu      sync.Mutex
	last    time.Time
	started time.Time
}

// progress returns a bar on stderr, drawn when stderr is a terminal (or
// Env.Progress is set).
func (a *app) progress(label string, total int64) *progress {
	on := a.env.Progress || isTerminal(a.env.Stderr)
	return &progress{w: a.env.Stderr, on: on, total: total, label: label, started: time.Now()}
}

// set draws done/total at most 10 times a second.
func (p *progress) set(done int64, extra string) {
	if !p.on {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if time.Since(p.last) < 100*time.Millisecond && done < p.total {
		return
	}
	p.last = time.Now()
	const width = 30
	frac := 0.0
	if p.total > 0 {
		frac = min(float64(done)/float64(p.total), 1)
	}
	n := int(frac * width)
	fmt.Fprintf(p.w, "\r%s [%s%s] %3.0f%% %s", p.label, strings.Repeat("#", n), strings.Repeat("-", width-n), frac*100, extra)
}

// done ends the bar's line.
func (p *progress) done() {
	if p.on {
		fmt.Fprintln(p.w)
	}
}
