package join

import (
	"path/filepath"
	"strings"
	"testing"
)

func TestTokenRoundTrip(t *testing.T) {
	ca := []byte("not really DER, but hashed all the same")
	path := filepath.Join(t.TempDir(), "node-token")
	tok, err := LoadOrCreate(path, ca)
	if err != nil {
		t.Fatal(err)
	}
	again, err := LoadOrCreate(path, ca)
	if err != nil || again != tok {
		t.Fatalf("second load = %v, %v; want the same token", again, err)
	}
	parsed, err := Parse(tok.String())
	if err != nil || parsed != tok {
		t.Fatalf("Parse(%q) = %v, %v", tok.String(), parsed, err)
	}
	if !parsed.MatchesCA(ca) || parsed.MatchesCA([]byte("another CA")) {
		t.Error("CA hash check is wrong")
	}
	other, _ := LoadOrCreate(path, []byte("a new CA"))
	if other == tok {
		t.Error("a token for an old CA was kept")
	}
	for _, bad := range []string{"", "K10abc::x.y", tok.ID + "." + tok.Secret, "K10" + tok.CAHash + "::short.secret"} {
		if _, err := Parse(bad); err == nil {
			t.Errorf("Parse(%q) accepted", bad)
		}
	}
}

func TestBalancerOrder(t *testing.T) {
	b, err := NewBalancer([]string{"https://10.0.0.1:6443", "https://10.0.0.2:6443"})
	if err != nil {
		t.Fatal(err)
	}
	b.setLearned([]string{"10.0.0.2:6443", "10.0.0.3:6443"})
	if got := strings.Join(b.Servers(), ","); got != "10.0.0.1:6443,10.0.0.2:6443,10.0.0.3:6443" {
		t.Errorf("order: %s", got)
	}
	b.good = "10.0.0.3:6443"
	if got := strings.Join(b.Servers(), ","); got != "10.0.0.3:6443,10.0.0.1:6443,10.0.0.2:6443" {
		t.Errorf("the last good server goes first: %s", got)
	}
	for _, bad := range []string{"http://x:1", "10.0.0.1:6443", ""} {
		if _, err := NewBalancer([]string{bad}); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
