package controlplane

import (
	"bytes"
	"context"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/utils/ptr"

	clientv3 "go.etcd.io/etcd/client/v3"
	"golang.org/x/sys/unix"

	"github.com/skiff-sh/skiff/internal/join"
	"github.com/skiff-sh/skiff/internal/registry"
	"github.com/skiff-sh/skiff/internal/storage"
)

// Server-join endpoints. They sit before the API's authentication (a
// joining server holds no credential of the cluster yet) and answer only
// to the server token, which no API identity has.
const (
	// BootstrapPath (POST) answers the files every server shares.
	BootstrapPath = "/skiff/v1/bootstrap"
	// BootstrapMemberPath (POST memberRequest) adds the joining server's
	// etcd as a learner and answers the initial cluster it starts with.
	BootstrapMemberPath = "/skiff/v1/bootstrap/etcd-member"
	// BootstrapPromotePath (POST promoteRequest) promotes a caught-up
	// learner to a voting member.
	BootstrapPromotePath = "/skiff/v1/bootstrap/etcd-promote"
	// BootstrapRemovePath (POST memberRequest, peerURL only) removes a
	// leaving server's etcd member.
	BootstrapRemovePath = "/skiff/v1/bootstrap/etcd-remove"
	// BootstrapMembersPath (POST, no body) lists the etcd members, for a
	// server that starts with etcd data to learn whether it is still one.
	BootstrapMembersPath = "/skiff/v1/bootstrap/etcd-members"
	// EtcdMembersPath (GET, cluster-admin) lists the etcd members.
	EtcdMembersPath = "/skiff/v1/etcd-members"
)

// EtcdMember is one member as EtcdMembersPath lists it.
type EtcdMember struct {
	ID       string   `json:"id"`
	Name     string   `json:"name"`
	PeerURLs []string `json:"peerURLs"`
	Learner  bool     `json:"learner"`
}

// serverTokenFile holds the token servers join with (agents use
// node-token, which grants only node certificates).
const serverTokenFile = "server-token"

// sharedFiles are the files of the data dir every server of a cluster
// holds the same: the CAs and their keys, the ServiceAccount signing key,
// the encryption keys and both join tokens. A joining server receives
// them before it makes anything of its own.
var sharedFiles = []string{
	"pki/ca.crt", "pki/ca.key", "pki/request-header/ca.crt", "pki/request-header/ca.key",
	"pki/etcd/ca.crt", "pki/etcd/ca.key", "pki/sa.key", "pki/encryption-config.yaml",
	"node-token", serverTokenFile,
}

// haMarker records in the data dir that this server's etcd is (or was
// made) a member of a cluster of servers, so restarts keep its peer
// address on the network without the flags that made it so.
const haMarker = "etcd-cluster"

type memberRequest struct {
	Name    string `json:"name"`
	PeerURL string `json:"peerURL"`
}

type memberAnswer struct {
	InitialCluster string `json:"initialCluster"`
	Error          string `json:"error,omitempty"`
}

type promoteRequest struct {
	ID uint64 `json:"id"`
}

