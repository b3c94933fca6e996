// Package storage keeps API objects in etcd under upstream's key layout and
// serves lists and watches from one in-memory cache per resource.
package storage

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	goruntime "runtime"
	"strconv"
	"sync/atomic"

	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"golang.org/x/sync/errgroup"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// maxUpdateRetries bounds optimistic-concurrency retries inside one update.
const maxUpdateRetries = 64

// Codec turns objects into the bytes kept in etcd and back.
type Codec interface {
	Encode(obj runtime.Object) ([]byte, error)
	Decode(data []byte) (runtime.Object, error)
}

// Transformer seals values for etcd and opens them (encryption at rest).
// The etcd key is given so a value cannot be moved to another key.
type Transformer interface {
	ToStorage(key string, plain []byte) ([]byte, error)
	// FromStorage opens data; stale says a rewrite would seal it
	// differently (another key or provider wrote it).
	FromStorage(key string, data []byte) (plain []byte, stale bool, err error)
}

// Store is the etcd-backed storage of one resource. Every key it is given is
// relative to its prefix ("<namespace>/<name>" or "<name>").
type Store struct {
	client   *clientv3.Client
	codec    Codec
	prefix   string
	resource schema.GroupResource
	// transformer seals values (nil: kept as encoded); swapped whole when
	// the encryption configuration changes (a key rotation).
	transformer atomic.Pointer[Transformer]
	// handoff passes written objects to the store's watch cache (nil
	// without one).
	handoff *handoff
}

// SetTransformer makes the store seal what it writes and open what it
// reads with t (nil: neither); safe while the store is in use.
func (s *Store) SetTransformer(t Transformer) {
	if t == nil {
		s.transformer.Store(nil)
		return
	}
	s.transformer.Store(&t)
}

func (s *Store) sealer() Transformer {
	if t := s.transformer.Load(); t != nil {
		return *t
	}
	return nil
}

// seal is plain as kept at the etcd key full.
func (s *Store) seal(full string, plain []byte) ([]byte, error) {
	if t := s.sealer(); t != nil {
		return t.ToStorage(full, plain)
	}
	return plain, nil
}

// encode is obj as kept at the etcd key full.
func (s *Store) encode(full string, obj runtime.Object) ([]byte, error) {
	data, err := s.codec.Encode(obj)
	if err != nil {
		return nil, err
	}
	return s.seal(full, data)
}

// open is the plain encoding of the value at the etcd key full.
func (s *Store) open(full string, data []byte) (plain []byte, stale bool, err error) {
	if t := s.sealer(); t != nil {
		return t.FromStorage(full, data)
	}
	return data, false, nil
}

// NewStore returns the store for resource under prefix (which ends in "/").
func NewStore(client *clientv3.Client, codec Codec, prefix string, resource schema.GroupResource) *Store {
	return &Store{client: client, codec: codec, prefix: prefix, resource: resource}
}

// Prefix is the etcd key prefix of this resource.
func (s *Store) Prefix() string { return s.prefix }

// Resource is the group-resource used in error messages.
func (s *Store) Resource() schema.GroupResource { return s.resource }

func nameOf(key string) string {
	if i := bytes.LastIndexByte([]byte(key), '/'); i >= 0 {
		return key[i+1:]
	}
	return key
}

// Create writes obj at key if nothing is there yet, and returns obj itself
// with its new resourceVersion: the caller hands obj over (a deep copy of
// a custom object was a twentieth of its create).
func (s *Store) Create(ctx context.Context, key string, obj runtime.Object) (runtime.Object, error) {
	if err := setRV(obj, 0); err != nil {
		return nil, err
	}
	full := s.prefix + key
	data, err := s.encode(full, obj)
	if err != nil {
		return nil, fmt.Errorf("encode %s %s: %w", s.resource, key, err)
	}
	resp, err := s.client.Txn(ctx).If(clientv3.Compare(clientv3.ModRevision(full), "=", 0)).Then(clientv3.OpPut(full, string(data))).Commit()
	if err != nil {
		return nil, storageErr(err)
	}
	if !resp.Succeeded {
		return nil, apierrors.NewAlreadyExists(s.resource, nameOf(key))
	}
	if err := setRV(obj, resp.Header.Revision); err != nil {
		return nil, err
	}
	s.handoff.put(full, obj, resp.Header.Revision)
	return obj, nil
}

