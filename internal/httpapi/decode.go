package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"reflect"
	"strings"
	"unicode/utf8"

	"github.com/webordinary/hermes"
)

// Body size limits.
const (
	maxBodyBytes      = 64 << 10 // API requests
	maxAdminBodyBytes = 1 << 20  // a client with its projects and users
)

// decodeJSON reads one JSON object from r's body into dst: the content type
// must be JSON, the body at most limit bytes, every field known and of the
// right type, nothing after the object. Errors are Invalid (400), TooLarge
// (413) or 415, each naming what was wrong.
func decodeJSON(w http.ResponseWriter, r *http.Request, dst any, limit int64) error {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || (mt != "application/json" && !strings.HasSuffix(mt, "+json")) {
			return &httpError{status: http.StatusUnsupportedMediaType, msg: "Content-Type must be application/json"}
		}
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		return jsonError(err)
	}
	// encoding/json would quietly turn invalid bytes into U+FFFD: refuse them.
	if !utf8.Valid(body) {
		return hermes.Errorf(hermes.Invalid, "the body is not valid UTF-8")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		return jsonError(err)
	}
	if err := dec.Decode(&struct{}{}); !errors.Is(err, io.EOF) {
		return hermes.Errorf(hermes.Invalid, "the body must hold a single JSON object")
	}
	return nil
}

func jsonError(err error) error {
	var (
		syn *json.SyntaxError
		typ *json.UnmarshalTypeError
		mbe *http.MaxBytesError
		v   hermes.ValidationError
	)
	switch {
	case errors.As(err, &mbe):
		return hermes.Errorf(hermes.TooLarge, "the body is larger than %d bytes", mbe.Limit)
	case errors.Is(err, io.EOF):
		return hermes.Errorf(hermes.Invalid, "the body is empty; a JSON object is required")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return hermes.Errorf(hermes.Invalid, "malformed JSON: the body ends too early")
	case errors.As(err, &syn):
		return hermes.Errorf(hermes.Invalid, "malformed JSON at byte %d: %s", syn.Offset, syn.Error())
	case errors.As(err, &typ):
		field := typ.Field
		if field == "" {
			v.Add("(body)", "must be %s, not %s", jsonType(typ.Type), typ.Value)
		} else {
			v.Add(field, "must be %s, not %s", jsonType(typ.Type), typ.Value)
		}
		return v.Err()
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		name := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
		v.Add(name, "is not a known field")
		return v.Err()
	}
	return &hermes.Error{Kind: hermes.Invalid, Message: "malformed JSON", Err: err}
}

// jsonType names the JSON type a Go type decodes from.
func jsonType(t reflect.Type) string {
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "a boolean"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "an integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Slice, reflect.Array:
		return "an array"
	case reflect.Map, reflect.Struct:
		return "an object"
	case reflect.Pointer:
		return jsonType(t.Elem())
	}
	return fmt.Sprintf("a %s", t.Kind())
}
