package api

import (
	"net/http"
	"time"

	"github.com/b24hub/b24hub/services/monitor/internal/audit"
	"github.com/labstack/echo/v4"
)

// maxAuditWindow bounds one audit: the raw stream keeps 7 days by default,
// and a longer window would only read what is already gone.
const maxAuditWindow = 31 * 24 * time.Hour

// auditRun answers GET /api/v1/audit?from=&to=&grace=: every accepted event
// of the window that is not done, skipped or dead-lettered at a consumer
// that should have seen it, with the reason (see package audit).
func (s *Server) auditRun(c echo.Context) error {
	if s.cfg.Auditor == nil {
		return echo.NewHTTPError(http.StatusServiceUnavailable, "audit is not configured on this monitor")
	}
	q := c.QueryParams()
	from, err := parseTime(q, "from")
	if err != nil {
		return err
	}
	to, err := parseTime(q, "to")
	if err != nil {
		return err
	}
	var grace time.Duration
	if v := q.Get("grace"); v != "" {
		if grace, err = time.ParseDuration(v); err != nil || grace <= 0 {
			return badRequest("grace must be a positive duration (e.g. 5m): " + v)
		}
	}
	now := s.cfg.Now()
	if to.IsZero() {
		to = now
	}
	if from.IsZero() {
		from = to.Add(-24 * time.Hour)
	}
	if !from.Before(to) {
		return badRequest("from must be before to")
	}
	if to.Sub(from) > maxAuditWindow {
		return badRequest("the window from..to must be at most 744h")
	}
	rep, err := s.cfg.Auditor.Run(c.Request().Context(), audit.Options{From: from, To: to, Grace: grace})
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, rep)
}
