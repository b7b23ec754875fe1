// What ingress answers: errors become HTTP answers in writeError and
// nowhere else; provider replies; the one-event answer; request ids.

package ingress

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"

	"github.com/wprelay/wprelay/relay"
	"github.com/wprelay/wprelay/relay/provider"
)

type errorBody struct {
	Error   string `json:"error"`
	Message string `json:"message"`
}

// rejection is an ingest failure with its HTTP answer.
type rejection struct {
	status     int
	code       string
	msg        string
	retryAfter string
}

func (e *rejection) Error() string { return e.code + ": " + e.msg }

func reject(status int, code, format string, args ...any) *rejection {
	return &rejection{status: status, code: code, msg: fmt.Sprintf(format, args...)}
}

// writeError is the one place where errors become HTTP answers. It returns
// the status and the error code it wrote.
func (in *Ingress) writeError(w http.ResponseWriter, err error) (int, string) {
	var rj *rejection
	switch {
	case errors.As(err, &rj):
	case errors.Is(err, relay.ErrStaleTimestamp):
		rj = reject(http.StatusUnauthorized, "stale_timestamp", "%s; check the sender's clock", err)
	case errors.Is(err, relay.ErrReplayed):
		rj = reject(http.StatusUnauthorized, "replayed", "this token was already used; sign each request with a new jti")
	case errors.Is(err, relay.ErrInvalidToken):
		rj = reject(http.StatusUnauthorized, "invalid_token", "%s", err)
	case errors.Is(err, relay.ErrBadSignature):
		rj = reject(http.StatusUnauthorized, "invalid_signature", "%s; check that the sender and this source share the secret", err)
	case errors.Is(err, relay.ErrTooDeep):
		rj = reject(http.StatusBadRequest, "too_deep", "%s", err)
	case errors.Is(err, relay.ErrInvalidJSON):
		rj = reject(http.StatusBadRequest, "invalid_json", "%s", err)
	case errors.Is(err, relay.ErrInvalidEvent):
		rj = reject(http.StatusUnprocessableEntity, "invalid_event", "%s", err)
	case errors.Is(err, relay.ErrConflict):
		rj = reject(http.StatusConflict, "idempotency_conflict", "this idempotency key was used before with a different body; use a new key for a new event")
	case errors.Is(err, relay.ErrQueueFull):
		rj = reject(http.StatusServiceUnavailable, "unavailable", "the delivery queue is full; retry later")
		rj.retryAfter = "30"
	case errors.Is(err, context.Canceled):
		rj = reject(499, "canceled", "the client went away")
	default:
		rj = reject(http.StatusServiceUnavailable, "unavailable", "the event could not be stored; retry later")
		rj.retryAfter = "5"
		in.Logger.Error("store", slog.String(relay.LogKeyError, err.Error()))
	}
	if rj.retryAfter != "" {
		w.Header().Set("Retry-After", rj.retryAfter)
	}
	writeJSON(w, rj.status, errorBody{rj.code, rj.msg})
	return rj.status, rj.code
}

// writeReply writes a provider handshake or acknowledgement.
func writeReply(w http.ResponseWriter, r *provider.Reply) {
	if r.Body == nil {
		w.WriteHeader(r.Status)
		return
	}
	writeJSON(w, r.Status, r.Body)
}

var jsonContentType = []string{"application/json"}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header()["Content-Type"] = jsonContentType
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// writeStatusID writes the answer for one event, {"id":…,"status":…}: the
// bytes writeJSON writes for it (keys sorted), without reflection, as it is
// the answer to nearly every request. id is a UUID (nothing to escape).
func writeStatusID(w http.ResponseWriter, status int, word, id string) {
	w.Header()["Content-Type"] = jsonContentType
	w.WriteHeader(status)
	b := make([]byte, 0, 32+len(word)+len(id))
	b = append(append(append(b, `{"id":"`...), id...), `","status":"`...)
	b = append(append(b, word...), "\"}\n"...)
	_, _ = w.Write(b)
}

// setRequestID keeps a sane X-Request-Id from the client, or makes one, and
// echoes it on the response.
func setRequestID(w http.ResponseWriter, r *http.Request) string {
	id := r.Header.Get("X-Request-Id")
	if !saneID(id) {
		var b [12]byte
		_, _ = rand.Read(b[:])
		id = hex.EncodeToString(b[:])
	}
	w.Header()["X-Request-Id"] = []string{id}
	return id
}

func saneID(s string) bool {
	if s == "" || len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}
