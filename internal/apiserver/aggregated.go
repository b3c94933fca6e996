package apiserver

import (
	"net/http"

	"github.com/skiff-sh/skiff/internal/aggregator"
	"github.com/skiff-sh/skiff/internal/auth"
)

// serveAggregated hands a request for a group-version another server
// serves (an APIService with a Service) to that server, on behalf of the
// user this server authenticated and authorized: this server's chain has
// run, the aggregated server decides the rest.
func (s *Server) serveAggregated(w http.ResponseWriter, r *http.Request, route *aggregator.Route, ri RequestInfo) {
	u, _ := auth.UserFrom(r.Context())
	route.ServeHTTP(w, r, aggregator.User{Name: u.Name, UID: u.UID, Groups: u.Groups, Extra: u.Extra}, !ri.IsResource)
}
