package testwait_test

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/b24hub/b24hub/libs/testwait"
)

func TestForReturnsOnceTheConditionHolds(t *testing.T) {
	var n atomic.Int32
	go func() {
		for range 3 {
			n.Add(1)
		}
	}()
	testwait.For(t, "three increments", func() bool { return n.Load() == 3 })
}

func TestUntilFailsPastTheDeadline(t *testing.T) {
	calls := 0
	err := testwait.Until(time.Now().Add(30*time.Millisecond), func() bool { calls++; return false })
	if err == nil {
		t.Fatal("a condition that never holds passed")
	}
	if calls == 0 {
		t.Error("condition never tried")
	}
}

func TestUntilTriesBeforeTheDeadline(t *testing.T) {
	// A deadline already past still gives the condition one try.
	if err := testwait.Until(time.Now().Add(-time.Hour), func() bool { return true }); err != nil {
		t.Fatal(err)
	}
}
