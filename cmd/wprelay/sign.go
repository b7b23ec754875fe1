package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/wprelay/wprelay/relay/provider"
)

// Environment variables the sign command reads its secrets from, so that
// they need not be typed on a command line (and kept in shell history).
const (
	envSignSecret    = "WPRELAY_SIGN_SECRET"
	envSignJWTSecret = "WPRELAY_SIGN_JWT_SECRET"
)

const signSynopsis = `Sign a body as a provider of --kind would, with --secret, then print the
headers ("Header: value" lines), print a curl command (--curl), or send the
request (--send URL) and print the answer. Without --file, the body is a
sample event of the kind with fresh ids, so each run is a new event.

Kinds: ` + "stripe, github, shopify, slack, hubspot, woocommerce, standard, hmac, wordpress" + `.
The secret is the one the source is configured with (standard and wordpress:
whsec_…; wordpress also needs --issuer and --jwt-secret for its bearer token).
hubspot signs the URL it calls: --public-url, else the URL sent to.

Secrets may come from the environment instead of flags (they then stay out of
shell history): ` + envSignSecret + ` for --secret, ` + envSignJWTSecret + ` for --jwt-secret.`

const signExample = `  # a first Stripe event through a local sidecar (source "stripe"):
  export WPRELAY_SIGN_SECRET=whsec_...           # the source's secret
  wprelay sign --kind stripe --send http://127.0.0.1:8080/hooks/stripe

  # the headers GitHub would send with a file, then the same with curl:
  export WPRELAY_SIGN_SECRET="$GH_SECRET"
  wprelay sign --kind github --type push --file push.json
  wprelay sign --kind github --type push --file push.json --curl --url https://hooks.example.com/hooks/gh | sh

  # a Shopify webhook sent twice with one webhook id (the second is a duplicate):
  wprelay sign --kind shopify --file order.json --header 'X-Shopify-Webhook-Id: w-1' --send "$URL"

  # WordPress (JWT + Standard Webhooks), sent twice with one id (the second is a duplicate):
  export WPRELAY_SIGN_SECRET=whsec_... WPRELAY_SIGN_JWT_SECRET=...
  wprelay sign --kind wordpress --issuer https://example.com --header 'webhook-id: post-42-v1' --send http://127.0.0.1:8080/hooks/site

  # HubSpot, the WooCommerce ping:
  wprelay sign --kind hubspot --public-url https://hooks.example.com/hooks/hubspot --send http://127.0.0.1:8080/hooks/hubspot
  wprelay sign --kind woocommerce --ping --send http://127.0.0.1:8080/hooks/shop`

// headerFlags collects repeated --header "Name: value" flags.
type headerFlags []string

func (h *headerFlags) String() string     { return strings.Join(*h, ", ") }
func (h *headerFlags) Set(v string) error { *h = append(*h, v); return nil }

