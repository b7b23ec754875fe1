package store

import (
	"encoding/json"
	"reflect"
	"testing"

	"github.com/wprelay/wprelay/relay"
)

func TestRawCodec_RoundTrip(t *testing.T) {
	for _, r := range []relay.Raw{
		{Method: "POST", Path: "/hooks/stripe?x=1", Header: map[string][]string{"Content-Type": {"application/json"}, "Stripe-Signature": {"REDACTED"}, "X-Many": {"a", "", "c"}}, Body: []byte(`{"id":"evt_1"}`)},
		{Method: "", Path: "", Header: map[string][]string{}, Body: []byte{}},
		{Method: "POST", Path: "/p", Header: map[string][]string{"Empty": {}}, Body: []byte{0, 1, 2, 0xff}},
	} {
		got, err := decodeRaw(encodeRaw(&r))
		if err != nil {
			t.Fatalf("decode(encode(%+v)): %v", r, err)
		}
		if !reflect.DeepEqual(got, r) {
			t.Errorf("round trip:\n got %+v\nwant %+v", got, r)
		}
	}
}

// Records written as JSON by earlier versions still read.
func TestRawCodec_ReadsJSONRecords(t *testing.T) {
	want := relay.Raw{Method: "POST", Path: "/hooks/gh", Header: map[string][]string{"X-Github-Event": {"push"}}, Body: []byte(`{"zen":"ok"}`)}
	old, err := json.Marshal(want)
	if err != nil {
		t.Fatal(err)
	}
	got, err := decodeRaw(old)
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("decodeRaw(JSON) = %+v, %v; want %+v", got, err, want)
	}
}

func FuzzDecodeRaw(f *testing.F) {
	f.Add(encodeRaw(&relay.Raw{Method: "POST", Path: "/h", Header: map[string][]string{"A": {"b"}}, Body: []byte("x")}))
	f.Add([]byte{rawBinary, 0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Add([]byte(`{"method":"POST"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := decodeRaw(b)
		if err != nil || len(b) == 0 || b[0] != rawBinary {
			return
		}
		// What decodes re-encodes to a record that decodes the same.
		again, err := decodeRaw(encodeRaw(&r))
		if err != nil || !reflect.DeepEqual(again, r) {
			t.Fatalf("re-decode = %+v, %v; want %+v", again, err, r)
		}
	})
}
