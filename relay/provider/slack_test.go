package provider

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/slack-go/slack"

	"github.com/wprelay/wprelay/relay"
)

const slackSecret = "8f742231b10e8888abcd99yyyzzz85a5" // the signing secret of Slack's example

// Slack's documented example (docs.slack.dev, "Verifying requests from
// Slack"): a slash command form body signed at 1531420618.
const (
	slackDocTS   = "1531420618"
	slackDocBody = "token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c"
	slackDocSig  = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"
)

var slackBody = []byte(`{"token":"XXYYZZ","team_id":"T0001","api_app_id":"A0001","event":{"type":"message","channel":"C2147483705","user":"U2147483697","text":"Hello world","ts":"1795859998.000200","event_ts":"1795859998.000200","channel_type":"channel"},"type":"event_callback","event_id":"Ev0PV52K21","event_time":1795859998}`)

// signSlack returns an X-Slack-Signature for body at ts, computed
// independently of the code under test.
func signSlack(ts time.Time, body []byte, secret string) string {
	return "v0=" + hexMAC([]byte(secret), fmt.Sprintf("v0:%d:%s", ts.Unix(), body))
}

func slackRequest(sig, ts, contentType string, body []byte, now time.Time) *Request {
	h := http.Header{}
	for k, v := range map[string]string{"X-Slack-Signature": sig, "X-Slack-Request-Timestamp": ts, "Content-Type": contentType} {
		if v != "" {
			h.Set(k, v)
		}
	}
	return &Request{Method: "POST", Header: h, Body: body, Now: now}
}

func signedSlack(body []byte, contentType string, at time.Time) *Request {
	return slackRequest(signSlack(at, body, slackSecret), fmt.Sprint(at.Unix()), contentType, body, at)
}

func TestSlack_Verify_AcceptsDocumentedExample(t *testing.T) {
	v := MustNew(t, Options{Kind: "slack"})
	keys := [][]byte{MustKey(t, v, slackSecret)}
	at := time.Unix(1531420618, 0)
	wantErr(t, v.Verify(slackRequest(slackDocSig, slackDocTS, formMediaType, []byte(slackDocBody), at), keys), nil)
	wantErr(t, v.Verify(slackRequest(slackDocSig, slackDocTS, formMediaType, []byte(slackDocBody), at.Add(10*time.Minute)), keys), relay.ErrStaleTimestamp)
	wantErr(t, v.Verify(slackRequest(slackDocSig, "1531420619", formMediaType, []byte(slackDocBody), at), keys), relay.ErrBadSignature)
	for _, m := range mutations([]byte(slackDocBody)) {
		wantErr(t, v.Verify(slackRequest(slackDocSig, slackDocTS, formMediaType, m, at), keys), relay.ErrBadSignature)
	}
}

// slack-go's SecretsVerifier checks the timestamp against the wall clock,
// so these run at time.Now.
func TestSlack_Verify_AgreesWithSlackGo(t *testing.T) {
	v := MustNew(t, Options{Kind: "slack"})
	keys := [][]byte{MustKey(t, v, slackSecret)}
	for name, body := range map[string][]byte{"json": slackBody, "form": []byte(slackDocBody), "empty": {}} {
		t.Run(name, func(t *testing.T) {
			r := &Request{Method: "POST", Header: http.Header{}, Body: body, Now: time.Now()}
			if err := v.(Signer).Sign(r, keys[0], ""); err != nil {
				t.Fatal(err)
			}
			sv, err := slack.NewSecretsVerifier(r.Header, slackSecret)
			if err != nil {
				t.Fatalf("slack-go: %v", err)
			}
			_, _ = sv.Write(body)
			if err := sv.Ensure(); err != nil {
				t.Fatalf("slack-go rejects our signature: %v", err)
			}
			wantErr(t, v.Verify(r, keys), nil)
			// And a header slack-go rejects, ours rejects too.
			r.Header.Set("X-Slack-Signature", signSlack(time.Now(), body, "another-secret"))
			sv, _ = slack.NewSecretsVerifier(r.Header, slackSecret)
			_, _ = sv.Write(body)
			if sv.Ensure() == nil {
				t.Fatal("slack-go accepts a foreign signature")
			}
			wantErr(t, v.Verify(r, keys), relay.ErrBadSignature)
		})
	}
}

