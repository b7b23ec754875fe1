package admin

import (
	"bufio"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/julienschmidt/httprouter"

	"github.com/wprelay/wprelay/relay"
)

// backupStall is how long the client may stop reading before the copy is
// abandoned: the read transaction it holds must not stay open for a
// client that went away (see store.DB.Backup's caveats).
const backupStall = 30 * time.Second

// backup serves GET /admin/v1/backup: the store file as one read
// transaction sees it, with its exact Content-Length (a shorter body means
// the copy failed). "wprelay backup FILE" calls it.
func (a *API) backup(w http.ResponseWriter, r *http.Request, _ httprouter.Params) {
	b := a.Backup
	if b == nil {
		writeError(w, http.StatusNotImplemented, "not_enabled", "this store cannot be copied through the admin API; back up its database with its own tools")
		return
	}
	start := a.Now()
	rc := http.NewResponseController(w)
	// The listener's write timeout bounds the whole answer; a large file
	// needs longer, so the deadline moves with each write instead.
	out := bufio.NewWriterSize(&stallWriter{w: w, rc: rc, stall: backupStall}, 256<<10)
	headerSent := false
	n, err := b.Backup(out, func(size int64) error {
		h := w.Header()
		h.Set("Content-Type", "application/octet-stream")
		h.Set("Content-Length", strconv.FormatInt(size, 10))
		h.Set("Content-Disposition", `attachment; filename="wprelay-`+start.UTC().Format("20060102T150405Z")+`.db"`)
		h.Set("Cache-Control", "no-store")
		h.Set("X-Content-Type-Options", "nosniff")
		w.WriteHeader(http.StatusOK)
		headerSent = true
		return nil
	})
	if err == nil {
		err = out.Flush()
	}
	took := a.Now().Sub(start)
	if err != nil {
		if !headerSent {
			a.fail(w, err)
			return
		}
		// The status is sent: the client sees fewer bytes than
		// Content-Length and discards the copy.
		a.Logger.Warn("backup abandoned", slog.Int64(relay.LogKeyBytes, n), slog.Float64(relay.LogKeyDuration, float64(took.Microseconds())/1000), slog.String(relay.LogKeyError, err.Error()))
		return
	}
	a.Logger.Info("backup", slog.Int64(relay.LogKeyBytes, n), slog.Float64(relay.LogKeyDuration, float64(took.Microseconds())/1000))
}

// stallWriter pushes the connection's write deadline forward before each
// write, so a copy may take as long as it needs while a client that stops
// reading is cut off after stall.
type stallWriter struct {
	w     io.Writer
	rc    *http.ResponseController
	stall time.Duration
}

func (s *stallWriter) Write(p []byte) (int, error) {
	_ = s.rc.SetWriteDeadline(time.Now().Add(s.stall))
	return s.w.Write(p)
}