// bootstrapHandlers serve the server-join endpoints.
func (s *server) bootstrapHandlers(token join.Token) map[string]http.Handler {
	guard := func(h func(w http.ResponseWriter, r *http.Request) (any, error)) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			if r.Method != http.MethodPost {
				w.WriteHeader(http.StatusMethodNotAllowed)
				_ = json.NewEncoder(w).Encode(map[string]string{"error": "POST only"})
				return
			}
			bearer := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
			if subtle.ConstantTimeCompare([]byte(bearer), []byte(token.Bearer())) != 1 {
				w.WriteHeader(http.StatusUnauthorized)
				_ = json.NewEncoder(w).Encode(map[string]string{"error": "a server token is required"})
				return
			}
			out, err := h(w, r)
			if err != nil {
				w.WriteHeader(http.StatusConflict)
				_ = json.NewEncoder(w).Encode(map[string]string{"error": err.Error()})
				return
			}
			_ = json.NewEncoder(w).Encode(out)
		})
	}
	return map[string]http.Handler{
		BootstrapPath: guard(func(http.ResponseWriter, *http.Request) (any, error) {
			return readSharedFiles(s.cfg.DataDir)
		}),
		BootstrapMemberPath: guard(func(_ http.ResponseWriter, r *http.Request) (any, error) {
			var req memberRequest
			if err := json.NewDecoder(io.LimitReader(r.Body, 1<<16)).Decode(&req); err != nil || req.Name == "" || req.PeerURL == "" {
				return nil, fmt.Errorf("want {name, peerURL}")
			}
			if s.etcd == nil {
				return nil, fmt.Errorf("this server uses an external etcd: start the new server with the same --etcd-endpoints")
			}
			return s.addLearner(r.Context(), req)
		}),
		BootstrapMembersPath: guard(func(_ http.ResponseWriter, r *http.Request) (any, error) {
			if s.etcd == nil {
				return nil, fmt.Errorf("this server uses an external etcd")
			}
			return s.etcdMembers(r.Context())
		}),
		BootstrapRemovePath: guard(func(_ http.ResponseWriter, r *http.Request) (any, error) {
			var req memberRequest
			if err := json.NewDecoder(io.LimitReader(r.Body, 1<<16)).Decode(&req); err != nil || req.PeerURL == "" {
				return nil, fmt.Errorf("want {peerURL}")
			}
			return map[string]string{}, s.removeMember(r.Context(), req.PeerURL)
		}),
		BootstrapPromotePath: guard(func(_ http.ResponseWriter, r *http.Request) (any, error) {
			var req promoteRequest
			if err := json.NewDecoder(io.LimitReader(r.Body, 1<<16)).Decode(&req); err != nil || req.ID == 0 {
				return nil, fmt.Errorf("want {id}")
			}
			_, err := s.client.MemberPromote(r.Context(), req.ID)
			return map[string]string{}, err
		}),
	}
}

// addLearner adds a member as a learner (again the same answer when it is
// already there, for a server retrying its join) and answers the initial
// cluster it must start with.
func (s *server) addLearner(ctx context.Context, req memberRequest) (memberAnswer, error) {
	list, err := s.client.MemberList(ctx)
	if err != nil {
		return memberAnswer{}, err
	}
	found := false
	for _, m := range list.Members {
		for _, u := range m.PeerURLs {
			if u == req.PeerURL {
				found = true
			}
		}
		if m.Name == req.Name && !found {
			return memberAnswer{}, fmt.Errorf("an etcd member named %q already exists with another address %v: remove it first", req.Name, m.PeerURLs)
		}
	}
	if !found {
		if _, err := s.client.MemberAddAsLearner(ctx, []string{req.PeerURL}); err != nil {
			return memberAnswer{}, fmt.Errorf("add etcd learner %s: %w", req.PeerURL, err)
		}
		if list, err = s.client.MemberList(ctx); err != nil {
			return memberAnswer{}, err
		}
	}
	var parts []string
	for _, m := range list.Members {
		name := m.Name
		for _, u := range m.PeerURLs {
			if u == req.PeerURL {
				name = req.Name
			}
		}
		if name == "" {
			name = fmt.Sprintf("pending-%x", m.ID)
		}
		for _, u := range m.PeerURLs {
			parts = append(parts, name+"="+u)
		}
	}
	sort.Strings(parts)
	s.log.Info("etcd learner added", "name", req.Name, "peer", req.PeerURL)
	return memberAnswer{InitialCluster: strings.Join(parts, ",")}, nil
}

// joinClient talks to the server a new server joins through, trusting the
// CA the token names and presenting the token.
type joinClient struct {
	server string
	token  join.Token
	http   *http.Client
}

func newJoinClient(ctx context.Context, server string, token join.Token) (*joinClient, error) {
	caPEM, err := join.FetchCA(ctx, server, token)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	return &joinClient{server: strings.TrimSuffix(server, "/"), token: token,
		http: &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}}}, nil
}

func (c *joinClient) post(ctx context.Context, path string, in, out any) error {
	body, _ := json.Marshal(in)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.server+path, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+c.token.Bearer())
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Error string `json:"error"`
		}
		_ = json.Unmarshal(raw, &e)
		if resp.StatusCode == http.StatusUnauthorized {
			return fmt.Errorf("%s refused the token: use the server token (%s in the first server's data dir), not the node token", c.server, serverTokenFile)
		}
		return fmt.Errorf("%s%s: %s %s", c.server, path, resp.Status, e.Error)
	}
	return json.Unmarshal(raw, out)
}

