// Package logctx carries log attributes (request, session, thread and
// container ids) in a context, so that every line logged with that context
// has them without each call site repeating them.
package logctx

import (
	"context"
	"io"
	"log/slog"
)

type key struct{}

// With returns a context whose log lines carry attrs in addition to those
// ctx already carries.
func With(ctx context.Context, attrs ...slog.Attr) context.Context {
	old, _ := ctx.Value(key{}).([]slog.Attr)
	merged := make([]slog.Attr, 0, len(old)+len(attrs))
	merged = append(append(merged, old...), attrs...)
	return context.WithValue(ctx, key{}, merged)
}

// Handler adds the context's attributes to every record before passing it
// on.
type Handler struct{ slog.Handler }

func (h Handler) Handle(ctx context.Context, r slog.Record) error {
	if attrs, ok := ctx.Value(key{}).([]slog.Attr); ok {
		r = r.Clone()
		r.AddAttrs(attrs...)
	}
	return h.Handler.Handle(ctx, r)
}

func (h Handler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return Handler{h.Handler.WithAttrs(attrs)}
}

func (h Handler) WithGroup(name string) slog.Handler { return Handler{h.Handler.WithGroup(name)} }

// New returns a logger writing JSON (or text) lines to w at level, with the
// context's attributes on every line.
func New(w io.Writer, format string, level slog.Leveler) *slog.Logger {
	opts := &slog.HandlerOptions{Level: level}
	var h slog.Handler = slog.NewJSONHandler(w, opts)
	if format == "text" {
		h = slog.NewTextHandler(w, opts)
	}
	return slog.New(Handler{h})
}