// Get reads the object at key.
func (s *Store) Get(ctx context.Context, key string) (runtime.Object, error) {
	resp, err := s.client.Get(ctx, s.prefix+key)
	if err != nil {
		return nil, storageErr(err)
	}
	if len(resp.Kvs) == 0 {
		return nil, apierrors.NewNotFound(s.resource, nameOf(key))
	}
	return s.decode(resp.Kvs[0].Key, resp.Kvs[0].Value, resp.Kvs[0].ModRevision)
}

// UpdateFunc computes the new object from the current one. Returning a nil
// object with a nil error deletes the object.
type UpdateFunc func(current runtime.Object) (runtime.Object, error)

// GuaranteedUpdate applies update to the current object until it commits
// without a concurrent change. When the object does not exist, update gets nil.
// An update that leaves the stored bytes unchanged is not written.
func (s *Store) GuaranteedUpdate(ctx context.Context, key string, update UpdateFunc) (runtime.Object, error) {
	full := s.prefix + key
	for range maxUpdateRetries {
		resp, err := s.client.Get(ctx, full)
		if err != nil {
			return nil, storageErr(err)
		}
		var cur runtime.Object
		var rev int64
		var oldPlain []byte
		stale := false
		if len(resp.Kvs) > 0 {
			rev = resp.Kvs[0].ModRevision
			if oldPlain, stale, err = s.open(full, resp.Kvs[0].Value); err != nil {
				return nil, s.undecryptable(full, err)
			}
			if cur, err = s.decodePlain(oldPlain, rev); err != nil {
				return nil, err
			}
		}
		next, err := update(cur)
		if err != nil {
			return nil, err
		}
		var op clientv3.Op
		var data []byte
		if next == nil {
			if cur == nil {
				return nil, apierrors.NewNotFound(s.resource, nameOf(key))
			}
			op = clientv3.OpDelete(full)
		} else {
			if err := setRV(next, 0); err != nil {
				return nil, err
			}
			plain, err := s.codec.Encode(next)
			if err != nil {
				return nil, fmt.Errorf("encode %s %s: %w", s.resource, key, err)
			}
			// Unchanged is not written, unless it was sealed with a key
			// or provider no longer the writing one (a rotation rewrites).
			if cur != nil && !stale && bytes.Equal(plain, oldPlain) {
				return cur, nil
			}
			if data, err = s.seal(full, plain); err != nil {
				return nil, fmt.Errorf("encrypt %s %s: %w", s.resource, key, err)
			}
			op = clientv3.OpPut(full, string(data))
		}
		txn, err := s.client.Txn(ctx).If(clientv3.Compare(clientv3.ModRevision(full), "=", rev)).Then(op).Commit()
		if err != nil {
			return nil, storageErr(err)
		}
		if !txn.Succeeded {
			continue
		}
		if next == nil {
			out := cur.DeepCopyObject()
			return out, setRV(out, txn.Header.Revision)
		}
		return next, setRV(next, txn.Header.Revision)
	}
	return nil, apierrors.NewConflict(s.resource, nameOf(key), errors.New("too many concurrent updates"))
}

// KV is one raw entry of a list.
type KV struct {
	Key string
	Obj runtime.Object
}

// Page is one read of ListPage.
type Page struct {
	KVs []KV
	// Rev is the revision read at.
	Rev int64
	// More tells whether objects follow the page.
	More bool
	// Count is the number of keys from the page's start to the end of the
	// prefix, the page included.
	Count int64
	// Undecryptable are the keys (and why) of values no provider of the
	// encryption configuration opens: left out of KVs, so a lost key
	// costs those objects and not the whole resource.
	Undecryptable []string
}

// errUndecryptable marks a value no provider opens.
var errUndecryptable = errors.New("undecryptable")