func cmdSign(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("sign", signSynopsis, signExample, stderr)
	kind := fs.String("kind", "", "the provider to imitate (required): "+strings.Join(provider.Kinds(), ", "))
	secret := fs.String("secret", "", "the signing secret (or env "+envSignSecret+")")
	file := fs.String("file", "", `the body: a file, or "-" for stdin (default: a sample event of the kind)`)
	typ := fs.String("type", "", "the event type, for kinds that send it in a header: github event, shopify or woocommerce topic (default: the sample's)")
	send := fs.String("send", "", "POST the signed request to this URL and print the answer")
	tenant := fs.String("tenant", "", "a tenant of the source: appended to the --send or --url URL as /TENANT")
	curl := fs.Bool("curl", false, "print a curl command instead of the headers")
	curlURL := fs.String("url", "", `the URL of the --curl command (default http://127.0.0.1:8080/hooks/KIND)`)
	publicURL := fs.String("public-url", "", "hubspot: the URL HubSpot signs, the source's public_url (default: the URL sent to)")
	issuer := fs.String("issuer", "", "wordpress: the site URL the plugin puts in iss (the source's issuer)")
	jwtSecret := fs.String("jwt-secret", "", "wordpress: the site's JWT secret, HS256 (or env "+envSignJWTSecret+")")
	ping := fs.Bool("ping", false, "woocommerce: the unsigned webhook_id=<n> ping instead of an event")
	var extra headerFlags
	fs.Var(&extra, "header", `an extra header "Name: value", e.g. a fixed id (repeatable); kept as given.`+
		"\nwordpress: 'webhook-id: ID' also sets the sample's idempotency_key, which must equal it")
	var h provider.HMACOptions
	fs.StringVar(&h.Header, "hmac-header", "", "hmac: the signature header")
	fs.StringVar(&h.Prefix, "hmac-prefix", "", `hmac: the signature's prefix, e.g. "sha256="`)
	fs.StringVar(&h.Encoding, "hmac-encoding", "", "hmac: hex (default) or base64")
	fs.StringVar(&h.Template, "hmac-template", "", "hmac: the signed bytes, e.g. {timestamp}.{body} (default {body})")
	fs.StringVar(&h.TimestampHeader, "hmac-timestamp-header", "", "hmac: the timestamp header")
	fs.StringVar(&h.NonceHeader, "hmac-nonce-header", "", "hmac: the nonce header")
	fs.StringVar(&h.IDHeader, "hmac-id-header", "", "hmac: the event id header")
	if err := parseFlagsOnly(fs, args); err != nil {
		return err
	}
	if *kind == "" {
		return usageError{errors.New("--kind is required (" + strings.Join(provider.Kinds(), ", ") + ")")}
	}
	if *send != "" && *curl {
		return usageError{errors.New("--send and --curl: choose one")}
	}
	if *ping && *kind != "woocommerce" {
		return usageError{errors.New("--ping is for --kind woocommerce")}
	}
	dest := *send
	if dest == "" {
		dest = *curlURL
	}
	if dest == "" {
		dest = "http://127.0.0.1:8080/hooks/" + *kind
	}
	if *tenant != "" {
		dest = strings.TrimSuffix(dest, "/") + "/" + *tenant
	}

	now := time.Now()
	id := uuid.NewString()
	if *kind == "wordpress" {
		// The plugin's webhook-id is its body's idempotency_key: a fixed
		// id is both, or the sidecar refuses the event (422).
		if v, ok := headerValue(extra, "webhook-id"); ok {
			id = v
		}
	}
	body, sampleType, err := signBody(*kind, *file, *ping, now, id)
	if err != nil {
		return err
	}
	req := &provider.Request{Method: http.MethodPost, URL: first(*publicURL, dest), Header: http.Header{}, Body: body, Now: now}
	req.Header.Set("Content-Type", mediaType(body))
	for _, line := range extra {
		name, value, ok := strings.Cut(line, ":")
		if !ok || strings.TrimSpace(name) == "" {
			return usageError{fmt.Errorf(`--header %q: want "Name: value"`, line)}
		}
		req.Header.Set(strings.TrimSpace(name), strings.TrimSpace(value))
	}
	if !*ping {
		if err := signRequest(req, *kind, first(*secret, os.Getenv(envSignSecret)), first(*typ, sampleType), provider.Options{
			Kind: *kind, PublicURL: req.URL, Issuer: *issuer, JWTSecret: first(*jwtSecret, os.Getenv(envSignJWTSecret)), HMAC: h,
		}); err != nil {
			return err
		}
	}

	switch {
	case *send != "":
		return sendSigned(stdout, dest, req)
	case *curl:
		fmt.Fprintln(stdout, curlCommand(dest, req.Header, body, *file))
	default:
		for _, name := range sortedKeys(req.Header) {
			for _, v := range req.Header[name] {
				fmt.Fprintf(stdout, "%s: %s\n", name, v)
			}
		}
	}
	return nil
}

