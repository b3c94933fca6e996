package apiserver

import (
	"net/http"
	"strings"
)

// RequestInfo is what a resource URL names.
type RequestInfo struct {
	IsResource  bool
	Group       string
	Version     string
	Namespace   string
	Resource    string
	Name        string
	Subresource string
	// Verb is the Kubernetes verb: get, list, watch, create, update,
	// patch, delete, deletecollection.
	Verb string
}

// ParseRequest maps a method and URL path to a RequestInfo, following
// upstream's layout: /api/v1/... and /apis/<group>/<version>/...,
// optionally /namespaces/<ns>/, then resource, name and subresource.
func ParseRequest(method, path string, watchParam bool) RequestInfo {
	parts := strings.Split(strings.Trim(path, "/"), "/")
	var ri RequestInfo
	switch {
	case len(parts) >= 2 && parts[0] == "api":
		ri.Version, parts = parts[1], parts[2:]
	case len(parts) >= 3 && parts[0] == "apis":
		ri.Group, ri.Version, parts = parts[1], parts[2], parts[3:]
	default:
		return ri
	}
	if len(parts) == 0 {
		return ri
	}
	// The legacy /watch/ prefix.
	watchPrefix := false
	if parts[0] == "watch" {
		watchPrefix, parts = true, parts[1:]
	}
	// /namespaces/<name>/status and /finalize are the namespace's own
	// subresources, as upstream special-cases them.
	nsSub := len(parts) == 3 && parts[0] == "namespaces" && (parts[2] == "status" || parts[2] == "finalize")
	if len(parts) > 2 && parts[0] == "namespaces" && !nsSub {
		ri.Namespace, parts = parts[1], parts[2:]
	}
	if len(parts) == 0 {
		return ri
	}
	ri.IsResource = true
	ri.Resource = parts[0]
	if len(parts) > 1 {
		ri.Name = parts[1]
	}
	if len(parts) > 2 {
		ri.Subresource = strings.Join(parts[2:], "/")
	}
	// /api/v1/namespaces/foo is the namespace itself, not a prefix.
	if ri.Resource == "namespaces" && ri.Namespace == "" && ri.Name != "" {
		ri.Namespace = ri.Name
	}
	switch method {
	case http.MethodGet, http.MethodHead:
		switch {
		case watchPrefix || watchParam && ri.Name == "":
			ri.Verb = "watch"
		case watchParam:
			ri.Verb = "watch"
		case ri.Name == "":
			ri.Verb = "list"
		default:
			ri.Verb = "get"
		}
	case http.MethodPost:
		ri.Verb = "create"
	case http.MethodPut:
		ri.Verb = "update"
	case http.MethodPatch:
		ri.Verb = "patch"
	case http.MethodDelete:
		if ri.Name == "" {
			ri.Verb = "deletecollection"
		} else {
			ri.Verb = "delete"
		}
	default:
		ri.Verb = strings.ToLower(method)
	}
	return ri
}
