package relay

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
)

// Redacted is what a credential reads wherever it would be recorded.
const Redacted = "REDACTED"

// MinSecret is the shortest secret value a Redactor replaces: shorter ones
// are not credentials, and replacing them would garble what is recorded.
const MinSecret = 6

// credentialNames are header name fragments (lower case) whose values are
// credentials wherever they come from: a provider's request, a target's
// answer, or a request the dispatcher makes.
var credentialNames = []string{"auth", "cookie", "signature", "hmac", "token", "secret", "api-key", "apikey", "password"}

// Redactor is wprelay's one redaction policy. It decides what is kept out
// of everything recorded (stored raw requests, recorded and previewed
// requests, attempt errors and answers, result events) and of every log
// line:
//
//   - headers whose names say they hold a credential (credentialNames),
//   - the headers named when it was made (a source's configured signature
//     header, a target's secret headers and HMAC header), and
//   - secret values (every value that came from a ${…} reference in the
//     configuration, and configured credentials) wherever they appear: in a
//     header value, a URL and its query, an error, a log attribute.
//
// A nil *Redactor applies the header names alone. Its methods are safe for
// concurrent use.
type Redactor struct {
	names  map[string]bool // canonical header names
	values []string        // longest first, each at least MinSecret bytes
}

// NewRedactor returns the policy that also redacts the headers named in
// headers and replaces values (shorter than MinSecret are ignored).
func NewRedactor(headers, values []string) *Redactor {
	return (*Redactor)(nil).With(headers, values)
}

// With returns a policy that redacts what r does, and also headers and
// values. r is not changed.
func (r *Redactor) With(headers, values []string) *Redactor {
	out := &Redactor{names: map[string]bool{}}
	if r != nil {
		for k := range r.names {
			out.names[k] = true
		}
		out.values = append(out.values, r.values...)
	}
	for _, h := range headers {
		if h != "" {
			out.names[http.CanonicalHeaderKey(h)] = true
		}
	}
	for _, v := range values {
		if len(v) >= MinSecret && !slices.Contains(out.values, v) {
			out.values = append(out.values, v)
		}
	}
	// Longest first: a secret that contains another is replaced whole.
	slices.SortStableFunc(out.values, func(a, b string) int { return len(b) - len(a) })
	return out
}

// Secret reports whether the header name holds a credential.
func (r *Redactor) Secret(name string) bool {
	if r != nil && len(r.names) > 0 && r.names[http.CanonicalHeaderKey(name)] {
		return true
	}
	for _, frag := range credentialNames {
		if containsFold(name, frag) {
			return true
		}
	}
	return false
}

// Header returns a copy of h to record: credential headers read REDACTED,
// secret values in the others are replaced. Values not changed are shared
// with h.
func (r *Redactor) Header(h map[string][]string) map[string][]string {
	out := make(map[string][]string, len(h))
	for k, vs := range h {
		if r.Secret(k) {
			out[k] = redactedValue
			continue
		}
		out[k] = vs
		if r == nil || len(r.values) == 0 {
			continue
		}
		for i, v := range vs {
			if s := r.String(v); s != v {
				if &out[k][0] == &vs[0] {
					out[k] = slices.Clone(vs)
				}
				out[k][i] = s
			}
		}
	}
	return out
}

var redactedValue = []string{Redacted}

// String returns s with every secret value replaced by REDACTED.
func (r *Redactor) String(s string) string {
	if r == nil {
		return s
	}
	for _, v := range r.values {
		if strings.Contains(s, v) {
			s = strings.ReplaceAll(s, v, Redacted)
		}
	}
	return s
}

// Empty reports whether r has no secret values to replace.
func (r *Redactor) Empty() bool { return r == nil || len(r.values) == 0 }

// Handler returns h with every log record's message and attribute values
// passed through String: what a component (or a library such as
// go-retryablehttp, which logs URLs with their query) logs cannot carry a
// secret value. It returns h itself when there is nothing to replace.
func (r *Redactor) Handler(h slog.Handler) slog.Handler {
	if r.Empty() {
		return h
	}
	return &redactHandler{r: r, h: h}
}