// signRequest signs req with the verifier of o for secret.
func signRequest(req *provider.Request, kind, secret, typ string, o provider.Options) error {
	if secret == "" {
		return usageError{fmt.Errorf("--secret is required (or set %s)", envSignSecret)}
	}
	v, err := provider.New(o)
	if err != nil {
		return usageError{err}
	}
	key, err := v.Key(secret)
	if err != nil {
		return usageError{fmt.Errorf("--secret: %w", err)}
	}
	s, ok := v.(provider.Signer)
	if !ok {
		return usageError{fmt.Errorf("kind %s cannot sign", kind)}
	}
	if err := s.Sign(req, key, typ); err != nil {
		return usageError{err}
	}
	return nil
}

// headerValue returns the value of the --header named name.
func headerValue(headers []string, name string) (string, bool) {
	for _, line := range headers {
		if n, v, ok := strings.Cut(line, ":"); ok && strings.EqualFold(strings.TrimSpace(n), name) {
			return strings.TrimSpace(v), true
		}
	}
	return "", false
}

// signBody returns the body to sign (the file, stdin, the WooCommerce ping
// or a sample of the kind, its ids made from id) and the sample's event type.
func signBody(kind, file string, ping bool, now time.Time, id string) ([]byte, string, error) {
	switch {
	case ping:
		return []byte("webhook_id=1"), "", nil
	case file == "-":
		b, err := io.ReadAll(os.Stdin)
		return b, sampleTypes[kind], err
	case file != "":
		b, err := os.ReadFile(file)
		if err != nil {
			return nil, "", usageError{err}
		}
		return b, sampleTypes[kind], nil
	}
	mk, ok := samples[kind]
	if !ok {
		return nil, "", usageError{fmt.Errorf("unknown kind %q (known: %s)", kind, strings.Join(provider.Kinds(), ", "))}
	}
	b, err := json.Marshal(mk(now, id))
	return b, sampleTypes[kind], err
}

// mediaType is JSON for a body that looks like JSON, else a form (Slack's
// interactivity and slash commands, the WooCommerce ping).
func mediaType(body []byte) string {
	if b := bytes.TrimSpace(body); len(b) > 0 && (b[0] == '{' || b[0] == '[') {
		return "application/json"
	}
	return "application/x-www-form-urlencoded"
}

// sendSigned POSTs the signed request to dest and prints the status and
// the answer; an answer of 300 or more is an error (exit 1).
func sendSigned(stdout io.Writer, dest string, req *provider.Request) error {
	hr, err := http.NewRequest(http.MethodPost, dest, bytes.NewReader(req.Body))
	if err != nil {
		return usageError{fmt.Errorf("--send: %w", err)}
	}
	hr.Header = req.Header
	hr.Header.Set("User-Agent", "wprelay-sign/"+version)
	client := &http.Client{Timeout: 30 * time.Second}
	resp, err := client.Do(hr)
	if err != nil {
		return fmt.Errorf("send: %w", err)
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("read the answer: %w", err)
	}
	fmt.Fprintf(stdout, "%s %s\n", resp.Proto, resp.Status)
	if len(answer) > 0 {
		fmt.Fprintf(stdout, "%s\n", bytes.TrimRight(answer, "\n"))
	}
	if resp.StatusCode >= 300 {
		return fmt.Errorf("%s answered %s", dest, resp.Status)
	}
	return nil
}

// curlCommand returns a shell command that sends the signed request.
func curlCommand(dest string, h http.Header, body []byte, file string) string {
	var b strings.Builder
	b.WriteString("curl -sS -X POST " + shellQuote(dest))
	for _, name := range sortedKeys(h) {
		for _, v := range h[name] {
			b.WriteString(" \\\n  -H " + shellQuote(name+": "+v))
		}
	}
	if file != "" && file != "-" {
		b.WriteString(" \\\n  --data-binary " + shellQuote("@"+file))
	} else {
		b.WriteString(" \\\n  --data-binary " + shellQuote(string(body)))
	}
	return b.String()
}

// shellQuote quotes s for a POSIX shell.
func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

