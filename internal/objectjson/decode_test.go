package objectjson

import (
	"math/rand/v2"
	"reflect"
	"testing"

	kjson "sigs.k8s.io/json"
)

// reference decodes data as the unstructured decoder does.
func reference(data []byte) (map[string]any, error) {
	m := map[string]any{}
	err := kjson.UnmarshalCaseSensitivePreserveInts(data, &m)
	return m, err
}

// TestDecodeMatchesReference holds Decode to sigs.k8s.io/json: whatever it
// decodes, it decodes to the same value; input the reference refuses, it
// refuses too.
func TestDecodeMatchesReference(t *testing.T) {
	docs := []string{
		`{}`, ` { "a" : 1 } `, `{"a":-0,"b":1.0,"c":1e3,"d":-12.5e-3,"e":9223372036854775807,"f":9223372036854775808,"g":0.5}`,
		`{"s":"plain","t":"esc \" \\ \/ \b \f \n \r \t \u00e9 \u2028 \u0041","u":"héllo ☃ 😀"}`,
		`{"nested":{"list":[1,"two",3.5,true,false,null,{"x":[]},[[]]]}}`,
		`{"kind":"Widget","apiVersion":"x/v1","metadata":{"name":"w","labels":{"a":"b"}},"spec":{"n":42}}`,
		// refused or left to the reference decoder
		`{"a":1,"a":2}`, `{"a":"\ud83d\ude00"}`, `{"a":"\ud800"}`, "{\"a\":\"bad \xff\"}", `{"a":01}`, `{"a":1.}`, `{"a":.5}`,
		`{"a":-}`, `{"a":1e}`, `{"a":tru}`, `{"a":1,}`, `{"a" 1}`, `{"a":1} x`, `[1]`, `"s"`, ``, `{`, `{"a":"unterminated}`,
		"{\"a\":\"ctl \x01\"}", `{"a":"\x"}`, `{"a":"\u12"}`, `{"a":1e999}`, `{"a":[1,2}`, `{"a":{"b":1}`, `{"a":nul}`,
	}
	for _, doc := range docs {
		got, ok := Decode([]byte(doc))
		want, err := reference([]byte(doc))
		if ok && err != nil {
			t.Errorf("%q: decoded, the reference refuses it: %v", doc, err)
		}
		if ok && !reflect.DeepEqual(got, want) {
			t.Errorf("%q:\n got %#v\nwant %#v", doc, got, want)
		}
	}
	for _, doc := range docs[:6] {
		if _, ok := Decode([]byte(doc)); !ok {
			t.Errorf("%q: left to the reference decoder; it is plain valid JSON", doc)
		}
	}
	// Random objects round-trip through Marshal and Decode as through the reference.
	r := rand.New(rand.NewPCG(9, 10))
	for i := range 5000 {
		obj := map[string]any{"spec": randomValue(r, 0)}
		data, err := Marshal(obj)
		if err != nil {
			t.Fatal(err)
		}
		want, err := reference(data)
		if err != nil {
			t.Fatal(err)
		}
		if got, ok := Decode(data); ok && !reflect.DeepEqual(got, want) {
			t.Fatalf("case %d %s:\n got %#v\nwant %#v", i, data, got, want)
		}
	}
}

func BenchmarkDecode(b *testing.B) {
	data, _ := Marshal(benchObject())
	b.Run("objectjson", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, ok := Decode(data); !ok {
				b.Fatal("refused")
			}
		}
	})
	b.Run("sigs.k8s.io/json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := reference(data); err != nil {
				b.Fatal(err)
			}
		}
	})
}
