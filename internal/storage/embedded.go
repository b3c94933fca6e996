package storage

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"time"

	"go.etcd.io/etcd/client/pkg/v3/transport"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.etcd.io/etcd/server/v3/etcdserver/api/v3client"
	"go.etcd.io/etcd/server/v3/storage/wal"
)

// EmbeddedConfig configures the etcd that runs inside skiff server.
type EmbeddedConfig struct {
	DataDir    string // etcd's own directory
	ClientPort int    // loopback client port (0: any free port, see Endpoint)
	PeerPort   int    // loopback peer port (0: any free port)
	Name       string
	// DiskReserve is the free space under which writes are refused
	// (0: DefaultDiskReserve).
	DiskReserve uint64
	// TLS, when set, serves the client and peer listeners over TLS and
	// asks every client and peer for a certificate its CA signed; without
	// it they are plain HTTP (tests only: the server always sets it).
	TLS *TLSFiles
	// PeerHost, when set, is the address the member listens on for peers
	// and advertises to them (a cluster of several servers); empty keeps
	// peers on loopback (one server).
	PeerHost string
	// InitialCluster (name=peerURL,...) and Existing join a member to a
	// cluster that exists, as the other members' MemberAdd announced it;
	// empty starts (or restarts) from this member's own data.
	InitialCluster string
	Existing       bool
	// ForceNewCluster starts the member as a new one-member cluster,
	// keeping its data (a cluster that lost quorum; --cluster-reset).
	ForceNewCluster bool
	// withoutGuard leaves the space guard off (tests that drive it).
	withoutGuard bool
}

// TLSFiles are a certificate, its key and the CA that clients' and peers'
// certificates must chain to.
type TLSFiles struct {
	CertFile, KeyFile, CAFile string
}

// Embedded is a running single-member etcd.
type Embedded struct {
	etcd      *embed.Etcd
	stopGuard context.CancelFunc
	guardDone chan struct{}
	closing   *atomic.Bool
	// Endpoint is the client URL to connect to.
	Endpoint string
}

// walSegmentBytes is the size of one etcd WAL segment file.
const walSegmentBytes = 8 << 20

