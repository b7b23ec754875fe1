// Reading a request: its body within the limit, its media type, the URL
// the provider called.

package ingress

import (
	"errors"
	"io"
	"mime"
	"net/http"
	"strings"
)

func (in *Ingress) maxBody(src *Source) int64 {
	if src.MaxBody > 0 {
		return src.MaxBody
	}
	return in.MaxBody
}

// readBody reads at most limit bytes, failing while reading (not after) when
// the body is larger.
func readBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, error) {
	if r.ContentLength > limit {
		return nil, reject(http.StatusRequestEntityTooLarge, "payload_too_large", "the body is %d bytes; this source accepts at most %d", r.ContentLength, limit)
	}
	size := r.ContentLength
	if size < 0 || size > 64<<10 {
		size = 4 << 10
	}
	buf := make([]byte, 0, size+1)
	body := http.MaxBytesReader(w, r.Body, limit)
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := body.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err != nil {
			var tooLarge *http.MaxBytesError
			if errors.As(err, &tooLarge) {
				return nil, reject(http.StatusRequestEntityTooLarge, "payload_too_large", "the body is larger than %d bytes, the most this source accepts", limit)
			}
			if errors.Is(err, io.EOF) {
				return buf, nil
			}
			return nil, reject(http.StatusBadRequest, "bad_request", "reading the body: %v", err)
		}
	}
}

func allowedType(allowed []string, header string) bool {
	mt, _, err := mime.ParseMediaType(header)
	if err != nil {
		return false
	}
	for _, a := range allowed {
		if strings.EqualFold(a, mt) {
			return true
		}
	}
	return false
}

// publicURL is the URL the provider called: the source's public_url (plus
// "/{tenant}" when the tenant is in the path, and the query string), or the
// request's own URL.
func publicURL(src *Source, r *http.Request, tenant string) string {
	if src.PublicURL != "" {
		u := src.PublicURL
		if tenant != "" {
			u = strings.TrimRight(u, "/") + "/" + tenant
		}
		if r.URL.RawQuery != "" {
			u += "?" + r.URL.RawQuery
		}
		return u
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host + r.URL.RequestURI()
}
