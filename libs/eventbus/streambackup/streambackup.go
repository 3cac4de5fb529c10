// Package streambackup takes a JetStream stream's snapshot to a directory
// and restores it, through the server's own snapshot and restore API
// ($JS.API.STREAM.SNAPSHOT and $JS.API.STREAM.RESTORE, what `nats stream
// backup` and `nats stream restore` use). A snapshot holds every message
// with its sequence, subject, headers and data, and the durable consumers
// with their delivered and acknowledged positions; a key-value bucket is
// the stream KV_<bucket> and is backed up the same way.
//
// A backup of one stream is a directory:
//
//	<dir>/backup.json     the stream's configuration and state when the snapshot was taken
//	<dir>/stream.tar.s2   the server's snapshot (an s2-compressed tar of the stream's store)
package streambackup

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/nats-io/nats.go"
)

// File names inside a stream's backup directory.
const (
	MetaFile     = "backup.json"
	SnapshotFile = "stream.tar.s2"
)

// chunkSize is the size of the chunks a restore sends (the server's
// snapshot default too).
const chunkSize = 128 << 10

// idle is how long a snapshot may go without a chunk before it is given up.
const idle = 30 * time.Second

// Meta is backup.json: the stream's configuration and state as the server
// reported them, kept as JSON so a restore sends them back unchanged.
type Meta struct {
	Config json.RawMessage `json:"config"`
	State  json.RawMessage `json:"state"`
}

// State is the part of a stream's state a backup reports.
type State struct {
	Messages  uint64 `json:"messages"`
	Bytes     uint64 `json:"bytes"`
	FirstSeq  uint64 `json:"first_seq"`
	LastSeq   uint64 `json:"last_seq"`
	Consumers int    `json:"consumer_count"`
}

// Summary decodes the state recorded in m.
func (m Meta) Summary() (State, error) {
	var s State
	err := json.Unmarshal(m.State, &s)
	return s, err
}

type apiError struct {
	Code        int    `json:"code"`
	ErrCode     int    `json:"err_code"`
	Description string `json:"description"`
}

func (e *apiError) Error() string {
	return fmt.Sprintf("%s (code %d, error %d)", e.Description, e.Code, e.ErrCode)
}

// Backup snapshots stream (its consumers too) into dir, which it creates;
// it fails if dir already holds a backup. It returns the stream's
// configuration and state at the snapshot. Errors: the server's API error
// (no such stream, not permitted), a snapshot the server ended with an
// error status, no chunk for 30 s, ctx done, or the files not written.
func Backup(ctx context.Context, nc *nats.Conn, stream, dir string) (Meta, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return Meta{}, err
	}
	f, err := os.OpenFile(filepath.Join(dir, SnapshotFile), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return Meta{}, fmt.Errorf("streambackup: %w", err)
	}
	defer f.Close()
	inbox := nc.NewInbox()
	sub, err := nc.SubscribeSync(inbox)
	if err != nil {
		return Meta{}, err
	}
	defer sub.Unsubscribe()
	// Chunks arrive as fast as the window allows; no limit on the
	// subscription's buffer drops them.
	_ = sub.SetPendingLimits(-1, -1)
	req, _ := json.Marshal(map[string]any{"deliver_subject": inbox, "chunk_size": chunkSize})
	var resp struct {
		Meta
		Error *apiError `json:"error"`
	}
	if err := request(ctx, nc, "$JS.API.STREAM.SNAPSHOT."+stream, req, &resp); err != nil {
		return Meta{}, fmt.Errorf("streambackup: snapshot %s: %w", stream, err)
	}
	if resp.Error != nil {
		return Meta{}, fmt.Errorf("streambackup: snapshot %s: %w", stream, resp.Error)
	}
	w := bufio.NewWriterSize(f, chunkSize)
	for {
		mctx, cancel := context.WithTimeout(ctx, idle)
		m, err := sub.NextMsgWithContext(mctx)
		cancel()
		if err != nil {
			return Meta{}, fmt.Errorf("streambackup: snapshot %s: waiting for a chunk: %w", stream, err)
		}
		if len(m.Data) == 0 {
			// The end: status 204 (or none, for a snapshot of one chunk),
			// else the server's error.
			if st := m.Header.Get("Status"); st != "" && st != "204" {
				return Meta{}, fmt.Errorf("streambackup: snapshot %s: server ended it with %s %s", stream, st, m.Header.Get("Description"))
			}
			break
		}
		if _, err := w.Write(m.Data); err != nil {
			return Meta{}, err
		}
		// The reply subject is the flow control: the server keeps a window
		// of unacknowledged chunks.
		if m.Reply != "" {
			if err := nc.Publish(m.Reply, nil); err != nil {
				return Meta{}, err
			}
		}
	}
	if err := w.Flush(); err != nil {
		return Meta{}, err
	}
	if err := f.Sync(); err != nil {
		return Meta{}, err
	}
	meta, _ := json.MarshalIndent(resp.Meta, "", "  ")
	if err := os.WriteFile(filepath.Join(dir, MetaFile), meta, 0o600); err != nil {
		return Meta{}, err
	}
	return resp.Meta, f.Close()
}