// StartEmbedded starts etcd on loopback and waits until it serves.
func StartEmbedded(cfg EmbeddedConfig, log *slog.Logger) (*Embedded, error) {
	ec := embed.NewConfig()
	ec.Name = cfg.Name
	ec.Dir = cfg.DataDir
	ec.WalDir = filepath.Join(cfg.DataDir, "wal")
	scheme := "http"
	if t := cfg.TLS; t != nil {
		scheme = "https"
		info := transport.TLSInfo{CertFile: t.CertFile, KeyFile: t.KeyFile, TrustedCAFile: t.CAFile, ClientCertAuth: true}
		ec.ClientTLSInfo, ec.PeerTLSInfo = info, info
	}
	client := url.URL{Scheme: scheme, Host: fmt.Sprintf("127.0.0.1:%d", cfg.ClientPort)}
	peer := url.URL{Scheme: scheme, Host: fmt.Sprintf("127.0.0.1:%d", cfg.PeerPort)}
	if cfg.PeerHost != "" {
		peer.Host = net.JoinHostPort(cfg.PeerHost, strconv.Itoa(cfg.PeerPort))
	}
	ec.ListenClientUrls, ec.AdvertiseClientUrls = []url.URL{client}, []url.URL{client}
	ec.ListenPeerUrls, ec.AdvertisePeerUrls = []url.URL{peer}, []url.URL{peer}
	ec.InitialCluster = ec.InitialClusterFromName(cfg.Name)
	if cfg.InitialCluster != "" {
		ec.InitialCluster = cfg.InitialCluster
	}
	if cfg.Existing {
		ec.ClusterState = embed.ClusterStateFlagExisting
	}
	ec.ForceNewCluster = cfg.ForceNewCluster
	closing := new(atomic.Bool)
	ec.ZapLoggerBuilder = embed.NewZapLoggerBuilder(etcdLogger(log, closing))
	// Compact history older than five minutes, as upstream's apiserver does.
	ec.AutoCompactionMode = "periodic"
	ec.AutoCompactionRetention = "5m"
	// A single member on loopback has no peers to lose, so a short election
	// timeout is safe; it bounds how long a restart waits for leadership
	// (the randomized timeout is up to twice the election time).
	ec.TickMs = 20
	ec.ElectionMs = 200
	if cfg.PeerHost != "" {
		// Peers on a network: etcd's own defaults.
		ec.TickMs, ec.ElectionMs = 100, 1000
	}
	// etcd reads every retained WAL segment at start; smaller segments and
	// fewer of them keep a restart fast. Entries before the last snapshot are
	// in the backend already, so a single member needs no more. etcd exposes
	// the segment size only as a package variable.
	wal.SegmentSizeBytes = walSegmentBytes
	ec.MaxWalFiles = 2
	ec.QuotaBackendBytes = 8 << 30
	ec.MaxRequestBytes = 4 << 20
	stopReport := reportStart(log, cfg.DataDir, startProgressEvery)
	e, err := embed.StartEtcd(ec)
	if err != nil {
		stopReport()
		return nil, fmt.Errorf("start embedded etcd in %s: %w", cfg.DataDir, err)
	}
	select {
	case <-e.Server.ReadyNotify():
		stopReport()
	case err := <-e.Err():
		stopReport()
		e.Close()
		return nil, fmt.Errorf("embedded etcd: %w", err)
	case <-time.After(60 * time.Second):
		stopReport()
		e.Close()
		return nil, fmt.Errorf("embedded etcd in %s did not become ready in 60s", cfg.DataDir)
	}
	// Port 0 picks a free port; the endpoint is the listener's real address.
	client.Host = e.Clients[0].Addr().String()
	if cfg.PeerHost != "" {
		if err := advertisePeer(e, peer.String(), log); err != nil {
			e.Close()
			return nil, err
		}
	}
	log.Info("embedded etcd ready", "endpoint", client.String(), "dir", cfg.DataDir)
	reserve := cfg.DiskReserve
	if reserve == 0 {
		reserve = DefaultDiskReserve
	}
	ctx, stop := context.WithCancel(context.Background())
	em := &Embedded{etcd: e, Endpoint: client.String(), stopGuard: stop, closing: closing, guardDone: make(chan struct{})}
	guard := &spaceGuard{server: e.Server, dir: cfg.DataDir, reserve: reserve, log: log}
	go func() {
		defer close(em.guardDone)
		if !cfg.withoutGuard {
			guard.run(ctx)
		}
	}()
	return em, nil
}

// Client returns an in-process client: calls go straight to the etcd
// server's handlers, with no gRPC, socket or protobuf round trip. The
// loopback listener stays for etcdctl and other outside tools.
func (e *Embedded) Client() *clientv3.Client { return v3client.New(e.etcd.Server) }

// Close stops etcd, flushing its state.
func (e *Embedded) Close() {
	e.closing.Store(true)
	e.stopGuard()
	<-e.guardDone
	e.etcd.Close()
}

// advertisePeer updates this member's recorded peer URL when it differs
// from the one it now serves (a server that ran alone on loopback and was
// started again with --cluster-init), so that members it adds can reach it.
func advertisePeer(e *embed.Etcd, peerURL string, log *slog.Logger) error {
	self := e.Server.Cluster().Member(e.Server.MemberID())
	if self == nil || (len(self.PeerURLs) == 1 && self.PeerURLs[0] == peerURL) {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cl := v3client.New(e.Server)
	defer cl.Close()
	if _, err := cl.MemberUpdate(ctx, uint64(e.Server.MemberID()), []string{peerURL}); err != nil {
		return fmt.Errorf("advertise the etcd peer address %s: %w", peerURL, err)
	}
	log.Info("etcd peer address updated", "peer", peerURL, "was", self.PeerURLs)
	return nil
}

// ID is this member's etcd ID.
func (e *Embedded) ID() uint64 { return uint64(e.etcd.Server.MemberID()) }

// HasLeader reports whether this member knows a leader (a member cut off
// from the majority knows none once its election timeout passed).
func (e *Embedded) HasLeader() bool { return e.etcd.Server.Leader() != 0 }

// IsLearner reports whether this member is still a learner.
func (e *Embedded) IsLearner() bool { return e.etcd.Server.IsLearner() }
