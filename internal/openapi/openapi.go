// Package openapi builds the OpenAPI v2 and v3 documents of the built-in
// resources from the Go API types (reflection) and their SwaggerDoc
// descriptions, good for `kubectl explain` and for kubectl's check that the
// server validates fields itself.
package openapi

import (
	"bytes"
	"context"
	"crypto/sha512"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	openapiv2 "github.com/google/gnostic-models/openapiv2"
	"google.golang.org/protobuf/proto"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/skiff-sh/skiff/internal/registry"
)

// Spec serves the OpenAPI documents. The built-in resources' parts are
// built once on first use, with each v3 document's hash; after custom
// resources change, only their documents are made again (v3 at once, v2
// when next asked for), the built-in parts spliced in as encoded.
type Spec struct {
	reg *registry.Registry

	once   sync.Once
	err    error
	defs2  map[string]any // built-in definitions, v2 references
	paths2 map[string]any // built-in operations, v2
	meta3  []byte         // the meta schemas' v3 entries, encoded: "name":{...},...
	// paths2JSON and defs2JSON are paths2 and defs2 encoded, without
	// their braces.
	v2once                sync.Once
	paths2JSON, defs2JSON []byte
	v3                    map[string][]byte
	v3hashes              map[string]string

	mu sync.Mutex
	// frag3 holds each custom resource's v3 schemas and paths, encoded
	// (guarded by mu): a change re-encodes only the resources it made
	// anew, and a group-version's document is their concatenation.
	frag3 map[*registry.Resource]fragment
	cur   atomic.Pointer[documents]
	v2    atomic.Pointer[documents]
}

// documents are the served documents at one custom-resource generation.
type documents struct {
	generation uint64
	err        error
	v2, v2pb   []byte
	// v3 holds each custom group-version's document as the pieces it is
	// written from (shared with the per-resource fragments, not copied
	// into one buffer: the documents of many definitions are large).
	v3   map[string][][]byte
	root []byte
}

// fragment is one resource's part of a v3 document: its schemas and its
// paths, each encoded without the enclosing braces.
type fragment struct{ schemas, paths []byte }

// inner is an encoded JSON object without its braces.
func inner(b []byte) []byte { return b[1 : len(b)-1] }

// New returns the spec for reg's resources.
func New(reg *registry.Registry) *Spec { return &Spec{reg: reg} }

// builtin builds the built-in resources' definitions, operations and v3
// documents.
func (s *Spec) builtin() {
	s.once.Do(func() {
		g := newGenerator(s.reg.Scheme)
		byGV := map[schema.GroupVersion][]*registry.Resource{}
		for _, r := range s.reg.Resources() {
			if r.Custom != nil {
				continue
			}
			g.addKind(r.GVK(), r.New())
			g.addKind(r.GVK().GroupVersion().WithKind(r.Kind+"List"), r.NewList())
			byGV[r.GVK().GroupVersion()] = append(byGV[r.GVK().GroupVersion()], r)
		}
		g.addMeta()
		s.paths2 = map[string]any{}
		for gv, rs := range byGV {
			maps.Copy(s.paths2, swagger.paths(gv, rs))
		}
		s.defs2 = g.defs("#/definitions/")
		schemas3 := g.defs("#/components/schemas/")
		meta, err := json.Marshal(metaSchemas(schemas3))
		if err != nil {
			s.err = err
			return
		}
		s.meta3 = meta[1 : len(meta)-1]
		s.v3, s.v3hashes = map[string][]byte{}, map[string]string{}
		for gv, rs := range byGV {
			doc := map[string]any{
				"openapi": "3.0.0", "info": map[string]any{"title": "Kubernetes", "version": "v1.37.2"},
				"paths": openAPI.paths(gv, rs), "components": map[string]any{"schemas": schemas3},
			}
			b, err := json.Marshal(doc)
			if err != nil {
				s.err = err
				return
			}
			s.v3[v3Key(gv)] = b
			s.v3hashes[v3Key(gv)] = hashOf(b)
		}
	})
}

func protoMarshal(doc *openapiv2.Document) ([]byte, error) { return proto.Marshal(doc) }

func hashOf(b []byte) string {
	sum := sha512.Sum512(b)
	return strings.ToUpper(hex.EncodeToString(sum[:]))
}