// ListPage reads up to limit objects with keys in [prefix+from, end of prefix)
// at revision rev (0: now).
func (s *Store) ListPage(ctx context.Context, prefix, from string, rev, limit int64) (Page, error) {
	opts := []clientv3.OpOption{clientv3.WithRange(clientv3.GetPrefixRangeEnd(s.prefix + prefix))}
	if rev > 0 {
		opts = append(opts, clientv3.WithRev(rev))
	}
	if limit > 0 {
		opts = append(opts, clientv3.WithLimit(limit))
	}
	start := s.prefix + prefix
	if from != "" {
		start = s.prefix + from
	}
	resp, err := s.client.Get(ctx, start, opts...)
	if err != nil {
		return Page{}, storageErr(err)
	}
	out, err := s.decodeAll(resp.Kvs)
	if err != nil {
		return Page{}, err
	}
	page := Page{Rev: resp.Header.Revision, More: resp.More, Count: resp.Count}
	for i, kv := range out {
		if kv.Obj == nil {
			page.Undecryptable = append(page.Undecryptable, s.prefix+kv.Key)
			continue
		}
		page.KVs = append(page.KVs, out[i])
	}
	return page, nil
}

// decodeChunk is how many objects one goroutine decodes at a time; large
// reads (priming a cache, unpaged lists) are spread over every core.
const decodeChunk = 512

func (s *Store) decodeAll(kvs []*mvccpb.KeyValue) ([]KV, error) {
	out := make([]KV, len(kvs))
	var g errgroup.Group
	g.SetLimit(goruntime.GOMAXPROCS(0))
	for lo := 0; lo < len(kvs); lo += decodeChunk {
		hi := min(lo+decodeChunk, len(kvs))
		g.Go(func() error {
			for i := lo; i < hi; i++ {
				obj, err := s.decode(kvs[i].Key, kvs[i].Value, kvs[i].ModRevision)
				if errors.Is(err, errUndecryptable) {
					out[i] = KV{Key: string(kvs[i].Key[len(s.prefix):])}
					continue
				}
				if err != nil {
					return err
				}
				out[i] = KV{Key: string(kvs[i].Key[len(s.prefix):]), Obj: obj}
			}
			return nil
		})
	}
	return out, g.Wait()
}

// revisionProbeKey is read to learn etcd's current revision; it is never written.
const revisionProbeKey = "/registry/skiff/revision-probe"

// CurrentRevision is etcd's revision now, read with a quorum read.
func (s *Store) CurrentRevision(ctx context.Context) (int64, error) {
	// A linearizable read of one key that never exists: the header carries
	// the revision, and etcd neither scans nor counts the resource's keys.
	resp, err := s.client.Get(ctx, revisionProbeKey, clientv3.WithCountOnly())
	if err != nil {
		return 0, storageErr(err)
	}
	return resp.Header.Revision, nil
}

// decode is the object of the value data read at the etcd key full.
func (s *Store) decode(full, data []byte, rev int64) (runtime.Object, error) {
	plain, _, err := s.open(string(full), data)
	if err != nil {
		return nil, s.undecryptable(string(full), err)
	}
	return s.decodePlain(plain, rev)
}

// undecryptable is the error of a value no provider opens: a 500 naming
// the key, so an operator who lost a key knows what is unreadable.
func (s *Store) undecryptable(full string, err error) error {
	return undecryptableError{apierrors.NewInternalError(fmt.Errorf("decrypt %s: %w", full, err))}
}

// undecryptableError is a 500 that errors.Is tells apart as errUndecryptable.
type undecryptableError struct{ *apierrors.StatusError }

func (e undecryptableError) Unwrap() error { return errUndecryptable }

func (s *Store) decodePlain(data []byte, rev int64) (runtime.Object, error) {
	obj, err := s.codec.Decode(data)
	if err != nil {
		return nil, apierrors.NewInternalError(fmt.Errorf("decode stored %s: %w", s.resource, err))
	}
	return obj, setRV(obj, rev)
}

func setRV(obj runtime.Object, rev int64) error {
	acc, err := meta.Accessor(obj)
	if err != nil {
		return err
	}
	if rev == 0 {
		acc.SetResourceVersion("")
	} else {
		acc.SetResourceVersion(strconv.FormatInt(rev, 10))
	}
	return nil
}

