package ingress

import (
	"mime"
	"net/http"
	"strings"

	"github.com/wprelay/wprelay/relay"
	"github.com/wprelay/wprelay/relay/provider"
)

// Default limits on what one request may hold.
const (
	DefaultMaxBatch = 100 // events per request; HubSpot sends at most 100
	DefaultMaxDepth = 128 // nested JSON arrays and objects
)

// checkJSON refuses, before it is parsed, a JSON body that parsers may read
// differently (an object that repeats a member name) or that nests deeper
// than MaxDepth. A body of another media type (a Slack form) is checked
// item by item after parsing (checkItems).
func (in *Ingress) checkJSON(contentType string, body []byte) error {
	if !isJSON(contentType) {
		return nil
	}
	return relay.CheckJSON(body, in.maxDepth())
}

// checkItems checks the JSON of each parsed item when the body was not
// JSON itself, and refuses a request with more than MaxBatch events.
func (in *Ingress) checkItems(contentType string, p *provider.Parsed) error {
	if n, limit := len(p.Items), in.maxBatch(); n > limit {
		return reject(http.StatusRequestEntityTooLarge, "payload_too_large",
			"the request holds %d events; this sidecar accepts at most %d per request (limits.max_batch)", n, limit)
	}
	if isJSON(contentType) {
		return nil
	}
	for _, it := range p.Items {
		if len(it.Body) > 0 {
			if err := relay.CheckJSON(it.Body, in.maxDepth()); err != nil {
				return err
			}
		}
	}
	return nil
}

func (in *Ingress) maxDepth() int {
	if in.MaxDepth > 0 {
		return in.MaxDepth
	}
	return DefaultMaxDepth
}

func (in *Ingress) maxBatch() int {
	if in.MaxBatch > 0 {
		return in.MaxBatch
	}
	return DefaultMaxBatch
}

// isJSON reports whether a Content-Type names JSON (application/json or a
// +json type).
func isJSON(contentType string) bool {
	mt, _, err := mime.ParseMediaType(contentType)
	return err == nil && (mt == "application/json" || strings.HasSuffix(mt, "+json"))
}
