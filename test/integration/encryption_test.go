package integration

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// etcdValue is the raw value skiff keeps at key.
func (s *server) etcdValue(t *testing.T, key string) []byte {
	t.Helper()
	c := s.etcdClient()
	defer c.Close()
	resp, err := c.Get(context.Background(), key)
	if err != nil || len(resp.Kvs) != 1 {
		t.Fatalf("etcd %s: %v %v", key, resp, err)
	}
	return resp.Kvs[0].Value
}

// TestSecretsEncryptedByDefault: a new cluster keeps Secrets in etcd only
// sealed (secretbox, with a key made in the data dir), reads them back
// through kubectl, and leaves other kinds as they were.
func TestSecretsEncryptedByDefault(t *testing.T) {
	s := startServer(t)
	s.mustKubectl("create", "secret", "generic", "db", "--from-literal=password=hunter2-plain")
	s.mustKubectl("create", "configmap", "settings", "--from-literal=mode=visible-plain")
	raw := s.etcdValue(t, "/registry/secrets/default/db")
	if !bytes.HasPrefix(raw, []byte("k8s:enc:secretbox:v1:key-")) || bytes.Contains(raw, []byte("hunter2-plain")) {
		t.Errorf("the Secret in etcd: %q", raw)
	}
	if got := s.mustKubectl("get", "secret", "db", "-o", "jsonpath={.data.password}"); got != base64.StdEncoding.EncodeToString([]byte("hunter2-plain")) {
		t.Errorf("read back: %q", got)
	}
	if raw := s.etcdValue(t, "/registry/configmaps/default/settings"); !bytes.Contains(raw, []byte("visible-plain")) {
		t.Errorf("a ConfigMap was encrypted too: %q", raw)
	}
	if fi, err := os.Stat(filepath.Join(s.dataDir, "pki", "encryption-config.yaml")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("the key file: %v %v", fi, err)
	}
}

const encryptionHead = "apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources:\n- resources: [secrets, configmaps]\n  providers:\n"

// TestEncryptionProviderConfig: upstream's EncryptionConfiguration file
// with aesgcm; a new key put first seals new writes while the old one still
// reads; a config that lost the key serves everything else and says which
// key it lacks for what it cannot read; a malformed file stops the server
// naming the file, line and field.
func TestEncryptionProviderConfig(t *testing.T) {
	dir := t.TempDir()
	k1 := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{7}, 32))
	k2 := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{9}, 32))
	file := filepath.Join(dir, "enc.yaml")
	write := func(providers string) {
		if err := os.WriteFile(file, []byte(encryptionHead+providers), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("  - aesgcm: {keys: [{name: one, secret: " + k1 + "}]}\n")
	s := startServer(t, "--encryption-provider-config", file)
	ctx := context.Background()
	s.mustKubectl("create", "secret", "generic", "first", "--from-literal=k=v1")
	s.mustKubectl("create", "configmap", "cm", "--from-literal=k=v")
	if raw := s.etcdValue(t, "/registry/secrets/default/first"); !bytes.HasPrefix(raw, []byte("k8s:enc:aesgcm:v1:one:")) {
		t.Errorf("first secret: %q", raw[:30])
	}

	s.stop()
	write("  - aesgcm: {keys: [{name: two, secret: " + k2 + "}, {name: one, secret: " + k1 + "}]}\n")
	s.start()
	s.mustKubectl("create", "secret", "generic", "second", "--from-literal=k=v2")
	if raw := s.etcdValue(t, "/registry/secrets/default/second"); !bytes.HasPrefix(raw, []byte("k8s:enc:aesgcm:v1:two:")) {
		t.Errorf("second secret: %q", raw[:30])
	}
	if got := s.mustKubectl("get", "secret", "first", "-o", "jsonpath={.data.k}"); got != base64.StdEncoding.EncodeToString([]byte("v1")) {
		t.Errorf("the old key's secret: %q", got)
	}

	s.stop()
	write("  - aesgcm: {keys: [{name: two, secret: " + k2 + "}]}\n")
	s.start()
	_, err := s.client().CoreV1().Secrets("default").Get(ctx, "first", metav1.GetOptions{})
	if !apierrors.IsInternalError(err) || !strings.Contains(err.Error(), `aesgcm key "one"`) {
		t.Errorf("a secret of a lost key: %v, want a 500 naming the key", err)
	}
	if got := s.mustKubectl("get", "secret", "second", "-o", "jsonpath={.data.k}"); got != base64.StdEncoding.EncodeToString([]byte("v2")) {
		t.Errorf("the current key's secret: %q", got)
	}
	s.mustKubectl("get", "namespaces")

	write("  - aesgcm: {keys: [{name: bad, secret: c2hvcnQ=}]}\n")
	out, err := exec.Command(skiffBin, "server", "--data-dir", filepath.Join(dir, "data"), "--bind-address", "127.0.0.1", "--secure-port", "0",
		"--etcd-client-port", "0", "--etcd-peer-port", "0", "--disable-agent", "--encryption-provider-config", file).CombinedOutput()
	if want := file + ": line 6: resources[0].providers[0].aesgcm.keys[0].secret: Invalid value: a 5-byte key"; err == nil || !strings.Contains(string(out), want) {
		t.Errorf("a malformed file: %v %s, want %q", err, out, want)
	}
}

// secretsEncrypt runs `skiff secrets-encrypt` against s.
func (s *server) secretsEncrypt(args ...string) (string, error) {
	out, err := exec.Command(skiffBin, append([]string{"secrets-encrypt", "--data-dir", s.dataDir}, args...)...).CombinedOutput()
	return string(out), err
}

// makeSecrets creates n Secrets named s-<i> in namespace ns.
func makeSecrets(t *testing.T, s *server, ns string, n int) {
	t.Helper()
	cs := s.client()
	ctx := context.Background()
	var g errgroup.Group
	g.SetLimit(32)
	for i := range n {
		g.Go(func() error {
			_, err := cs.CoreV1().Secrets(ns).Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("s-%d", i)},
				StringData: map[string]string{"v": fmt.Sprintf("value-%d", i)}}, metav1.CreateOptions{})
			return err
		})
	}
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
}

