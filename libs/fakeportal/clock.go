package fakeportal

import "time"

// Clock is the portal's source of time: bucket draining, token expiry,
// DATE_MODIFY, ts. Benchmarks share a virtual clock with the client.
type Clock interface {
	Now() time.Time
}

type wallClock struct{}

func (wallClock) Now() time.Time { return time.Now() }
