// Package openapi builds the OpenAPI v2 and v3 documents of the built-in
// resources from the Go API types (reflection) and their SwaggerDoc
// descriptions, good for `kubectl explain` and for kubectl's check that the
// server validates fields itself.
package openapi

import (
	"crypto/sha512"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"sync"

	openapiv2 "github.com/google/gnostic-models/openapiv2"
	"google.golang.org/protobuf/proto"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/skiff-sh/skiff/internal/registry"
)

// Spec serves the OpenAPI documents, built once on first use.
type Spec struct {
	reg  *registry.Registry
	once sync.Once
	err  error
	v2   []byte
	v2pb []byte
	v3   map[string][]byte // "api/v1", "apis/apps/v1"
	root []byte
}

// New returns the spec for reg's resources.
func New(reg *registry.Registry) *Spec { return &Spec{reg: reg} }

func (s *Spec) build() {
	s.once.Do(func() {
		g := newGenerator(s.reg.Scheme)
		for _, r := range s.reg.Resources() {
			g.addKind(r.GVK(), r.New())
			g.addKind(r.GVK().GroupVersion().WithKind(r.Kind+"List"), r.NewList())
		}
		g.addMeta()
		v2 := map[string]any{
			"swagger": "2.0", "info": map[string]any{"title": "Kubernetes", "version": "v1.37.2"},
			"paths": map[string]any{}, "definitions": g.defs("#/definitions/"),
		}
		if s.v2, s.err = json.Marshal(v2); s.err != nil {
			return
		}
		doc, err := openapiv2.ParseDocument(s.v2)
		if err != nil {
			s.err = fmt.Errorf("openapi v2 to protobuf: %w", err)
			return
		}
		if s.v2pb, s.err = proto.Marshal(doc); s.err != nil {
			return
		}
		byGV := map[schema.GroupVersion][]*registry.Resource{}
		for _, r := range s.reg.Resources() {
			byGV[r.GVK().GroupVersion()] = append(byGV[r.GVK().GroupVersion()], r)
		}
		schemas := g.defs("#/components/schemas/")
		s.v3 = map[string][]byte{}
		rootPaths := map[string]any{}
		for gv, rs := range byGV {
			key := "apis/" + gv.Group + "/" + gv.Version
			if gv.Group == "" {
				key = "api/" + gv.Version
			}
			doc := map[string]any{
				"openapi": "3.0.0", "info": map[string]any{"title": "Kubernetes", "version": "v1.37.2"},
				"paths": paths(gv, rs), "components": map[string]any{"schemas": schemas},
			}
			b, err := json.Marshal(doc)
			if err != nil {
				s.err = err
				return
			}
			s.v3[key] = b
			sum := sha512.Sum512(b)
			rootPaths[key] = map[string]any{"serverRelativeURL": "/openapi/v3/" + key + "?hash=" + strings.ToUpper(hex.EncodeToString(sum[:]))}
		}
		s.root, s.err = json.Marshal(map[string]any{"paths": rootPaths})
	})
}

// V2 is /openapi/v2 in JSON.
func (s *Spec) V2() ([]byte, error) { s.build(); return s.v2, s.err }

// V2Proto is /openapi/v2 as gnostic protobuf (what kubectl asks for).
func (s *Spec) V2Proto() ([]byte, error) { s.build(); return s.v2pb, s.err }

// V3 serves /openapi/v3 ("") and /openapi/v3/<path>.
func (s *Spec) V3(path string) ([]byte, bool, error) {
	s.build()
	if s.err != nil {
		return nil, false, s.err
	}
	if path == "" {
		return s.root, true, nil
	}
	b, ok := s.v3[path]
	return b, ok, nil
}

var writeParams = []map[string]any{
	queryParam("dryRun", "When present, indicates that modifications should not be persisted."),
	queryParam("fieldManager", "fieldManager is a name associated with the actor or entity that is making these changes."),
	queryParam("fieldValidation", "fieldValidation instructs the server on how to handle objects in the request containing unknown or duplicate fields."),
}

func queryParam(name, desc string) map[string]any {
	return map[string]any{"name": name, "in": "query", "description": desc, "schema": map[string]any{"type": "string"}, "uniqueItems": true}
}

// paths lists the REST operations of a group-version, each tagged with
// x-kubernetes-group-version-kind as upstream does.
func paths(gv schema.GroupVersion, rs []*registry.Resource) map[string]any {
	out := map[string]any{}
	prefix := "/apis/" + gv.Group + "/" + gv.Version
	if gv.Group == "" {
		prefix = "/api/" + gv.Version
	}
	sort.Slice(rs, func(i, j int) bool { return rs[i].Resource() < rs[j].Resource() })
	for _, r := range rs {
		base := prefix
		if r.Namespaced {
			base += "/namespaces/{namespace}"
		}
		gvk := map[string]string{"group": gv.Group, "version": gv.Version, "kind": r.Kind}
		ref := map[string]any{"$ref": "#/components/schemas/" + defName(r.New())}
		content := map[string]any{"application/json": map[string]any{"schema": ref}}
		op := func(action string, params []map[string]any) map[string]any {
			return map[string]any{
				"operationId": action + r.Kind, "x-kubernetes-action": action, "x-kubernetes-group-version-kind": gvk,
				"parameters": params, "responses": map[string]any{"200": map[string]any{"description": "OK", "content": content}},
			}
		}
		patch := op("patch", append(append([]map[string]any{}, writeParams...), queryParam("force", "Force is going to \"force\" Apply requests.")))
		patch["requestBody"] = map[string]any{"content": map[string]any{
			"application/json-patch+json": map[string]any{"schema": map[string]any{"type": "object"}}, "application/merge-patch+json": map[string]any{"schema": map[string]any{"type": "object"}},
			"application/strategic-merge-patch+json": map[string]any{"schema": map[string]any{"type": "object"}}, "application/apply-patch+yaml": map[string]any{"schema": map[string]any{"type": "object"}},
		}}
		out[base+"/"+r.Resource()] = map[string]any{"get": op("list", nil), "post": op("post", writeParams), "delete": op("deletecollection", nil)}
		out[base+"/"+r.Resource()+"/{name}"] = map[string]any{"get": op("get", nil), "put": op("put", writeParams), "patch": patch, "delete": op("delete", nil)}
		if r.Status {
			out[base+"/"+r.Resource()+"/{name}/status"] = map[string]any{"get": op("get", nil), "put": op("put", writeParams), "patch": patch}
		}
	}
	return out
}