func TestSlack_Verify_RejectsGarbledHeaders(t *testing.T) {
	v := MustNew(t, Options{Kind: "slack"})
	keys := [][]byte{MustKey(t, v, slackSecret)}
	at := time.Unix(1531420618, 0)
	hexSig := strings.TrimPrefix(slackDocSig, "v0=")
	for _, tc := range []struct{ name, sig, ts string }{
		{"no signature", "", slackDocTS},
		{"no timestamp", slackDocSig, ""},
		{"timestamp not a number", slackDocSig, "1531420618.5"},
		{"negative timestamp", slackDocSig, "-1531420618"},
		{"v1 prefix", "v1=" + hexSig, slackDocTS},
		{"no prefix", hexSig, slackDocTS},
		{"short", slackDocSig[:60], slackDocTS},
		{"base64", "v0=" + b64MAC([]byte(slackSecret), "v0:"+slackDocTS+":"+slackDocBody), slackDocTS},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := v.Verify(slackRequest(tc.sig, tc.ts, formMediaType, []byte(slackDocBody), at), keys)
			wantErr(t, err, relay.ErrBadSignature)
			noSecretIn(t, err, slackSecret, hexSig)
		})
	}
}

func TestSlack_Verify_AcceptsRotatedKeys(t *testing.T) {
	v := MustNew(t, Options{Kind: "slack"})
	keys := [][]byte{MustKey(t, v, "old-signing-secret"), MustKey(t, v, slackSecret)}
	for _, s := range []string{"old-signing-secret", slackSecret} {
		r := slackRequest(signSlack(testNow, slackBody, s), fmt.Sprint(testNow.Unix()), "application/json", slackBody, testNow)
		wantErr(t, v.Verify(r, keys), nil)
	}
}

func TestSlack_Parse_URLVerification(t *testing.T) {
	v := MustNew(t, Options{Kind: "slack"})
	body := []byte(`{"token":"Jhj5dZrVaK7ZwHHjRyZWjbDl","challenge":"3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P","type":"url_verification"}`)
	p, err := v.Parse(signedSlack(body, "application/json", testNow))
	wantErr(t, err, nil)
	if p.Reply == nil || p.Reply.Status != 200 || len(p.Items) != 0 {
		t.Fatalf("parsed = %+v, want a 200 reply and no items", p)
	}
	if got := p.Reply.Body.(map[string]string)["challenge"]; got != "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P" {
		t.Fatalf("challenge = %q", got)
	}
	for _, bad := range []string{`{"type":"url_verification"}`, `{"type":"url_verification","challenge":7}`, `{"type":"url_verification","challenge":""}`} {
		_, err := v.Parse(signedSlack([]byte(bad), "application/json", testNow))
		wantErr(t, err, relay.ErrInvalidEvent)
	}
}