type redactHandler struct {
	r *Redactor
	h slog.Handler
}

func (x *redactHandler) Enabled(ctx context.Context, l slog.Level) bool { return x.h.Enabled(ctx, l) }

func (x *redactHandler) Handle(ctx context.Context, rec slog.Record) error {
	msg := x.r.String(rec.Message)
	changed := msg != rec.Message
	if !changed {
		rec.Attrs(func(a slog.Attr) bool {
			_, changed = x.r.attr(a)
			return !changed
		})
	}
	if !changed {
		return x.h.Handle(ctx, rec) // the common case: nothing to copy
	}
	out := slog.NewRecord(rec.Time, rec.Level, msg, rec.PC)
	rec.Attrs(func(a slog.Attr) bool {
		clean, _ := x.r.attr(a)
		out.AddAttrs(clean)
		return true
	})
	return x.h.Handle(ctx, out)
}

func (x *redactHandler) WithAttrs(as []slog.Attr) slog.Handler {
	clean := make([]slog.Attr, len(as))
	for i, a := range as {
		clean[i], _ = x.r.attr(a)
	}
	return &redactHandler{r: x.r, h: x.h.WithAttrs(clean)}
}

func (x *redactHandler) WithGroup(name string) slog.Handler {
	return &redactHandler{r: x.r, h: x.h.WithGroup(name)}
}

// attr returns a with its value redacted (strings, and anything printed
// as text: errors, URLs, Stringers; groups attribute by attribute) and
// whether that changed it.
func (r *Redactor) attr(a slog.Attr) (slog.Attr, bool) {
	v := a.Value.Resolve()
	switch v.Kind() {
	case slog.KindString:
		if s := r.String(v.String()); s != v.String() {
			return slog.String(a.Key, s), true
		}
	case slog.KindGroup:
		as := v.Group()
		clean := make([]slog.Attr, len(as))
		changed := false
		for i, g := range as {
			var c bool
			clean[i], c = r.attr(g)
			changed = changed || c
		}
		if changed {
			return slog.Attr{Key: a.Key, Value: slog.GroupValue(clean...)}, true
		}
	case slog.KindAny:
		var text string
		switch x := v.Any().(type) {
		case error:
			text = x.Error()
		case fmt.Stringer:
			text = x.String()
		default:
			text = fmt.Sprint(x)
		}
		if s := r.String(text); s != text {
			return slog.String(a.Key, s), true
		}
	}
	return slog.Attr{Key: a.Key, Value: v}, false
}

// LeveledLogger returns a logger of go-retryablehttp's LeveledLogger shape
// over l whose key-value pairs are redacted (that library logs a target's
// URL with its query string, and errors that repeat it).
func (r *Redactor) LeveledLogger(l *slog.Logger) *RedactedLogger {
	return &RedactedLogger{l: slog.New(r.Handler(l.Handler()))}
}

// RedactedLogger is a *slog.Logger with go-retryablehttp's LeveledLogger
// method set; every line goes through a Redactor.
type RedactedLogger struct{ l *slog.Logger }

// Error logs at error level.
func (x *RedactedLogger) Error(msg string, kv ...any) { x.l.Error(msg, kv...) }

// Info logs at info level.
func (x *RedactedLogger) Info(msg string, kv ...any) { x.l.Info(msg, kv...) }

// Debug logs at debug level.
func (x *RedactedLogger) Debug(msg string, kv ...any) { x.l.Debug(msg, kv...) }

// Warn logs at warning level.
func (x *RedactedLogger) Warn(msg string, kv ...any) { x.l.Warn(msg, kv...) }

// containsFold reports whether s contains lower, an ASCII lower-case
// string, ignoring ASCII case.
func containsFold(s, lower string) bool {
	for i := 0; i+len(lower) <= len(s); i++ {
		j := 0
		for ; j < len(lower); j++ {
			c := s[i+j]
			if 'A' <= c && c <= 'Z' {
				c += 'a' - 'A'
			}
			if c != lower[j] {
				break
			}
		}
		if j == len(lower) {
			return true
		}
	}
	return false
}