// fetchShared writes the cluster's shared files into a new server's data
// dir. A data dir that already holds a CA is left alone: it must be this
// cluster's (checked against the token's hash).
func fetchShared(ctx context.Context, cfg Config, c *joinClient) error {
	if b, err := os.ReadFile(filepath.Join(cfg.DataDir, "pki", "ca.crt")); err == nil {
		der, err := firstCertDER(b)
		if err != nil || !c.token.MatchesCA(der) {
			return fmt.Errorf("the data dir %s belongs to another cluster (its CA is not the one the token names): use a fresh data dir to join", cfg.DataDir)
		}
		// This cluster's data dir (a restart, or a server that left
		// and joins again): it is a member of a cluster of servers.
		return os.WriteFile(filepath.Join(cfg.DataDir, haMarker), []byte("joined through "+c.server+"\n"), 0o600)
	}
	var files map[string][]byte
	if err := c.post(ctx, BootstrapPath, struct{}{}, &files); err != nil {
		return err
	}
	if err := writeSharedFiles(cfg.DataDir, files); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(cfg.DataDir, haMarker), []byte("joined through "+c.server+"\n"), 0o600)
}

// readSharedFiles are the data dir's shared files that exist, by name.
func readSharedFiles(dataDir string) (map[string][]byte, error) {
	files := map[string][]byte{}
	for _, f := range sharedFiles {
		b, err := os.ReadFile(filepath.Join(dataDir, f))
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		files[f] = b
	}
	return files, nil
}

// writeSharedFiles writes the shared files given (mode 0600); names that
// are not shared files are ignored.
func writeSharedFiles(dataDir string, files map[string][]byte) error {
	for _, f := range sharedFiles {
		b, ok := files[f]
		if !ok {
			continue
		}
		path := filepath.Join(dataDir, f)
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return err
		}
		if err := os.WriteFile(path, b, 0o600); err != nil {
			return err
		}
	}
	return nil
}

func firstCertDER(pemBytes []byte) ([]byte, error) {
	block, _ := pem.Decode(pemBytes)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, fmt.Errorf("not a PEM certificate")
	}
	return block.Bytes, nil
}

// joinRetry bounds how long a join waits for the cluster to accept a new
// member: etcd refuses a change of membership until the last one settled
// (servers joining one after the other).
const joinRetry = 2 * time.Minute