func TestSlack_Parse(t *testing.T) {
	v := MustNew(t, Options{Kind: "slack"})
	interaction := `{"type":"block_actions","trigger_id":"123.456.abc","user":{"id":"U0CA5"},"team":{"id":"T3MDE"},"channel":{"id":"C0CA5"},"actions":[{"action_id":"approve","action_ts":"1795859999.457031"}]}`
	shortcut := `{"type":"shortcut","trigger_id":"9.8.7","callback_id":"open_ticket","action_ts":"1795859990","user":{"id":"U1"},"team":{"id":"T1"}}`
	view := `{"type":"view_submission","trigger_id":"1.2.3","user":{"id":"U1"},"view":{"id":"V0","callback_id":"refund_form"}}`
	command := url.Values{"command": {"/weather"}, "text": {"94070"}, "user_id": {"U2147483697"}, "channel_id": {"C2147483705"}, "trigger_id": {"13345224609.738474920.8088930838d88f008e0"}}
	for _, tc := range []struct {
		name, ct, body string
		want           Item
		err            error
	}{
		{"event_callback", "application/json", string(slackBody), Item{
			ID: "Ev0PV52K21", Type: "message", OccurredAt: time.Unix(1795859998, 0).UTC(), Body: slackBody,
			Normal: relay.Normal{Actor: relay.Actor{ID: "U2147483697"}, Subject: relay.Subject{ID: "C2147483705", Type: "channel"}, Action: relay.Action{Type: "message"}},
		}, nil},
		{"subtype, event_ts", "application/json; charset=utf-8", `{"type":"event_callback","event_id":"Ev1","event":{"type":"message","subtype":"message_changed","channel":"C1","event_ts":"1795859998.500000"}}`, Item{
			ID: "Ev1", Type: "message", OccurredAt: time.Unix(1795859998, 5e8).UTC(),
			Normal: relay.Normal{Subject: relay.Subject{ID: "C1", Type: "channel"}, Action: relay.Action{Type: "message_changed"}},
		}, nil},
		{"reaction on an item", "application/json", `{"type":"event_callback","event_id":"Ev2","event":{"type":"reaction_added","user":"U1","item":{"type":"message","channel":"C9","ts":"1.2"}}}`, Item{
			ID: "Ev2", Type: "reaction_added",
			Normal: relay.Normal{Actor: relay.Actor{ID: "U1"}, Subject: relay.Subject{ID: "C9", Type: "channel"}, Action: relay.Action{Type: "reaction_added"}},
		}, nil},
		{"team_join: the user is an object", "application/json", `{"type":"event_callback","event_id":"Ev3","team_id":"T1","event":{"type":"team_join","user":{"id":"U7","name":"amy"}}}`, Item{
			ID: "Ev3", Type: "team_join",
			Normal: relay.Normal{Actor: relay.Actor{ID: "U7"}, Subject: relay.Subject{ID: "U7", Type: "user"}, Action: relay.Action{Type: "team_join"}},
		}, nil},
		{"app_rate_limited: no event", "application/json", `{"token":"x","type":"app_rate_limited","team_id":"T1","minute_rate_limited":1518467820}`, Item{
			Type: "app_rate_limited", Normal: relay.Normal{Subject: relay.Subject{ID: "T1", Type: "team"}},
		}, nil},
		{"interactivity", formMediaType, url.Values{"payload": {interaction}}.Encode(), Item{
			ID: "123.456.abc", Type: "block_actions", OccurredAt: time.Unix(1795859999, 457031000).UTC(), Body: []byte(interaction),
			Normal: relay.Normal{Actor: relay.Actor{ID: "U0CA5"}, Subject: relay.Subject{ID: "C0CA5", Type: "channel"}, Action: relay.Action{Type: "approve"}},
		}, nil},
		{"shortcut", formMediaType, url.Values{"payload": {shortcut}}.Encode(), Item{
			ID: "9.8.7", Type: "shortcut", OccurredAt: time.Unix(1795859990, 0).UTC(), Body: []byte(shortcut),
			Normal: relay.Normal{Actor: relay.Actor{ID: "U1"}, Subject: relay.Subject{ID: "T1", Type: "team"}, Action: relay.Action{Type: "open_ticket"}},
		}, nil},
		{"view submission", formMediaType + "; charset=utf-8", url.Values{"payload": {view}}.Encode(), Item{
			ID: "1.2.3", Type: "view_submission", Body: []byte(view),
			Normal: relay.Normal{Actor: relay.Actor{ID: "U1"}, Subject: relay.Subject{ID: "V0", Type: "view"}, Action: relay.Action{Type: "refund_form"}},
		}, nil},
		{"slash command", formMediaType, command.Encode(), Item{
			ID: "13345224609.738474920.8088930838d88f008e0", Type: "slash_command",
			Body:   []byte(`{"channel_id":"C2147483705","command":"/weather","text":"94070","trigger_id":"13345224609.738474920.8088930838d88f008e0","user_id":"U2147483697"}`),
			Normal: relay.Normal{Actor: relay.Actor{ID: "U2147483697"}, Subject: relay.Subject{ID: "C2147483705", Type: "channel"}, Action: relay.Action{Type: "/weather"}},
		}, nil},
		{"slash command with a repeated field", formMediaType, "command=%2Fx&text=a&text=b", Item{
			Type: "slash_command", Body: []byte(`{"command":"/x","text":["a","b"]}`), Normal: relay.Normal{Action: relay.Action{Type: "/x"}},
		}, nil},
		{"json array", "application/json", `[]`, Item{}, relay.ErrInvalidJSON},
		{"form sent as json", "application/json", slackDocBody, Item{}, relay.ErrInvalidJSON},
		{"payload not json", formMediaType, "payload=%7Bnope", Item{}, relay.ErrInvalidJSON},
		{"payload an array", formMediaType, "payload=%5B%5D", Item{}, relay.ErrInvalidJSON},
		{"unknown form", formMediaType, "a=1&b=2", Item{}, relay.ErrInvalidEvent},
		{"malformed form", formMediaType, "a=%zz", Item{}, relay.ErrInvalidEvent},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := v.Parse(signedSlack([]byte(tc.body), tc.ct, testNow))
			wantErr(t, err, tc.err)
			if err != nil {
				return
			}
			if tc.want.Body == nil {
				tc.want.Body = []byte(tc.body)
			}
			wantItems(t, p, tc.want)
		})
	}
}