// Restore creates stream from the backup in dir, with the configuration,
// messages and consumers it holds. The stream must not exist: a restore
// never overwrites one (delete it first, deliberately). Errors: a missing
// or unreadable backup, the server's API error (stream exists, not
// permitted, no space), or ctx done.
func Restore(ctx context.Context, nc *nats.Conn, stream, dir string) (Meta, error) {
	b, err := os.ReadFile(filepath.Join(dir, MetaFile))
	if err != nil {
		return Meta{}, fmt.Errorf("streambackup: %w", err)
	}
	var meta Meta
	if err := json.Unmarshal(b, &meta); err != nil {
		return Meta{}, fmt.Errorf("streambackup: %s: %w", MetaFile, err)
	}
	f, err := os.Open(filepath.Join(dir, SnapshotFile))
	if err != nil {
		return Meta{}, fmt.Errorf("streambackup: %w", err)
	}
	defer f.Close()
	var start struct {
		DeliverSubject string    `json:"deliver_subject"`
		Error          *apiError `json:"error"`
	}
	if err := request(ctx, nc, "$JS.API.STREAM.RESTORE."+stream, b, &start); err != nil {
		return Meta{}, fmt.Errorf("streambackup: restore %s: %w", stream, err)
	}
	if start.Error != nil {
		return Meta{}, fmt.Errorf("streambackup: restore %s: %w", stream, start.Error)
	}
	buf := make([]byte, chunkSize)
	for {
		n, err := io.ReadFull(f, buf)
		if n > 0 {
			// Each chunk is acknowledged; an answer with a body is the
			// server giving up on the restore.
			var ack struct {
				Error *apiError `json:"error"`
			}
			if err := request(ctx, nc, start.DeliverSubject, buf[:n], &ack); err != nil {
				return Meta{}, fmt.Errorf("streambackup: restore %s: %w", stream, err)
			}
			if ack.Error != nil {
				return Meta{}, fmt.Errorf("streambackup: restore %s: %w", stream, ack.Error)
			}
		}
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			break
		}
		if err != nil {
			return Meta{}, err
		}
	}
	// An empty chunk ends it; the answer is the restored stream (or why not).
	var done struct {
		Error *apiError `json:"error"`
	}
	if err := request(ctx, nc, start.DeliverSubject, nil, &done); err != nil {
		return Meta{}, fmt.Errorf("streambackup: restore %s: %w", stream, err)
	}
	if done.Error != nil {
		return Meta{}, fmt.Errorf("streambackup: restore %s: %w", stream, done.Error)
	}
	return meta, nil
}

// request sends a JetStream API request and decodes a non-empty answer
// into v; an empty answer (a chunk's acknowledgement) leaves v as it is.
func request(ctx context.Context, nc *nats.Conn, subject string, body []byte, v any) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, idle)
		defer cancel()
	}
	m, err := nc.RequestWithContext(ctx, subject, body)
	if err != nil {
		return err
	}
	if len(m.Data) == 0 {
		return nil
	}
	return json.Unmarshal(m.Data, v)
}
