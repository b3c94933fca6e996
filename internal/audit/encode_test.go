package audit

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"testing"
	"time"
)

// hard are strings whose JSON encoding/json escapes: quotes, controls,
// HTML characters, invalid UTF-8, line separators.
var hard = []string{"", "a", "x\"y\\z", "<b>&amp;</b>", "tab\tnew\nline\r", "\x00\x1f\x7f", "\xff\xfe", "é∑😀", "\u2028\u2029", "system:serviceaccount:ns:sa"}

func randString(r *rand.Rand) string {
	if r.IntN(3) == 0 {
		return ""
	}
	return hard[r.IntN(len(hard))] + hard[r.IntN(len(hard))]
}

func randStrings(r *rand.Rand) []string {
	switch r.IntN(4) {
	case 0:
		return nil
	case 1:
		return []string{}
	}
	l := make([]string, r.IntN(4))
	for i := range l {
		l[i] = randString(r)
	}
	return l
}

func randUser(r *rand.Rand) UserInfo {
	u := UserInfo{Username: randString(r), UID: randString(r), Groups: randStrings(r)}
	if r.IntN(2) == 0 {
		u.Extra = map[string][]string{}
		for range r.IntN(3) {
			u.Extra[randString(r)] = randStrings(r)
		}
	}
	return u
}

func randEvent(r *rand.Rand) *Event {
	e := &Event{Kind: "Event", APIVersion: "audit.k8s.io/v1", Level: LevelMetadata, AuditID: randString(r), Stage: StageResponseComplete,
		RequestURI: randString(r), Verb: randString(r), User: randUser(r), SourceIPs: randStrings(r), UserAgent: randString(r),
		RequestReceivedTimestamp: MicroTime(time.Unix(r.Int64N(4e9), r.Int64N(1e9))), StageTimestamp: MicroTime(time.Unix(r.Int64N(4e9), r.Int64N(1e9)).In(time.FixedZone("x", 3600)))}
	if r.IntN(2) == 0 {
		u := randUser(r)
		e.ImpersonatedUser = &u
	}
	if r.IntN(2) == 0 {
		e.ObjectRef = &ObjectReference{Resource: randString(r), Namespace: randString(r), Name: randString(r), APIGroup: randString(r), APIVersion: randString(r), Subresource: randString(r)}
	}
	if r.IntN(2) == 0 {
		e.ResponseStatus = &ResponseStatus{Status: randString(r), Message: randString(r), Reason: randString(r), Code: r.IntN(600) - 50}
	}
	if r.IntN(2) == 0 {
		e.Annotations = map[string]string{}
		for range r.IntN(4) {
			e.Annotations[randString(r)] = randString(r)
		}
	}
	return e
}

// The log's own encoder writes every event byte for byte as json.Marshal
// does (the format upstream's tools read).
func TestEncodeMatchesEncodingJSON(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for i := range 20000 {
		e := randEvent(r)
		want, err := json.Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		got, ok := e.appendJSON(nil)
		if !ok {
			t.Fatalf("event %d: not encoded", i)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("event %d:\n got %s\nwant %s", i, got, want)
		}
	}
}

// Events with objects go to encoding/json, which compacts them.
func TestEncodeLeavesObjectsToEncodingJSON(t *testing.T) {
	e := &Event{RequestObject: json.RawMessage(`{"a": 1}`)}
	if _, ok := e.appendJSON(nil); ok {
		t.Fatal("an event with a request object was encoded by appendJSON")
	}
	var buf bytes.Buffer
	l := &Log{w: &buf}
	if err := l.Write(e); err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(buf.Bytes(), []byte(`"requestObject":{"a":1}`)) {
		t.Fatalf("log line %s", buf.Bytes())
	}
}

func BenchmarkEncode(b *testing.B) {
	e := randEvent(rand.New(rand.NewPCG(3, 4)))
	b.Run("appendJSON", func(b *testing.B) {
		buf := make([]byte, 0, 1024)
		for b.Loop() {
			buf, _ = e.appendJSON(buf[:0])
		}
	})
	b.Run("json.Marshal", func(b *testing.B) {
		for b.Loop() {
			_, _ = json.Marshal(e)
		}
	})
}
