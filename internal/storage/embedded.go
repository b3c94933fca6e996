package storage

import (
	"fmt"
	"log/slog"
	"net/url"
	"path/filepath"
	"time"

	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
)

// EmbeddedConfig configures the etcd that runs inside skiff server.
type EmbeddedConfig struct {
	DataDir    string // etcd's own directory
	ClientPort int    // loopback client port
	PeerPort   int    // loopback peer port
	Name       string
}

// Embedded is a running single-member etcd.
type Embedded struct {
	etcd *embed.Etcd
	// Endpoint is the client URL to connect to.
	Endpoint string
}

// StartEmbedded starts etcd on loopback and waits until it serves.
func StartEmbedded(cfg EmbeddedConfig, log *slog.Logger) (*Embedded, error) {
	ec := embed.NewConfig()
	ec.Name = cfg.Name
	ec.Dir = cfg.DataDir
	ec.WalDir = filepath.Join(cfg.DataDir, "wal")
	client := url.URL{Scheme: "http", Host: fmt.Sprintf("127.0.0.1:%d", cfg.ClientPort)}
	peer := url.URL{Scheme: "http", Host: fmt.Sprintf("127.0.0.1:%d", cfg.PeerPort)}
	ec.ListenClientUrls, ec.AdvertiseClientUrls = []url.URL{client}, []url.URL{client}
	ec.ListenPeerUrls, ec.AdvertisePeerUrls = []url.URL{peer}, []url.URL{peer}
	ec.InitialCluster = ec.InitialClusterFromName(cfg.Name)
	// etcd's own zap logging is silenced; skiff logs what matters.
	ec.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zap.NewNop())
	// Compact history older than five minutes, as upstream's apiserver does.
	ec.AutoCompactionMode = "periodic"
	ec.AutoCompactionRetention = "5m"
	ec.QuotaBackendBytes = 8 << 30
	ec.MaxRequestBytes = 4 << 20
	e, err := embed.StartEtcd(ec)
	if err != nil {
		return nil, fmt.Errorf("start embedded etcd in %s: %w", cfg.DataDir, err)
	}
	select {
	case <-e.Server.ReadyNotify():
	case err := <-e.Err():
		e.Close()
		return nil, fmt.Errorf("embedded etcd: %w", err)
	case <-time.After(60 * time.Second):
		e.Close()
		return nil, fmt.Errorf("embedded etcd in %s did not become ready in 60s", cfg.DataDir)
	}
	log.Info("embedded etcd ready", "endpoint", client.String(), "dir", cfg.DataDir)
	return &Embedded{etcd: e, Endpoint: client.String()}, nil
}

// Close stops etcd, flushing its state.
func (e *Embedded) Close() { e.etcd.Close() }