// addMember asks for this server's etcd membership, again while etcd
// refuses because an earlier change has not settled.
func (c *joinClient) addMember(ctx context.Context, req memberRequest, ans *memberAnswer, log *slog.Logger) error {
	deadline := time.Now().Add(joinRetry)
	for {
		err := c.post(ctx, BootstrapMemberPath, req, ans)
		if err == nil || !strings.Contains(err.Error(), "unhealthy cluster") || time.Now().After(deadline) {
			return err
		}
		log.Info("the etcd cluster is settling an earlier change; asking again", "err", err)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

// promote asks the cluster to promote this learner until it has caught
// up (etcd refuses until then).
func (c *joinClient) promote(ctx context.Context, id uint64, isLearner func() bool) error {
	deadline := time.Now().Add(5 * time.Minute)
	var last error
	for isLearner() {
		if time.Now().After(deadline) {
			return fmt.Errorf("the etcd learner was not promoted: %w", last)
		}
		if last = c.post(ctx, BootstrapPromotePath, promoteRequest{ID: id}, &map[string]string{}); last == nil {
			break
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
	// The member sees its promotion once it applies it.
	for isLearner() && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	return nil
}

// prepareCluster readies the data dir of a server that starts a cluster
// of servers (--cluster-init: the marker) or joins one (--server: the
// shared files fetched, the marker written), before anything reads it.
func (s *server) prepareCluster() error {
	cfg := s.cfg
	if cfg.JoinServer != "" && cfg.ClusterInit {
		return fmt.Errorf("--cluster-init starts a new cluster; --server joins one: give one of them")
	}
	if cfg.JoinServer != "" && len(cfg.EtcdEndpoints) > 0 {
		return fmt.Errorf("--server joins the embedded etcd of another server; with --etcd-endpoints servers share the external etcd: start the others with --etcd-endpoints and --token (the first server's server token) instead")
	}
	if cfg.ClusterInit {
		if len(cfg.EtcdEndpoints) > 0 {
			return fmt.Errorf("--cluster-init makes the embedded etcd a cluster; an external etcd (--etcd-endpoints) is one already")
		}
		return os.WriteFile(filepath.Join(cfg.DataDir, haMarker), []byte("cluster-init\n"), 0o600)
	}
	if len(cfg.EtcdEndpoints) > 0 {
		return s.prepareExternal()
	}
	if cfg.JoinServer == "" {
		return nil
	}
	token, err := join.Parse(cfg.JoinToken)
	if err != nil {
		return fmt.Errorf("--token: %w (the first server writes it to <data-dir>/%s)", err, serverTokenFile)
	}
	restart := false
	if _, err := os.Stat(filepath.Join(cfg.DataDir, "etcd")); err == nil {
		restart = true
	}
	wait := 2 * time.Minute
	if restart {
		wait = 15 * time.Second
	}
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	c, err := newJoinClient(ctx, cfg.JoinServer, token)
	if err != nil && restart {
		// A server that already holds its etcd data starts from it: the
		// server it once joined through may be the one that is down.
		s.log.Warn("the server to join through is not reachable; starting from this server's own etcd data", "server", cfg.JoinServer, "err", err)
		return nil
	}
	if err != nil {
		return err
	}
	if err := fetchShared(ctx, cfg, c); err != nil {
		return err
	}
	s.joiner = c
	return nil
}

// Master leases: every server keeps a key named by its address under
// masterLeasePrefix, bound to an etcd lease it renews while it runs; the
// kubernetes Service's endpoints list the addresses whose keys live, as
// upstream's lease endpoint reconciler keeps them.
const (
	masterLeasePrefix   = "/registry/masterleases/"
	masterLeaseTTL      = 15 // seconds
	endpointsReconcile  = 5 * time.Second
	masterLeaseRetry    = time.Second
	masterLeaseRevokeIn = 2 * time.Second
)

// keepMasterLease keeps this server's key alive until ctx ends, then
// revokes it so the others drop this address at once.
func (s *server) keepMasterLease(ctx context.Context) {
	key := masterLeasePrefix + s.advertise.String()
	var last clientv3.LeaseID
	defer func() {
		if last != 0 {
			rctx, cancel := context.WithTimeout(context.Background(), masterLeaseRevokeIn)
			_, _ = s.client.Revoke(rctx, last)
			cancel()
		}
	}()
	for ctx.Err() == nil {
		lease, err := s.client.Grant(ctx, masterLeaseTTL)
		if err == nil {
			last = lease.ID
			_, err = s.client.Put(ctx, key, s.advertise.String(), clientv3.WithLease(lease.ID))
		}
		if err == nil {
			var alive <-chan *clientv3.LeaseKeepAliveResponse
			if alive, err = s.client.KeepAlive(ctx, lease.ID); err == nil {
				for range alive {
				}
			}
		}
		if err != nil && ctx.Err() == nil {
			s.log.Warn("master lease", "err", err)
		}
		select {
		case <-ctx.Done():
		case <-time.After(masterLeaseRetry):
		}
	}
}

// keepKubernetesEndpoints makes the kubernetes Service's Endpoints and
// EndpointSlice list the live servers, until ctx ends.
func (s *server) keepKubernetesEndpoints(ctx context.Context) {
	t := time.NewTicker(endpointsReconcile)
	defer t.Stop()
	for {
		if err := s.reconcileKubernetesEndpoints(ctx); err != nil && ctx.Err() == nil {
			s.log.Warn("kubernetes endpoints", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (s *server) reconcileKubernetesEndpoints(ctx context.Context) error {
	resp, err := s.client.Get(ctx, masterLeasePrefix, clientv3.WithPrefix())
	if err != nil {
		return err
	}
	var ips []string
	for _, kv := range resp.Kvs {
		ips = append(ips, strings.TrimPrefix(string(kv.Key), masterLeasePrefix))
	}
	if len(ips) == 0 {
		return nil // not even this server's yet
	}
	sort.Strings(ips)
	port := int32(s.cfg.SecurePort)
	epRes := s.reg.Lookup(corev1.SchemeGroupVersion.WithResource("endpoints"))
	if o := s.reg.Cache(epRes).Get(epRes.Key("default", "kubernetes")); o != nil && !sameAddresses(o.Obj.(*corev1.Endpoints), ips) {
		if _, _, err := s.reg.Update(ctx, epRes, "default", "kubernetes", func(cur runtime.Object) (runtime.Object, error) {
			if cur == nil {
				return nil, apierrors.NewNotFound(epRes.GroupResource(), "kubernetes")
			}
			ep := cur.(*corev1.Endpoints).DeepCopy()
			sub := corev1.EndpointSubset{Ports: []corev1.EndpointPort{{Name: "https", Port: port, Protocol: corev1.ProtocolTCP}}}
			for _, ip := range ips {
				sub.Addresses = append(sub.Addresses, corev1.EndpointAddress{IP: ip})
			}
			ep.Subsets = []corev1.EndpointSubset{sub}
			return ep, nil
		}, registry.WriteOptions{FieldManager: "kube-apiserver"}, false); err != nil {
			return err
		}
	}
	sliceRes := s.reg.Lookup(discoveryv1.SchemeGroupVersion.WithResource("endpointslices"))
	if o := s.reg.Cache(sliceRes).Get(sliceRes.Key("default", "kubernetes")); o != nil && !sameSliceAddresses(o.Obj.(*discoveryv1.EndpointSlice), ips) {
		if _, _, err := s.reg.Update(ctx, sliceRes, "default", "kubernetes", func(cur runtime.Object) (runtime.Object, error) {
			if cur == nil {
				return nil, apierrors.NewNotFound(sliceRes.GroupResource(), "kubernetes")
			}
			sl := cur.(*discoveryv1.EndpointSlice).DeepCopy()
			sl.Endpoints = nil
			for _, ip := range ips {
				sl.Endpoints = append(sl.Endpoints, discoveryv1.Endpoint{Addresses: []string{ip}, Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true)}})
			}
			return sl, nil
		}, registry.WriteOptions{FieldManager: "kube-apiserver"}, false); err != nil {
			return err
		}
	}
	return nil
}

func sameAddresses(ep *corev1.Endpoints, ips []string) bool {
	var have []string
	for _, sub := range ep.Subsets {
		for _, a := range sub.Addresses {
			have = append(have, a.IP)
		}
	}
	sort.Strings(have)
	return slices.Equal(have, ips)
}

func sameSliceAddresses(sl *discoveryv1.EndpointSlice, ips []string) bool {
	var have []string
	for _, e := range sl.Endpoints {
		have = append(have, e.Addresses...)
	}
	sort.Strings(have)
	return slices.Equal(have, ips)
}

// removeMember removes the etcd member at peerURL (a server leaving);
// this server's own member cannot leave through itself.
func (s *server) removeMember(ctx context.Context, peerURL string) error {
	list, err := s.client.MemberList(ctx)
	if err != nil {
		return err
	}
	for _, m := range list.Members {
		if !slices.Contains(m.PeerURLs, peerURL) {
			continue
		}
		if s.etcd != nil && m.ID == s.etcd.ID() {
			return fmt.Errorf("%s is this server's own member: leave through another server", peerURL)
		}
		if _, err := s.client.MemberRemove(ctx, m.ID); err != nil {
			return fmt.Errorf("remove etcd member %s: %w", peerURL, err)
		}
		s.log.Info("etcd member removed", "name", m.Name, "peer", peerURL)
		return nil
	}
	return fmt.Errorf("no etcd member has the peer address %s", peerURL)
}

// etcdMembers lists the etcd members by name.
func (s *server) etcdMembers(ctx context.Context) ([]EtcdMember, error) {
	list, err := s.client.MemberList(ctx)
	if err != nil {
		return nil, err
	}
	out := []EtcdMember{}
	for _, m := range list.Members {
		out = append(out, EtcdMember{ID: fmt.Sprintf("%x", m.ID), Name: m.Name, PeerURLs: m.PeerURLs, Learner: m.IsLearner})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// membersHandler lists the etcd members (a skiff operation: cluster-admin).
func (s *server) membersHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		out, err := s.etcdMembers(r.Context())
		if err != nil {
			w.WriteHeader(http.StatusServiceUnavailable)
			_ = json.NewEncoder(w).Encode(map[string]string{"error": err.Error()})
			return
		}
		_ = json.NewEncoder(w).Encode(out)
	})
}

// stillMember decides what a server that starts with etcd data and
// --server does with that data: keep it while the cluster it joins through
// lists this member's peer address (a plain restart), or set it aside and
// join afresh when it does not (the cluster was restored from a snapshot
// or reset, or this member was removed): such data can never rejoin, as
// its member is not in the cluster's list. Not knowing (the other server
// unreachable, or without quorum) keeps the data.
func stillMember(members []EtcdMember, peerURL string) bool {
	for _, m := range members {
		for _, u := range m.PeerURLs {
			if u == peerURL {
				return true
			}
		}
	}
	return false
}

// members lists the etcd members of the cluster c joins through.
func (c *joinClient) members(ctx context.Context) ([]EtcdMember, error) {
	var out []EtcdMember
	err := c.post(ctx, BootstrapMembersPath, struct{}{}, &out)
	return out, err
}

// Leave takes a stopped server out of its cluster of servers: another
// server (cfg.JoinServer) removes its etcd member, and its etcd data is
// set aside (etcd.left-<time>) so that it cannot start as a member again.
func Leave(ctx context.Context, cfg Config, log *slog.Logger) error {
	if cfg.JoinServer == "" {
		return fmt.Errorf("--leave needs --server: the URL of a server that stays")
	}
	raw, err := os.ReadFile(filepath.Join(cfg.DataDir, serverTokenFile))
	if err != nil {
		return fmt.Errorf("this data dir holds no server token (%w): is it a server's?", err)
	}
	token, err := join.Parse(string(raw))
	if err != nil {
		return err
	}
	adv, err := advertiseIP(cfg.AdvertiseIP)
	if err != nil {
		return err
	}
	// A running member holds its database locked: removing it would stop
	// it under its server.
	if f, err := os.Open(filepath.Join(cfg.DataDir, "etcd", "member", "snap", "db")); err == nil {
		locked := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB) != nil
		f.Close()
		if locked {
			return fmt.Errorf("the server of %s still runs: stop it, then leave", cfg.DataDir)
		}
	}
	c, err := newJoinClient(ctx, cfg.JoinServer, token)
	if err != nil {
		return err
	}
	peer := "https://" + net.JoinHostPort(adv.String(), strconv.Itoa(cfg.EtcdPeerPort))
	if err := c.post(ctx, BootstrapRemovePath, memberRequest{PeerURL: peer}, &map[string]string{}); err != nil {
		return err
	}
	etcdDir := filepath.Join(cfg.DataDir, "etcd")
	kept := etcdDir + ".left-" + strconv.FormatInt(time.Now().Unix(), 10)
	if err := os.Rename(etcdDir, kept); err != nil && !os.IsNotExist(err) {
		return err
	}
	_ = os.Remove(filepath.Join(cfg.DataDir, haMarker))
	log.Info("left the cluster of servers", "peer", peer, "etcd_data_kept_in", kept)
	return nil
}

// removeMembersOfDeletedNodes removes the etcd member of a server whose
// Node is deleted (a server with a node agent is named for its Node), as
// `kubectl delete node` takes a server out of a k3s cluster. Deletions are
// events: a member whose server has not registered its Node yet is never
// mistaken for a deleted one.
func (s *server) removeMembersOfDeletedNodes(ctx context.Context) {
	res := s.reg.Lookup(corev1.SchemeGroupVersion.WithResource("nodes"))
	cache := s.reg.Cache(res)
	for ctx.Err() == nil {
		if !cache.Ready() {
			time.Sleep(100 * time.Millisecond)
			continue
		}
		w, _, _, err := cache.Watch(storage.Filter{}, cache.RV(), false)
		if err != nil {
			time.Sleep(time.Second)
			continue
		}
		func() {
			defer w.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case ev, ok := <-w.Events():
					if !ok {
						return
					}
					if ev.Type != watch.Deleted || ev.Obj == nil {
						continue
					}
					name := ev.Obj.Obj.(*corev1.Node).Name
					go func() {
						// etcd refuses a change of membership until the
						// last one settled: ask again for a while.
						deadline := time.Now().Add(joinRetry)
						for {
							err := s.removeMemberNamed(ctx, name)
							if err == nil || ctx.Err() != nil {
								return
							}
							if !strings.Contains(err.Error(), "unhealthy cluster") || time.Now().After(deadline) {
								s.log.Warn("remove the etcd member of a deleted node", "node", name, "err", err)
								return
							}
							time.Sleep(time.Second)
						}
					}()
				}
			}
		}()
	}
}

// removeMemberNamed removes the member called name, if there is one.
func (s *server) removeMemberNamed(ctx context.Context, name string) error {
	list, err := s.client.MemberList(ctx)
	if err != nil {
		return err
	}
	for _, m := range list.Members {
		if m.Name != name {
			continue
		}
		if len(list.Members) == 1 {
			return fmt.Errorf("member %s is the last one: nothing would be left", name)
		}
		if _, err := s.client.MemberRemove(ctx, m.ID); err != nil && !strings.Contains(err.Error(), "member not found") {
			return err
		}
		s.log.Info("etcd member of a deleted node removed", "member", name)
	}
	return nil
}
