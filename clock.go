package hermes

import "time"

// Clock returns the current time. Services take one so that leases and
// timeouts are tested without sleeping; production passes time.Now.
type Clock func() time.Time

// Now returns the clock's time truncated to the millisecond precision every
// store keeps, so that a value read back equals the value written.
func (c Clock) Now() time.Time {
	if c == nil {
		return time.Now().UTC().Truncate(time.Millisecond)
	}
	return c().UTC().Truncate(time.Millisecond)
}
