package relay

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// upgradeCases are testdata/upgrade/cases.json, which the plugin's PHPUnit
// tests read too: one set of rules on both sides.
type upgradeCases struct {
	Cases []struct {
		Name     string          `json:"name"`
		Envelope string          `json:"envelope"`
		WantData json.RawMessage `json:"want_data"`
	} `json:"cases"`
}

func TestUpgradeEnvelope(t *testing.T) {
	b, err := os.ReadFile("../testdata/upgrade/cases.json")
	if err != nil {
		t.Fatal(err)
	}
	var c upgradeCases
	if err := json.Unmarshal(b, &c); err != nil || len(c.Cases) == 0 {
		t.Fatalf("cases.json: %v", err)
	}
	for _, tc := range c.Cases {
		t.Run(tc.Name, func(t *testing.T) {
			in := []byte(tc.Envelope)
			got := UpgradeEnvelope(in)
			if string(tc.WantData) == "null" {
				if string(got) != string(in) {
					t.Fatalf("changed:\n got %s\nwant %s", got, in)
				}
				return
			}
			var e, orig Envelope
			if err := json.Unmarshal(got, &e); err != nil {
				t.Fatalf("%s: %v", got, err)
			}
			_ = json.Unmarshal(in, &orig)
			e.Data, orig.Data = nil, nil
			if !jsonSame(t, got, "data", tc.WantData) || !reflect.DeepEqual(e, orig) {
				t.Fatalf("upgraded = %s, want the same envelope with data %s", got, tc.WantData)
			}
			if again := UpgradeEnvelope(got); string(again) != string(got) {
				t.Fatalf("not a fixed point: %s", again)
			}
		})
	}
}

// jsonSame reports whether env's member name is the JSON want.
func jsonSame(t *testing.T, env []byte, name string, want []byte) bool {
	t.Helper()
	var m map[string]any
	var w any
	if json.Unmarshal(env, &m) != nil || json.Unmarshal(want, &w) != nil {
		return false
	}
	a, _ := json.Marshal(m[name])
	b, _ := json.Marshal(w)
	return string(a) == string(b)
}

// Every golden envelope (today's layout) is left as it is.
func TestUpgradeEnvelope_GoldenUnchanged(t *testing.T) {
	files, _ := filepath.Glob("../testdata/envelopes/*.golden.json")
	if len(files) == 0 {
		t.Fatal("no golden envelopes")
	}
	n := 0
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var g struct {
			Envelopes []Envelope `json:"envelopes"`
		}
		_ = json.Unmarshal(b, &g)
		for _, e := range g.Envelopes {
			enc, err := e.Encode()
			if err != nil {
				t.Fatal(err)
			}
			n++
			if got := UpgradeEnvelope(enc); string(got) != string(enc) {
				t.Errorf("%s: changed to %s", filepath.Base(f), got)
			}
			// The cheap check alone clears bodies that merely mention a
			// timestamp (a GitHub push's commits) or a Stripe object.
			if name := filepath.Base(f); (strings.HasPrefix(name, "github-push") || strings.HasPrefix(name, "stripe-invoice")) && maybeEarlier(enc) {
				t.Errorf("%s: a current envelope takes the decoding path", name)
			}
		}
	}
	if n < 10 {
		t.Fatalf("only %d golden envelopes read", n)
	}
}

// BenchmarkUpgradeEnvelope measures what every delivery pays for reading
// events of earlier versions: a current Stripe invoice envelope (the
// substring checks only), and an earlier version's (decoded, re-encoded).
func BenchmarkUpgradeEnvelope(b *testing.B) {
	data, err := os.ReadFile("../testdata/envelopes/stripe-invoice-paid.golden.json")
	if err != nil {
		b.Fatal(err)
	}
	var g struct {
		Envelopes []Envelope `json:"envelopes"`
	}
	if err := json.Unmarshal(data, &g); err != nil || len(g.Envelopes) != 1 {
		b.Fatal(err)
	}
	current, _ := g.Envelopes[0].Encode()
	old := g.Envelopes[0]
	old.Data = json.RawMessage(`{"id":"evt_1","object":"event","type":"invoice.paid","data":` + string(old.Data) + `}`)
	earlier, _ := old.Encode()
	for _, c := range []struct {
		name string
		env  []byte
	}{{"current", current}, {"earlier", earlier}} {
		b.Run(c.name, func(b *testing.B) {
			b.SetBytes(int64(len(c.env)))
			b.ReportAllocs()
			for b.Loop() {
				UpgradeEnvelope(c.env)
			}
		})
	}
}
