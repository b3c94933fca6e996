package auth

import (
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func TestTokenFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tokens.csv")
	os.WriteFile(path, []byte("s3cret,alice,u1,\"dev,ops\"\nother,bob,u2\n"), 0o600)
	a, err := New(path)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		header string
		user   string
		ok     bool
		group  string
		bad    bool
	}{
		{"Bearer s3cret", "alice", true, "ops", false},
		{"Bearer other", "bob", true, "system:authenticated", false},
		{"Bearer wrong", "", false, "", true},
		{"Basic YTpi", "", false, "", true},
		{"", "", false, "", false}, // anonymous: no credentials at all
	}
	for _, c := range cases {
		r := httptest.NewRequest("GET", "/api", nil)
		if c.header != "" {
			r.Header.Set("Authorization", c.header)
		}
		u, ok, err := a.Authenticate(r)
		if ok != c.ok || u.Name != c.user || (c.ok && !slices.Contains(u.Groups, c.group)) || (err != nil) != c.bad {
			t.Errorf("%q: got %+v %v %v", c.header, u, ok, err)
		}
	}
}

func TestMalformedTokenFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tokens.csv")
	os.WriteFile(path, []byte("onlytoken\n"), 0o600)
	if _, err := New(path); err == nil {
		t.Fatal("want error for a line without user and uid")
	}
}
