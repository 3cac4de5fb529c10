package keyrate_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/b24hub/b24hub/libs/svcmain/keyrate"
)

func TestLimiter(t *testing.T) {
	l := keyrate.New(time.Hour, 3, 2)
	for i := range 3 {
		if !l.Allow("a") {
			t.Fatalf("a's attempt %d refused within the burst", i)
		}
	}
	if l.Allow("a") || !l.Exhausted("a") {
		t.Fatal("a not limited past its burst")
	}
	if l.Exhausted("b") || !l.Allow("b") {
		t.Fatal("b limited by a's attempts")
	}
	// Only two keys are remembered: a third pushes the oldest out.
	for i := range 10 {
		l.Allow(fmt.Sprint("k", i))
	}
	if l.Exhausted("a") {
		t.Fatal("a forgotten key kept its empty bucket")
	}
}

func ExampleLimiter() {
	failures := keyrate.New(12*time.Second, 5, 10_000)
	if failures.Exhausted("203.0.113.7") {
		fmt.Println("429")
		return
	}
	// ... a failed sign-in spends one:
	failures.Allow("203.0.113.7")
	fmt.Println("ok")
	// Output: ok
}
