package alert

import (
	"fmt"
	"strings"
	"time"
)

// Calendar is a business-hours calendar: open on some weekdays between two
// wall-clock times in one time zone, closed on holidays. A window whose end
// is not after its start runs past midnight (22:00–06:00).
type Calendar struct {
	// TimeZone is an IANA zone name, e.g. "Europe/Moscow". Default "UTC".
	TimeZone string `yaml:"timezone" json:"timezone"`
	// Days are the open weekdays: mon, tue, wed, thu, fri, sat, sun.
	// Default mon–fri.
	Days []string `yaml:"days" json:"days"`
	// Start and End are the opening hours, "HH:MM". Default 09:00–18:00.
	Start string `yaml:"start" json:"start"`
	End   string `yaml:"end" json:"end"`
	// Holidays are closed dates, "YYYY-MM-DD", in TimeZone.
	Holidays []string `yaml:"holidays" json:"holidays,omitempty"`

	loc        *time.Location
	open       [7]bool
	start, end time.Duration // since local midnight
	holidays   map[string]bool
}

var weekdays = map[string]time.Weekday{
	"sun": time.Sunday, "mon": time.Monday, "tue": time.Tuesday, "wed": time.Wednesday,
	"thu": time.Thursday, "fri": time.Friday, "sat": time.Saturday,
}

func parseClock(s string) (time.Duration, error) {
	t, err := time.Parse("15:04", s)
	if err != nil {
		return 0, fmt.Errorf("time %q is not HH:MM", s)
	}
	return time.Duration(t.Hour())*time.Hour + time.Duration(t.Minute())*time.Minute, nil
}

// compile validates c and fills its defaults.
func (c *Calendar) compile() error {
	if c.TimeZone == "" {
		c.TimeZone = "UTC"
	}
	loc, err := time.LoadLocation(c.TimeZone)
	if err != nil {
		return fmt.Errorf("time zone %q: %w", c.TimeZone, err)
	}
	c.loc = loc
	if len(c.Days) == 0 {
		c.Days = []string{"mon", "tue", "wed", "thu", "fri"}
	}
	c.open = [7]bool{}
	for _, d := range c.Days {
		wd, ok := weekdays[strings.ToLower(strings.TrimSpace(d))]
		if !ok {
			return fmt.Errorf("day %q is not one of mon..sun", d)
		}
		c.open[wd] = true
	}
	if c.Start == "" {
		c.Start = "09:00"
	}
	if c.End == "" {
		c.End = "18:00"
	}
	if c.start, err = parseClock(c.Start); err != nil {
		return err
	}
	if c.end, err = parseClock(c.End); err != nil {
		return err
	}
	c.holidays = map[string]bool{}
	for _, h := range c.Holidays {
		if _, err := time.Parse(time.DateOnly, h); err != nil {
			return fmt.Errorf("holiday %q is not YYYY-MM-DD", h)
		}
		c.holidays[h] = true
	}
	return nil
}

// window returns the open interval that starts on the local day of day, if
// that day is open.
func (c *Calendar) window(day time.Time) (time.Time, time.Time, bool) {
	if !c.open[day.Weekday()] || c.holidays[day.Format(time.DateOnly)] {
		return time.Time{}, time.Time{}, false
	}
	y, m, d := day.Date()
	clock := func(off time.Duration, plusDays int) time.Time {
		return time.Date(y, m, d+plusDays, int(off/time.Hour), int(off%time.Hour/time.Minute), 0, 0, c.loc)
	}
	lo := clock(c.start, 0)
	hi := clock(c.end, 0)
	if c.end <= c.start {
		hi = clock(c.end, 1)
	}
	return lo, hi, true
}

// IsOpen reports whether t falls in business hours. A nil calendar is
// always open.
func (c *Calendar) IsOpen(t time.Time) bool {
	if c == nil {
		return true
	}
	local := t.In(c.loc)
	for _, day := range []time.Time{local.AddDate(0, 0, -1), local} {
		if lo, hi, ok := c.window(day); ok && !t.Before(lo) && t.Before(hi) {
			return true
		}
	}
	return false
}

// maxCalendarDays bounds BusinessDuration's walk; quiet periods longer than
// this are counted as wall-clock time.
const maxCalendarDays = 400

// BusinessDuration returns how much of [from, to) falls in business hours.
// A nil calendar counts every hour.
func (c *Calendar) BusinessDuration(from, to time.Time) time.Duration {
	if !to.After(from) {
		return 0
	}
	if c == nil || to.Sub(from) > maxCalendarDays*24*time.Hour {
		return to.Sub(from)
	}
	var total time.Duration
	lf := from.In(c.loc)
	day := time.Date(lf.Year(), lf.Month(), lf.Day()-1, 12, 0, 0, 0, c.loc)
	for !day.After(to.In(c.loc).AddDate(0, 0, 1)) {
		if lo, hi, ok := c.window(day); ok {
			lo, hi = later(lo, from), earlier(hi, to)
			if hi.After(lo) {
				total += hi.Sub(lo)
			}
		}
		day = day.AddDate(0, 0, 1)
	}
	return total
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func earlier(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}