func sortedKeys(h http.Header) []string {
	keys := make([]string, 0, len(h))
	for k := range h {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// first returns the first of ss that is not empty.
func first(ss ...string) string {
	for _, s := range ss {
		if s != "" {
			return s
		}
	}
	return ""
}

// sampleTypes are the event types of the samples, for the kinds that send
// the type in a header.
var sampleTypes = map[string]string{"github": "issues.opened", "shopify": "orders/create", "woocommerce": "order.created"}

// samples make an event of each kind's shape with fresh ids (from id, a
// UUID) at now, for a first test without a file.
var samples = map[string]func(now time.Time, id string) any{
	"stripe": func(now time.Time, id string) any {
		short := strings.ReplaceAll(id, "-", "")[:24]
		return map[string]any{"id": "evt_" + short, "object": "event", "api_version": "2025-01-27.acacia", "created": now.Unix(),
			"type": "invoice.created", "livemode": false, "pending_webhooks": 1,
			"data": map[string]any{"object": map[string]any{"id": "in_" + short, "object": "invoice", "customer": "cus_test",
				"customer_email": "jane@example.com", "amount_due": 2000, "currency": "usd", "status": "draft"}}}
	},
	"github": func(now time.Time, id string) any {
		return map[string]any{"action": "opened",
			"issue":      map[string]any{"number": now.Unix() % 100000, "title": "Hello from wprelay sign", "user": map[string]any{"login": "octocat"}},
			"repository": map[string]any{"id": 1296269, "full_name": "octocat/Hello-World"},
			"sender":     map[string]any{"login": "octocat", "id": 1}}
	},
	"shopify": func(now time.Time, id string) any {
		return map[string]any{"id": now.UnixNano() / 1000, "email": "jon@example.com", "created_at": now.Format(time.RFC3339),
			"currency": "USD", "total_price": "199.65", "financial_status": "paid",
			"customer":   map[string]any{"id": 115310627314723954, "email": "jon@example.com"},
			"line_items": []any{map[string]any{"id": 866550311766439020, "title": "IPod Nano - 8GB", "quantity": 1, "price": "199.00"}}}
	},
	"slack": func(now time.Time, id string) any {
		return map[string]any{"token": "XXYYZZ", "team_id": "T0001", "api_app_id": "A0001", "type": "event_callback",
			"event_id": "Ev" + strings.ToUpper(strings.ReplaceAll(id, "-", "")[:10]), "event_time": now.Unix(),
			"event": map[string]any{"type": "app_mention", "user": "U061F7AUR", "channel": "C0LAN2Q65",
				"text": "<@U0LAN0Z89> hello from wprelay sign", "ts": fmt.Sprintf("%d.000100", now.Unix())}}
	},
	"hubspot": func(now time.Time, id string) any {
		return []any{map[string]any{"eventId": now.UnixNano() / 1000, "subscriptionId": 2881778, "portalId": 62515, "appId": 1160452,
			"occurredAt": now.UnixMilli(), "subscriptionType": "contact.creation", "attemptNumber": 0,
			"objectId": 65059681032, "changeFlag": "CREATED", "changeSource": "CRM_UI"}}
	},
	"woocommerce": func(now time.Time, id string) any {
		at := now.UTC().Format("2006-01-02T15:04:05")
		return map[string]any{"id": now.Unix() % 1000000, "status": "processing", "currency": "USD", "total": "39.00",
			"date_created_gmt": at, "date_modified_gmt": at, "customer_id": 26,
			"billing": map[string]any{"first_name": "John", "last_name": "Doe", "email": "john.doe@example.com"}}
	},
	"standard": func(now time.Time, id string) any {
		return map[string]any{"type": "contact.created", "timestamp": now.UTC().Format(time.RFC3339),
			"data": map[string]any{"id": "c_" + id[:8], "email": "jane@example.com"}}
	},
	"hmac": func(now time.Time, id string) any {
		return map[string]any{"id": id, "type": "test.created", "created_at": now.UTC().Format(time.RFC3339)}
	},
	"wordpress": func(now time.Time, id string) any {
		post := now.Unix() % 100000
		return map[string]any{"event_type": "post.published", "object_ref": fmt.Sprintf("post:%d", post), "idempotency_key": id,
			"occurred_at": now.UTC().Format(time.RFC3339),
			"data":        map[string]any{"id": post, "title": "Hello from wprelay sign", "author": 1, "status": "publish"}}
	},
}