func v3Key(gv schema.GroupVersion) string {
	if gv.Group == "" {
		return "api/" + gv.Version
	}
	return "apis/" + gv.Group + "/" + gv.Version
}

// custom groups the custom resources by group-version.
func (s *Spec) custom() map[schema.GroupVersion][]*registry.Resource {
	out := map[schema.GroupVersion][]*registry.Resource{}
	for _, r := range s.reg.Resources() {
		if r.Custom != nil {
			out[r.GVK().GroupVersion()] = append(out[r.GVK().GroupVersion()], r)
		}
	}
	return out
}

// warmEvery is how often KeepWarm looks for a change of custom resources.
const warmEvery = 250 * time.Millisecond

// KeepWarm makes the v3 documents again soon after custom resources
// change, until ctx ends, so that a request finds them made instead of
// paying for them (kubectl asks for them after installing definitions).
func (s *Spec) KeepWarm(ctx context.Context) {
	last := ^uint64(0)
	t := time.NewTicker(warmEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if gen := s.reg.CustomGeneration(); gen != last {
			s.docs()
			last = gen
		}
	}
}

// docs are the v3 documents for the registry's current custom resources.
func (s *Spec) docs() *documents {
	s.builtin()
	gen := s.reg.CustomGeneration()
	if d := s.cur.Load(); d != nil && d.generation == gen {
		return d
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if d := s.cur.Load(); d != nil && d.generation == gen {
		return d
	}
	d := s.assembleV3()
	d.generation = gen
	s.cur.Store(d)
	return d
}

// assembleV3 makes each custom group-version's document (the meta schemas
// spliced in as encoded) and the root listing every document by hash.
func (s *Spec) assembleV3() *documents {
	d := &documents{err: s.err, v3: map[string][][]byte{}}
	if d.err != nil {
		return d
	}
	hashes := maps.Clone(s.v3hashes)
	frags := map[*registry.Resource]fragment{}
	for gv, rs := range s.custom() {
		sort.Slice(rs, func(i, j int) bool { return rs[i].Resource() < rs[j].Resource() })
		doc := [][]byte{[]byte(`{"components":{"schemas":{`), s.meta3}
		for _, r := range rs {
			f, ok := s.frag3[r]
			if !ok {
				own, err := json.Marshal(customDefinitions(r, openAPI))
				if err != nil {
					d.err = err
					return d
				}
				paths, err := json.Marshal(openAPI.paths(gv, []*registry.Resource{r}))
				if err != nil {
					d.err = err
					return d
				}
				f = fragment{schemas: inner(own), paths: inner(paths)}
			}
			frags[r] = f
			if len(f.schemas) > 0 {
				doc = append(doc, comma, f.schemas)
			}
		}
		doc = append(doc, []byte(`}},"info":{"title":"Kubernetes","version":"v1.37.2"},"openapi":"3.0.0","paths":{`))
		for i, r := range rs {
			if i > 0 && len(frags[r].paths) > 0 {
				doc = append(doc, comma)
			}
			doc = append(doc, frags[r].paths)
		}
		doc = append(doc, []byte("}}"))
		d.v3[v3Key(gv)] = doc
		h := sha512.New()
		for _, p := range doc {
			h.Write(p)
		}
		hashes[v3Key(gv)] = strings.ToUpper(hex.EncodeToString(h.Sum(nil)))
	}
	rootPaths := map[string]any{}
	for key, h := range hashes {
		rootPaths[key] = map[string]any{"serverRelativeURL": "/openapi/v3/" + key + "?hash=" + h}
	}
	d.root, d.err = json.Marshal(map[string]any{"paths": rootPaths})
	s.frag3 = frags
	return d
}

// docsV2 is /openapi/v2 for the current custom resources, made when asked
// for: the built-in paths and definitions spliced in as encoded once, the
// protobuf form made only when that is asked for.
func (s *Spec) docsV2(proto bool) *documents {
	s.builtin()
	gen := s.reg.CustomGeneration()
	if d := s.v2.Load(); d != nil && d.generation == gen && (!proto || d.v2pb != nil || d.err != nil) {
		return d
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	d := s.v2.Load()
	if d == nil || d.generation != gen {
		d = &documents{generation: gen, err: s.err}
		if d.err == nil {
			d.v2, d.err = s.assembleV2()
		}
	}
	if proto && d.v2pb == nil && d.err == nil {
		next := *d
		doc, err := openapiv2.ParseDocument(d.v2)
		if err != nil {
			next.err = fmt.Errorf("openapi v2 to protobuf: %w", err)
		} else {
			next.v2pb, next.err = protoMarshal(doc)
		}
		d = &next
	}
	s.v2.Store(d)
	return d
}

// assembleV2 writes the v2 document: the built-in paths and definitions
// as encoded once, then the custom resources'.
func (s *Spec) assembleV2() ([]byte, error) {
	s.v2once.Do(func() {
		var paths, defs []byte
		if paths, s.err = json.Marshal(s.paths2); s.err != nil {
			return
		}
		if defs, s.err = json.Marshal(s.defs2); s.err != nil {
			return
		}
		s.paths2JSON, s.defs2JSON = paths[1:len(paths)-1], defs[1:len(defs)-1]
	})
	if s.err != nil {
		return nil, s.err
	}
	paths, defs := map[string]any{}, map[string]any{}
	for gv, rs := range s.custom() {
		maps.Copy(paths, swagger.paths(gv, rs))
		for _, r := range rs {
			maps.Copy(defs, customDefinitions(r, swagger))
		}
	}
	cp, err := json.Marshal(paths)
	if err != nil {
		return nil, err
	}
	cd, err := json.Marshal(defs)
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	b.Grow(len(s.paths2JSON) + len(s.defs2JSON) + len(cp) + len(cd) + 128)
	b.WriteString(`{"definitions":{`)
	b.Write(s.defs2JSON)
	if len(cd) > 2 {
		b.WriteByte(',')
		b.Write(cd[1 : len(cd)-1])
	}
	b.WriteString(`},"info":{"title":"Kubernetes","version":"v1.37.2"},"paths":{`)
	b.Write(s.paths2JSON)
	if len(cp) > 2 {
		b.WriteByte(',')
		b.Write(cp[1 : len(cp)-1])
	}
	b.WriteString(`},"swagger":"2.0"}`)
	return b.Bytes(), nil
}

// V2 is /openapi/v2 in JSON.
func (s *Spec) V2() ([]byte, error) { d := s.docsV2(false); return d.v2, d.err }

// V2Proto is /openapi/v2 as gnostic protobuf (what kubectl asks for).
func (s *Spec) V2Proto() ([]byte, error) { d := s.docsV2(true); return d.v2pb, d.err }

// V3 serves /openapi/v3 ("") and /openapi/v3/<path>, as the pieces its
// answer is written from, in order.
func (s *Spec) V3(path string) ([][]byte, bool, error) {
	d := s.docs()
	if d.err != nil {
		return nil, false, d.err
	}
	if path == "" {
		return [][]byte{d.root}, true, nil
	}
	if doc, ok := d.v3[path]; ok {
		return doc, true, nil
	}
	b, ok := s.v3[path]
	return [][]byte{b}, ok, nil
}

var comma = []byte(",")

// dialect is how one OpenAPI version spells parameters, bodies and
// responses; the operations are the same in both.
type dialect struct {
	v2      bool
	refBase string // "#/definitions/" or "#/components/schemas/"
}

var (
	swagger = dialect{v2: true, refBase: "#/definitions/"}
	openAPI = dialect{refBase: "#/components/schemas/"}
)

func (d dialect) queryParam(name, desc string) map[string]any {
	if d.v2 {
		return map[string]any{"name": name, "in": "query", "description": desc, "type": "string", "uniqueItems": true}
	}
	return map[string]any{"name": name, "in": "query", "description": desc, "schema": map[string]any{"type": "string"}, "uniqueItems": true}
}

func (d dialect) writeParams() []map[string]any {
	return []map[string]any{
		d.queryParam("dryRun", "When present, indicates that modifications should not be persisted."),
		d.queryParam("fieldManager", "fieldManager is a name associated with the actor or entity that is making these changes."),
		d.queryParam("fieldValidation", "fieldValidation instructs the server on how to handle objects in the request containing unknown or duplicate fields."),
	}
}

// patchTypes are the content types a PATCH accepts.
var patchTypes = []string{"application/json-patch+json", "application/merge-patch+json", "application/strategic-merge-patch+json", "application/apply-patch+yaml"}

// paths lists the REST operations of a group-version, each tagged with
// x-kubernetes-group-version-kind and x-kubernetes-action as upstream does.
// kubectl before 1.26 reads them from /openapi/v2: it sends a server-side
// dry run (apply --dry-run=server, diff) only for a kind whose PATCH
// operation lists the dryRun parameter.
func (d dialect) paths(gv schema.GroupVersion, rs []*registry.Resource) map[string]any {
	out := map[string]any{}
	prefix := "/apis/" + gv.Group + "/" + gv.Version
	if gv.Group == "" {
		prefix = "/api/" + gv.Version
	}
	rs = slices.Clone(rs)
	sort.Slice(rs, func(i, j int) bool { return rs[i].Resource() < rs[j].Resource() })
	for _, r := range rs {
		base := prefix
		if r.Namespaced {
			base += "/namespaces/{namespace}"
		}
		gvk := map[string]string{"group": gv.Group, "version": gv.Version, "kind": r.Kind}
		ref := map[string]any{"$ref": d.refBase + kindName(r)}
		op := func(action string, params []map[string]any) map[string]any {
			o := map[string]any{"operationId": action + r.Kind, "x-kubernetes-action": action, "x-kubernetes-group-version-kind": gvk}
			if d.v2 {
				o["responses"] = map[string]any{"200": map[string]any{"description": "OK", "schema": ref}}
				o["produces"] = []string{"application/json", "application/yaml", "application/vnd.kubernetes.protobuf"}
			} else {
				o["responses"] = map[string]any{"200": map[string]any{"description": "OK", "content": map[string]any{"application/json": map[string]any{"schema": ref}}}}
			}
			if len(params) > 0 {
				o["parameters"] = params
			}
			return o
		}
		// withBody is a write operation taking schema as its body.
		withBody := func(action string, params []map[string]any, schema map[string]any, types []string) map[string]any {
			if d.v2 {
				o := op(action, append(params, map[string]any{"name": "body", "in": "body", "required": true, "schema": schema}))
				o["consumes"] = types
				return o
			}
			o := op(action, params)
			content := map[string]any{}
			for _, t := range types {
				content[t] = map[string]any{"schema": schema}
			}
			o["requestBody"] = map[string]any{"content": content, "required": true}
			return o
		}
		patch := func() map[string]any {
			params := append(d.writeParams(), d.queryParam("force", "Force is going to \"force\" Apply requests."))
			return withBody("patch", params, map[string]any{"type": "object"}, patchTypes)
		}
		put := func() map[string]any { return withBody("put", d.writeParams(), ref, []string{"application/json"}) }
		out[base+"/"+r.Resource()] = map[string]any{
			"get": op("list", nil), "post": withBody("post", d.writeParams(), ref, []string{"application/json"}), "delete": op("deletecollection", nil),
			"parameters": d.pathParams(r.Namespaced, false),
		}
		out[base+"/"+r.Resource()+"/{name}"] = map[string]any{
			"get": op("get", nil), "put": put(), "patch": patch(), "delete": op("delete", nil),
			"parameters": d.pathParams(r.Namespaced, true),
		}
		if r.Status {
			out[base+"/"+r.Resource()+"/{name}/status"] = map[string]any{"get": op("get", nil), "put": put(), "patch": patch(), "parameters": d.pathParams(r.Namespaced, true)}
		}
	}
	return out
}

// pathParams declares the {namespace} and {name} a path holds.
func (d dialect) pathParams(namespaced, named bool) []map[string]any {
	param := func(name, desc string) map[string]any {
		p := map[string]any{"name": name, "in": "path", "required": true, "description": desc, "uniqueItems": true}
		if d.v2 {
			p["type"] = "string"
		} else {
			p["schema"] = map[string]any{"type": "string"}
		}
		return p
	}
	out := []map[string]any{}
	if named {
		out = append(out, param("name", "name of the object"))
	}
	if namespaced {
		out = append(out, param("namespace", "object name and auth scope, such as for teams and projects"))
	}
	return out
}
