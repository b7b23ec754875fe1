package provider

import (
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/wprelay/wprelay/relay"
)

// Slack's headers, in canonical form, and its media types.
const (
	slackSignatureHeader = "X-Slack-Signature"
	slackTimestampHeader = "X-Slack-Request-Timestamp"
	contentTypeHeader    = "Content-Type"
	formMediaType        = "application/x-www-form-urlencoded"
)

// slackSlashCommand is the type of a slash command event, which Slack
// sends as a form without a type of its own.
const slackSlashCommand = "slash_command"

// Slack verifies Slack requests: an X-Slack-Signature header
// "v0=<hex HMAC-SHA256("v0:{timestamp}:{body}")>" keyed with the app's
// signing secret as written, and an X-Slack-Request-Timestamp header (unix
// seconds) within the tolerance. It reads three shapes of body:
//
//   - Events API JSON (event_callback, app_rate_limited) and the
//     url_verification handshake, answered with its challenge;
//   - interactivity, a form whose payload field is the JSON (block_actions,
//     view_submission, shortcut, ...);
//   - slash commands, a form of fields (command, text, user_id, ...) that
//     becomes one JSON object of type "slash_command".
//
// The signature is always over the raw body, form or JSON.
type Slack struct {
	tolerance time.Duration
}

var (
	_ Verifier     = (*Slack)(nil)
	_ ContentTyper = (*Slack)(nil)
)

// NewSlack returns a Slack verifier. Only o.Tolerance is used.
func NewSlack(o Options) (*Slack, error) {
	tol, err := tolerance(o)
	if err != nil {
		return nil, fmt.Errorf("slack: %w", err)
	}
	return &Slack{tolerance: tol}, nil
}

// ContentTypes returns JSON (Events API) and form (interactivity, slash
// commands).
func (s *Slack) ContentTypes() []string {
	return []string{"application/json", formMediaType}
}

// Key returns the signing secret's bytes.
func (s *Slack) Key(secret string) ([]byte, error) { return literalKey(secret) }

// Verify checks r's X-Slack-Signature against keys, then its
// X-Slack-Request-Timestamp against the tolerance. Missing or garbled
// headers, or no match, are relay.ErrBadSignature; a timestamp outside the
// tolerance of r.Now is relay.ErrStaleTimestamp.
func (s *Slack) Verify(r *Request, keys [][]byte) error {
	h := header(r.Header, slackSignatureHeader)
	if h == "" {
		return fmt.Errorf("%w: missing X-Slack-Signature header", relay.ErrBadSignature)
	}
	ts := header(r.Header, slackTimestampHeader)
	sec, ok := parseUnix(ts)
	if !ok {
		return fmt.Errorf("%w: missing or malformed X-Slack-Request-Timestamp header", relay.ErrBadSignature)
	}
	hexSig, ok := strings.CutPrefix(h, "v0=")
	var got [macSize]byte
	if !ok || !decodeHexMAC(&got, hexSig) {
		return fmt.Errorf("%w: garbled X-Slack-Signature header", relay.ErrBadSignature)
	}
	prefix := slackBase(ts)
	for _, key := range keys {
		if equalMAC(mac(key, prefix, r.Body), &got) {
			return checkTime(now(r), time.Unix(sec, 0), s.tolerance)
		}
	}
	return fmt.Errorf("%w: signature does not match", relay.ErrBadSignature)
}

// slackBase is what Slack signs before the body: "v0:{ts}:".
func slackBase(ts string) []byte {
	b := make([]byte, 0, len(ts)+4)
	return append(append(append(b, "v0:"...), ts...), ':')
}

// Parse returns the event of a verified Slack request, or the answer to its
// url_verification handshake (200 {"challenge": ...}) or ssl_check (200).
//
// Events API: ID is event_id (the same on every X-Slack-Retry-Num retry, so
// retries are duplicates), Type event.type else type, OccurredAt
// event_time. Interactivity: ID is trigger_id, Type the payload's type,
// OccurredAt the first action's action_ts. Slash commands: ID is
// trigger_id, Type "slash_command", Body the fields as a JSON object.
//
// A JSON body that is not an object, or an interactivity payload that is
// not one, is relay.ErrInvalidJSON; a form that is neither interactivity
// nor a slash command is relay.ErrInvalidEvent.
func (s *Slack) Parse(r *Request) (*Parsed, error) {
	if isForm(r.Header) {
		return parseSlackForm(r.Body)
	}
	return parseSlackJSON(r.Body)
}

// isForm reports whether h declares a form-encoded body.
func isForm(h http.Header) bool {
	mt, _, err := mime.ParseMediaType(header(h, contentTypeHeader))
	return err == nil && strings.EqualFold(mt, formMediaType)
}

// slackCallback is the part of an Events API body that Parse reads.
type slackCallback struct {
	Type      string          `json:"type"`
	Challenge json.RawMessage `json:"challenge"`
	EventID   string          `json:"event_id"`
	EventTime json.RawMessage `json:"event_time"`
	TeamID    string          `json:"team_id"`
	Event     struct {
		Type    string          `json:"type"`
		Subtype string          `json:"subtype"`
		User    json.RawMessage `json:"user"`    // an id, or the user (team_join, user_change)
		Channel json.RawMessage `json:"channel"` // an id, or the channel (channel_created)
		Item    struct {
			Channel json.RawMessage `json:"channel"`
		} `json:"item"` // reaction_added and friends
		EventTS json.RawMessage `json:"event_ts"`
	} `json:"event"`
}

