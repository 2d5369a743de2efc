package sqlite

import (
	"strconv"
	"strings"
	"time"

	"github.com/webordinary/hermes"
)

// norm is the form every stored time takes: UTC, whole milliseconds.
func norm(t time.Time) time.Time { return t.UTC().Truncate(time.Millisecond) }

func normSession(s *hermes.Session) {
	s.CreatedAt, s.LastActivity, s.ExpiresAt = norm(s.CreatedAt), norm(s.LastActivity), norm(s.ExpiresAt)
	if s.LastResult != nil {
		r := *s.LastResult
		r.FinishedAt = norm(r.FinishedAt)
		s.LastResult = &r
	}
}

func quote(s string) string { return strconv.Quote(s) }

func lower(s string) string { return strings.ToLower(s) }