// TestSecretsEncryptionRotation: `skiff secrets-encrypt rotate` seals every
// Secret with a new key and retires the old one while the server serves;
// a kill -9 in the middle of a rotation loses nothing, and rotating again
// finishes the job.
func TestSecretsEncryptionRotation(t *testing.T) {
	s := startServer(t)
	s.mustKubectl("create", "namespace", "rot")
	makeSecrets(t, s, "rot", 200)
	before, err := s.secretsEncrypt("status")
	if err != nil || !strings.Contains(before, "Encryption: default") || !strings.Contains(before, ": 200") {
		t.Fatalf("status: %v\n%s", err, before)
	}
	oldKey := strings.TrimSpace(strings.TrimPrefix(strings.Split(before, "\n")[1], "Write key:"))
	out, err := s.secretsEncrypt("rotate")
	if err != nil || !strings.Contains(out, "Rewritten:  200 Secrets") {
		t.Fatalf("rotate: %v\n%s", err, out)
	}
	newKey := strings.TrimSpace(strings.TrimPrefix(strings.Split(out, "\n")[1], "Write key:"))
	if newKey == oldKey || !strings.Contains(out, "Secrets sealed with "+newKey+": 200") || strings.Contains(out, "sealed with "+oldKey+":") {
		t.Errorf("after rotate (old %s):\n%s", oldKey, out)
	}
	conf, _ := os.ReadFile(filepath.Join(s.dataDir, "pki", "encryption-config.yaml"))
	if strings.Count(string(conf), "name: key-") != 1 {
		t.Errorf("the old key was not retired:\n%s", conf)
	}
	if raw := s.etcdValue(t, "/registry/secrets/rot/s-7"); !bytes.HasPrefix(raw, []byte("k8s:enc:"+strings.Replace(newKey, ":", ":v1:", 1)+":")) {
		t.Errorf("s-7 in etcd: %q", raw[:40])
	}
	if got := s.mustKubectl("-n", "rot", "get", "secret", "s-7", "-o", "jsonpath={.data.v}"); got != base64.StdEncoding.EncodeToString([]byte("value-7")) {
		t.Errorf("s-7 read back: %q", got)
	}

	// kill -9 while a rotation rewrites: wait for its first step (two keys
	// in the file), then kill.
	s.mustKubectl("create", "namespace", "bulk")
	makeSecrets(t, s, "bulk", 4000)
	rot := exec.Command(skiffBin, "secrets-encrypt", "--data-dir", s.dataDir, "rotate")
	if err := rot.Start(); err != nil {
		t.Fatal(err)
	}
	defer rot.Wait()
	deadline := time.Now().Add(settle)
	for {
		conf, _ := os.ReadFile(filepath.Join(s.dataDir, "pki", "encryption-config.yaml"))
		if strings.Count(string(conf), "name: key-") == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the rotation never added its key")
		}
		time.Sleep(5 * time.Millisecond)
	}
	s.kill()
	st, _ := os.ReadFile(filepath.Join(s.dataDir, "pki", "encryption-config.yaml"))
	if strings.Count(string(st), "name: key-") != 2 {
		t.Fatalf("the kill came after the rotation had finished: the test proves nothing\n%s", st)
	}
	s.start()
	cs := s.client()
	list, err := cs.CoreV1().Secrets("bulk").List(context.Background(), metav1.ListOptions{})
	if err != nil || len(list.Items) != 4000 {
		t.Fatalf("after the kill: %d secrets, %v", len(list.Items), err)
	}
	for _, sec := range list.Items {
		var i int
		fmt.Sscanf(sec.Name, "s-%d", &i)
		if string(sec.Data["v"]) != fmt.Sprintf("value-%d", i) {
			t.Fatalf("%s after the kill: %q", sec.Name, sec.Data["v"])
		}
	}
	out, err = s.secretsEncrypt("rotate")
	if err != nil || !strings.Contains(out, ": 4200") {
		t.Errorf("rotating again after the kill: %v\n%s", err, out)
	}
}