func parseSlackJSON(body []byte) (*Parsed, error) {
	var cb slackCallback
	if err := decodeLoose(body, &cb); err != nil {
		return nil, err
	}
	if cb.Type == "url_verification" {
		challenge, ok := jsonString(cb.Challenge)
		if !ok || challenge == "" {
			return nil, fmt.Errorf("%w: url_verification without a challenge", relay.ErrInvalidEvent)
		}
		return &Parsed{Reply: &Reply{Status: http.StatusOK, Body: map[string]string{"challenge": challenge}}}, nil
	}
	ev := &cb.Event
	it := Item{ID: cb.EventID, Type: first(ev.Type, cb.Type), Body: body}
	if it.OccurredAt = unixSeconds(cb.EventTime); it.OccurredAt.IsZero() {
		it.OccurredAt = unixSeconds(ev.EventTS)
	}
	it.Actor.ID = refID(ev.User)
	switch {
	case refID(ev.Channel) != "":
		it.Subject = relay.Subject{ID: refID(ev.Channel), Type: "channel"}
	case refID(ev.Item.Channel) != "":
		it.Subject = relay.Subject{ID: refID(ev.Item.Channel), Type: "channel"}
	case isObject(ev.User):
		it.Subject = relay.Subject{ID: refID(ev.User), Type: "user"}
	case cb.TeamID != "":
		it.Subject = relay.Subject{ID: cb.TeamID, Type: "team"}
	}
	it.Action.Type = first(ev.Subtype, ev.Type)
	return &Parsed{Items: []Item{it}}, nil
}

// slackInteraction is the part of an interactivity payload that Parse
// reads.
type slackInteraction struct {
	Type      string `json:"type"`
	TriggerID string `json:"trigger_id"`
	ActionTS  string `json:"action_ts"` // shortcuts
	User      struct {
		ID string `json:"id"`
	} `json:"user"`
	Team struct {
		ID string `json:"id"`
	} `json:"team"`
	Channel struct {
		ID string `json:"id"`
	} `json:"channel"`
	View struct {
		ID         string `json:"id"`
		CallbackID string `json:"callback_id"`
	} `json:"view"`
	CallbackID string `json:"callback_id"`
	Actions    []struct {
		ActionID string `json:"action_id"`
		ActionTS string `json:"action_ts"`
	} `json:"actions"`
}

func parseSlackForm(body []byte) (*Parsed, error) {
	form, err := url.ParseQuery(string(body))
	if err != nil {
		return nil, fmt.Errorf("%w: malformed form body", relay.ErrInvalidEvent)
	}
	switch {
	case form.Has("payload"):
		return parseSlackInteraction([]byte(form.Get("payload")))
	case form.Has("command"):
		return parseSlackCommand(form)
	case form.Get("ssl_check") == "1":
		return &Parsed{Reply: &Reply{Status: http.StatusOK, Body: map[string]string{"status": "ok"}}}, nil
	}
	return nil, fmt.Errorf("%w: a form from Slack carries payload= (interactivity) or command= (a slash command)", relay.ErrInvalidEvent)
}

func parseSlackInteraction(payload []byte) (*Parsed, error) {
	var in slackInteraction
	if err := decodeLoose(payload, &in); err != nil {
		return nil, fmt.Errorf("%w: the payload field is not a JSON object", relay.ErrInvalidJSON)
	}
	it := Item{ID: in.TriggerID, Type: in.Type, Body: payload}
	it.Actor.ID = in.User.ID
	switch {
	case in.Channel.ID != "":
		it.Subject = relay.Subject{ID: in.Channel.ID, Type: "channel"}
	case in.View.ID != "":
		it.Subject = relay.Subject{ID: in.View.ID, Type: "view"}
	case in.Team.ID != "":
		it.Subject = relay.Subject{ID: in.Team.ID, Type: "team"}
	}
	ts := in.ActionTS
	if len(in.Actions) > 0 {
		it.Action.Type = in.Actions[0].ActionID
		ts = first(in.Actions[0].ActionTS, ts)
	}
	it.Action.Type = first(it.Action.Type, in.View.CallbackID, in.CallbackID)
	it.OccurredAt = secondsTime(ts)
	return &Parsed{Items: []Item{it}, Ack: slackAck}, nil
}

// slackAck is the answer to interactivity and slash commands once stored:
// an empty 200 (a body would be shown to the user, and view_submission
// wants none).
var slackAck = &Reply{Status: http.StatusOK}

func parseSlackCommand(form url.Values) (*Parsed, error) {
	fields := make(map[string]any, len(form))
	for k, vs := range form {
		if len(vs) == 1 {
			fields[k] = vs[0]
		} else {
			fields[k] = vs
		}
	}
	body, err := json.Marshal(fields)
	if err != nil {
		return nil, errors.Join(relay.ErrInvalidEvent, err)
	}
	it := Item{ID: form.Get("trigger_id"), Type: slackSlashCommand, Body: body}
	it.Actor.ID = form.Get("user_id")
	if ch := form.Get("channel_id"); ch != "" {
		it.Subject = relay.Subject{ID: ch, Type: "channel"}
	}
	it.Action.Type = form.Get("command")
	return &Parsed{Items: []Item{it}, Ack: slackAck}, nil
}

// Sign sets the headers Slack sends: the request timestamp and the v0
// signature.
func (s *Slack) Sign(r *Request, key []byte, typ string) error {
	ts := strconv.FormatInt(now(r).Unix(), 10)
	r.Header[slackTimestampHeader] = []string{ts}
	r.Header[slackSignatureHeader] = []string{"v0=" + hexString(mac(key, slackBase(ts), r.Body))}
	return nil
}
