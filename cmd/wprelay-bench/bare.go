package main

import (
	"io"
	"net/http"
	"time"
)

// bareHandler is the baseline: read the body, answer 202 with a small JSON
// body — what any HTTP server must do, with nothing of wprelay's work.
func bareHandler() http.Handler {
	answer := []byte(`{"status":"queued","id":"01a2224c-0a97-7f31-8764-8d0d3da3d147"}` + "\n")
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, http.MaxBytesReader(w, r.Body, 512<<10))
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusAccepted)
		_, _ = w.Write(answer)
	})
}

func cmdBare(args []string) error {
	fs := newFlags("bare", "Serve the baseline handler (read the body, answer 202) until killed.",
		"  wprelay-bench bare -listen 127.0.0.1:18090")
	listen := fs.String("listen", "127.0.0.1:18090", "address")
	if err := fs.Parse(args); err != nil {
		return err
	}
	srv := &http.Server{Addr: *listen, Handler: bareHandler(), ReadHeaderTimeout: 5 * time.Second}
	return srv.ListenAndServe()
}
