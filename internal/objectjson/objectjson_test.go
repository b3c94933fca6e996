package objectjson

import (
	"bytes"
	"encoding/json"
	"math"
	"math/rand/v2"
	"testing"
)

var tricky = []string{"", "plain", `quote " and \ backslash`, "<script>&amp;</script>", "tab\tnew\nline\rcr\bbs\ffeed",
	"\x00\x01\x1f\x7f", "héllo wörld ☃ 😀", "bad \xff utf8 \xc3", "line\u2028para\u2029end", "\u00e9\u0301"}

var floats = []float64{0, math.Copysign(0, -1), 1.5, -2.25, 1e-6, 9.99e-7, 1e-7, 1.234e-10, 1e20, 1e21, 123456789e15,
	math.MaxFloat64, math.SmallestNonzeroFloat64, 0.1, 1.0 / 3, 1e100}

func randomValue(r *rand.Rand, depth int) any {
	switch n := r.IntN(10); {
	case n == 0:
		return nil
	case n == 1:
		return r.IntN(2) == 0
	case n == 2:
		return r.Int64() - r.Int64()
	case n == 3:
		return floats[r.IntN(len(floats))]
	case n < 6 || depth > 3:
		return tricky[r.IntN(len(tricky))]
	case n < 8:
		m := map[string]any{}
		for range r.IntN(8) {
			m[tricky[r.IntN(len(tricky))]+string(rune('a'+r.IntN(26)))] = randomValue(r, depth+1)
		}
		return m
	default:
		a := []any{}
		for range r.IntN(5) {
			a = append(a, randomValue(r, depth+1))
		}
		return a
	}
}

// TestMatchesEncodingJSON holds the encoder to encoding/json's bytes over
// random objects with the strings and floats where encoders differ.
func TestMatchesEncodingJSON(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	for i := range 20000 {
		obj := map[string]any{"spec": randomValue(r, 0), "kind": tricky[r.IntN(len(tricky))]}
		want, err := json.Marshal(obj)
		if err != nil {
			t.Fatal(err)
		}
		got, err := Marshal(obj)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("case %d:\n got %s\nwant %s", i, got, want)
		}
	}
}

func TestOtherTypesAndErrors(t *testing.T) {
	obj := map[string]any{"ints": []int{1, 2}, "labels": map[string]string{"a": "<b>"}, "n": 3, "m": int32(-4)}
	want, _ := json.Marshal(obj)
	if got, err := Marshal(obj); err != nil || !bytes.Equal(got, want) {
		t.Fatalf("got %s, %v; want %s", got, err, want)
	}
	for _, bad := range []any{math.Inf(1), math.NaN(), map[string]any{"x": math.Inf(-1)}} {
		if _, err := Marshal(map[string]any{"v": bad}); err == nil {
			t.Errorf("%v encoded without an error", bad)
		}
	}
}

// benchObject is a custom object of 50 string fields.
func benchObject() map[string]any {
	spec := map[string]any{}
	for i := range 50 {
		spec["field"+string(rune('a'+i%26))+string(rune('a'+i/26))] = "value of a field"
	}
	return map[string]any{"apiVersion": "bench.skiff.dev/v1", "kind": "Widget", "metadata": map[string]any{
		"name": "w-1", "namespace": "default", "uid": "f47ac10b-58cc-4372-a567-0e02b2c3d479", "resourceVersion": "12345",
		"creationTimestamp": "2026-12-05T21:00:00Z", "generation": int64(1)}, "spec": spec}
}

func BenchmarkMarshal(b *testing.B) {
	obj := benchObject()
	b.Run("objectjson", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := Marshal(obj); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("encoding/json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := json.Marshal(obj); err != nil {
				b.Fatal(err)
			}
		}
	})
}