func TestSlack_Parse_SSLCheck(t *testing.T) {
	v := MustNew(t, Options{Kind: "slack"})
	p, err := v.Parse(signedSlack([]byte("ssl_check=1&token=gIkuvaNzQIHg97ATvDxqgjtO"), formMediaType, testNow))
	wantErr(t, err, nil)
	if p.Reply == nil || p.Reply.Status != 200 || len(p.Items) != 0 {
		t.Fatalf("parsed = %+v, want a 200 reply", p)
	}
}

func TestSlack_ContentTypes_IncludeForms(t *testing.T) {
	got := strings.Join(ContentTypes(MustNew(t, Options{Kind: "slack"})), ",")
	if got != "application/json,application/x-www-form-urlencoded" {
		t.Fatalf("ContentTypes(slack) = %s", got)
	}
	if got := strings.Join(ContentTypes(MustNew(t, Options{Kind: "github"})), ","); got != "application/json" {
		t.Fatalf("ContentTypes(github) = %s", got)
	}
}

// FuzzSlackForm feeds form bodies, signed, to Verify and Parse: nothing
// panics, what parses is well-formed, and a mutated body never verifies.
func FuzzSlackForm(f *testing.F) {
	f.Add([]byte(slackDocBody), uint(0), byte(1))
	f.Add([]byte("payload=%7B%22type%22%3A%22block_actions%22%2C%22trigger_id%22%3A%221.2%22%7D"), uint(9), byte(0x20))
	f.Add([]byte("ssl_check=1"), uint(0), byte(2))
	f.Add([]byte("command=%2Fa&command=%2Fb&text=%ZZ"), uint(3), byte(4))
	f.Add([]byte("payload=[]&command=x"), uint(1), byte(8))
	v := MustNew(f, Options{Kind: "slack"})
	keys := [][]byte{MustKey(f, v, slackSecret)}
	f.Fuzz(func(t *testing.T, body []byte, pos uint, x byte) {
		r := signedSlack(body, formMediaType, testNow)
		if err := v.Verify(r, keys); err != nil {
			t.Fatalf("original body: %v", err)
		}
		if p, err := v.Parse(r); err == nil {
			for _, it := range p.Items {
				if !isObject(it.Body) {
					t.Fatalf("item body %q is not a JSON object", it.Body)
				}
			}
			if p.Reply == nil && len(p.Items) != 1 {
				t.Fatalf("parsed = %+v", p)
			}
		}
		r.Body = mutate(body, pos, x)
		wantErr(t, v.Verify(r, keys), relay.ErrBadSignature)
	})
}

func FuzzVerifySlack(f *testing.F) {
	f.Add(slackBody, uint(0), byte(1))
	f.Add(body1K, uint(700), byte(0x40))
	f.Add([]byte{}, uint(0), byte(0))
	v := MustNew(f, Options{Kind: "slack"})
	keys := [][]byte{MustKey(f, v, slackSecret)}
	f.Fuzz(func(t *testing.T, body []byte, pos uint, x byte) {
		r := signedSlack(body, "application/json", testNow)
		if err := v.Verify(r, keys); err != nil {
			t.Fatalf("original body: %v", err)
		}
		_, _ = v.Parse(r) // must not panic
		r.Body = mutate(body, pos, x)
		wantErr(t, v.Verify(r, keys), relay.ErrBadSignature)
	})
}

func BenchmarkVerify_Slack(b *testing.B) {
	v := MustNew(b, Options{Kind: "slack"})
	keys := [][]byte{MustKey(b, v, slackSecret)}
	r := signedSlack(body1K, "application/json", testNow)
	b.ReportAllocs()
	b.SetBytes(int64(len(body1K)))
	for b.Loop() {
		if err := v.Verify(r, keys); err != nil {
			b.Fatal(err)
		}
	}
}