// storageErr turns an etcd failure into a retryable API error.
func storageErr(err error) error {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return apierrors.NewTimeoutError(fmt.Sprintf("storage: %v", err), 1)
	}
	if errors.Is(err, rpctypes.ErrCompacted) || errors.Is(err, rpctypes.ErrGRPCCompacted) {
		return apierrors.NewResourceExpired(fmt.Sprintf("storage: %v", err))
	}
	if errors.Is(err, rpctypes.ErrGRPCRequestTooLarge) || errors.Is(err, rpctypes.ErrRequestTooLarge) {
		// The object is past etcd's request limit: retrying cannot help.
		return apierrors.NewRequestEntityTooLargeError(err.Error())
	}
	if errors.Is(err, rpctypes.ErrGRPCNoSpace) || errors.Is(err, rpctypes.ErrNoSpace) {
		return noSpace(err)
	}
	if quorumLost(err) {
		return apierrors.NewServiceUnavailable(fmt.Sprintf("storage: etcd cannot commit (%s): a majority of the servers is not reachable; "+
			"the API writes again once enough of them are back, and if they are lost for good, start one server with --cluster-reset", rpctypes.ErrorDesc(err)))
	}
	return apierrors.NewServiceUnavailable(fmt.Sprintf("storage: %v", err))
}

// quorumLost reports whether etcd failed for want of a leader or of a
// majority to commit with.
func quorumLost(err error) bool {
	switch rpctypes.ErrorDesc(err) {
	case rpctypes.ErrorDesc(rpctypes.ErrGRPCNoLeader), rpctypes.ErrorDesc(rpctypes.ErrGRPCTimeout),
		rpctypes.ErrorDesc(rpctypes.ErrGRPCTimeoutDueToLeaderFail), rpctypes.ErrorDesc(rpctypes.ErrGRPCTimeoutDueToConnectionLost),
		rpctypes.ErrorDesc(rpctypes.ErrGRPCLeaderChanged):
		return true
	}
	return false
}

// noSpace is the answer to a write while etcd has raised its NOSPACE
// alarm (its quota reached or its disk full): 507, not a retry hint, since
// only an operator freeing space ends it.
func noSpace(err error) error {
	return &apierrors.StatusError{ErrStatus: metav1.Status{
		Status: metav1.StatusFailure, Code: http.StatusInsufficientStorage, Reason: metav1.StatusReasonInternalError,
		Message: fmt.Sprintf("storage is full, writes are refused until space is freed: %v", err),
	}}
}

// Rewrite writes every object again whose value is stale (sealed by a key
// or provider that no longer writes), leaves the rest untouched, and says
// how many it rewrote. A value no key opens is an error: it would be lost.
func (s *Store) Rewrite(ctx context.Context) (int, error) {
	n, from := 0, ""
	for {
		resp, err := s.client.Get(ctx, s.prefix+from, clientv3.WithRange(clientv3.GetPrefixRangeEnd(s.prefix)), clientv3.WithLimit(rewriteBatch))
		if err != nil {
			return n, storageErr(err)
		}
		for _, kv := range resp.Kvs {
			full := string(kv.Key)
			_, stale, err := s.open(full, kv.Value)
			if err != nil {
				return n, s.undecryptable(full, err)
			}
			if !stale {
				continue
			}
			// The update writes the same object: GuaranteedUpdate seals it
			// anew because the value read was stale.
			_, err = s.GuaranteedUpdate(ctx, full[len(s.prefix):], func(cur runtime.Object) (runtime.Object, error) {
				if cur == nil {
					return nil, errGone
				}
				return cur, nil
			})
			switch {
			case errors.Is(err, errGone) || apierrors.IsNotFound(err):
			case err != nil:
				return n, fmt.Errorf("rewrite %s: %w", full, err)
			default:
				n++
			}
		}
		if !resp.More || len(resp.Kvs) == 0 {
			return n, nil
		}
		from = string(resp.Kvs[len(resp.Kvs)-1].Key[len(s.prefix):]) + "\x00"
	}
}

// rewriteBatch is how many values Rewrite reads at a time.
const rewriteBatch = 500

var errGone = errors.New("gone")
