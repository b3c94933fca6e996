package controlplane

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/skiff-sh/skiff/internal/join"
)

// The server-join endpoints hand out the cluster's keys: only to a POST
// with the server token, never to the node token or anyone else.
func TestBootstrapEndpointsNeedTheServerToken(t *testing.T) {
	dir := t.TempDir()
	for _, f := range []string{"pki/ca.crt", "pki/ca.key", "node-token", serverTokenFile} {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, f)), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, f), []byte("content of "+f), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	// Something of the data dir that is not shared.
	if err := os.WriteFile(filepath.Join(dir, "admin.kubeconfig"), []byte("secret"), 0o600); err != nil {
		t.Fatal(err)
	}
	serverToken := join.Token{CAHash: strings.Repeat("a", 64), ID: "abcdef", Secret: "0123456789abcdef"}
	nodeToken := join.Token{CAHash: serverToken.CAHash, ID: "ghijkl", Secret: "fedcba9876543210"}
	s := &server{cfg: Config{DataDir: dir}}
	h := s.bootstrapHandlers(serverToken)[BootstrapPath]
	for name, tc := range map[string]struct {
		method, bearer string
		code           int
	}{
		"no token":     {http.MethodPost, "", http.StatusUnauthorized},
		"node token":   {http.MethodPost, nodeToken.Bearer(), http.StatusUnauthorized},
		"GET":          {http.MethodGet, serverToken.Bearer(), http.StatusMethodNotAllowed},
		"server token": {http.MethodPost, serverToken.Bearer(), http.StatusOK},
	} {
		t.Run(name, func(t *testing.T) {
			req := httptest.NewRequest(tc.method, BootstrapPath, nil)
			if tc.bearer != "" {
				req.Header.Set("Authorization", "Bearer "+tc.bearer)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != tc.code {
				t.Fatalf("code %d, want %d: %s", rec.Code, tc.code, rec.Body)
			}
			if tc.code != http.StatusOK {
				if strings.Contains(rec.Body.String(), "content of") {
					t.Errorf("a refused request got files: %s", rec.Body)
				}
				return
			}
			var files map[string][]byte
			if err := json.Unmarshal(rec.Body.Bytes(), &files); err != nil {
				t.Fatal(err)
			}
			if string(files["pki/ca.key"]) != "content of pki/ca.key" || len(files) != 4 {
				t.Errorf("files: %v", files)
			}
			if _, ok := files["admin.kubeconfig"]; ok {
				t.Error("a file that is not shared was handed out")
			}
		})
	}
}

func TestStillMember(t *testing.T) {
	members := []EtcdMember{
		{Name: "s1", PeerURLs: []string{"https://10.0.0.1:2380"}},
		{Name: "s2", PeerURLs: []string{"https://10.0.0.2:2380"}, Learner: true},
	}
	for _, tc := range []struct {
		name    string
		members []EtcdMember
		peer    string
		want    bool
	}{
		{"listed: a plain restart keeps its data", members, "https://10.0.0.1:2380", true},
		{"listed as a learner not yet promoted", members, "https://10.0.0.2:2380", true},
		{"not listed: restored, reset or removed", members, "https://10.0.0.3:2380", false},
		{"a one-member cluster restored elsewhere", members[:1], "https://10.0.0.2:2380", false},
	} {
		if got := stillMember(tc.members, tc.peer); got != tc.want {
			t.Errorf("%s: stillMember = %v, want %v", tc.name, got, tc.want)
		}
	}
}
