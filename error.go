package hermes

import (
	"errors"
	"fmt"
)

// Kind classifies an error so that every layer can react to it the same
// way: the HTTP API maps kinds to statuses in one table, channels decide
// whether to retry, and only Internal and Unavailable errors are logged as
// failures of Hermes itself.
type Kind uint8

const (
	Internal      Kind = iota // a bug or an unexpected failure; details are logged, never shown
	Invalid                   // the input is malformed or breaks a rule (HTTP 400)
	Unauthorized              // no or bad credentials (HTTP 401)
	Forbidden                 // valid credentials without the needed scope (HTTP 403)
	NotFound                  // the thing does not exist, or the caller may not see it (HTTP 404)
	Conflict                  // the thing exists already, or its state forbids the change (HTTP 409)
	Unprocessable             // well-formed input that refers to things that do not fit (HTTP 422)
	TooLarge                  // the input is over a size limit (HTTP 413)
	Unavailable               // a dependency is down or overloaded; retrying later may work (HTTP 503)
)

var kindNames = [...]string{
	Internal:      "internal",
	Invalid:       "invalid",
	Unauthorized:  "unauthorized",
	Forbidden:     "forbidden",
	NotFound:      "not found",
	Conflict:      "conflict",
	Unprocessable: "unprocessable",
	TooLarge:      "too large",
	Unavailable:   "unavailable",
}

func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return fmt.Sprintf("kind(%d)", k)
}

// Error is the one error type of Hermes. Message is safe to show to the
// caller; Err carries the cause for logs. Op names the operation that failed
// ("sqlite.GetSession") and is added where errors pass through.
type Error struct {
	Op      string
	Kind    Kind
	Message string
	Err     error
}

func (e *Error) Error() string {
	var s string
	if e.Op != "" {
		s = e.Op + ": "
	}
	switch {
	case e.Message != "" && e.Err != nil && e.Message != e.Err.Error():
		return s + e.Message + ": " + e.Err.Error()
	case e.Message != "":
		return s + e.Message
	case e.Err != nil:
		return s + e.Err.Error()
	}
	return s + e.Kind.String()
}

func (e *Error) Unwrap() error { return e.Err }

// Errorf returns an *Error of the given kind whose message, safe to show to
// callers, is formatted from format and args.
func Errorf(kind Kind, format string, args ...any) error {
	return &Error{Kind: kind, Message: fmt.Sprintf(format, args...)}
}

// E wraps err with an operation name and a kind, keeping err as the cause.
// A nil err gives nil.
func E(op string, kind Kind, err error) error {
	if err == nil {
		return nil
	}
	return &Error{Op: op, Kind: kind, Err: err}
}

// ErrorKind returns the kind of the first *Error in err's chain, or Internal
// when there is none. A nil error has no kind and gives Internal too; callers
// check for nil first.
func ErrorKind(err error) Kind {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	return Internal
}

// ErrorMessage returns the first caller-safe message in err's chain. For
// Internal errors, and errors that carry no message, it returns the generic
// text of the kind, so that internal details never reach a caller.
func ErrorMessage(err error) string {
	var e *Error
	for errors.As(err, &e) {
		if e.Kind == Internal {
			break
		}
		if e.Message != "" {
			return e.Message
		}
		err = e.Err
	}
	return "an internal error occurred"
}

// IsKind reports whether err's kind is k.
func IsKind(err error, k Kind) bool { return err != nil && ErrorKind(err) == k }

// FieldError describes one invalid field of an input; Field is a JSON path
// such as "projects[0].emailAddresses[1]".
type FieldError struct {
	Field   string `json:"field"`
	Message string `json:"message"`
}

// ValidationError is an Invalid error listing every field that failed, so
// that a caller can fix them all at once.
type ValidationError struct {
	Fields []FieldError
}

func (v *ValidationError) Error() string {
	if len(v.Fields) == 0 {
		return "invalid input"
	}
	s := v.Fields[0].Field + ": " + v.Fields[0].Message
	if n := len(v.Fields) - 1; n > 0 {
		s += fmt.Sprintf(" (and %d more)", n)
	}
	return s
}

// Add records one failing field.
func (v *ValidationError) Add(field, format string, args ...any) {
	v.Fields = append(v.Fields, FieldError{Field: field, Message: fmt.Sprintf(format, args...)})
}

// Err returns an Invalid *Error wrapping v when a field failed, else nil.
func (v *ValidationError) Err() error {
	if len(v.Fields) == 0 {
		return nil
	}
	return &Error{Kind: Invalid, Message: v.Error(), Err: v}
}
