package apiserver

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/skiff-sh/skiff/internal/audit"
	"github.com/skiff-sh/skiff/internal/auth"
)

// Audit records requests: Policy decides what, Log keeps it.
type Audit struct {
	Policy *audit.Policy
	Log    *audit.Log
}

// auditBodyLimit bounds how much of a request or response body an event
// records; a larger one is recorded without it.
const auditBodyLimit = 1 << 20

// auditRecord is what stages after the audit stage add to a request's
// event: the impersonated user, the authorization decision.
type auditRecord struct {
	impersonated *audit.UserInfo
	annotations  map[string]string
	// level is the event's; the objects are recorded as JSON, whatever
	// the wire format, when it asks for them.
	level                         audit.Level
	requestObject, responseObject json.RawMessage
}

// recordRequestObject notes the decoded request object (as JSON, now,
// before admission changes it) for an event at Request level or above.
func recordRequestObject(ctx context.Context, obj runtime.Object) {
	if rec := auditRecordFrom(ctx); rec != nil && audit.LevelMetadata.Less(rec.level) {
		if b, err := json.Marshal(obj); err == nil {
			rec.requestObject = b
		}
	}
}

// recordResponseObject notes the object answered, for an event at
// RequestResponse level.
func recordResponseObject(ctx context.Context, obj runtime.Object) {
	if rec := auditRecordFrom(ctx); rec != nil && rec.level == audit.LevelRequestResponse {
		if b, err := json.Marshal(obj); err == nil {
			rec.responseObject = b
		}
	}
}

// recordResponseBody notes an answer already encoded (a list), as JSON
// from encode, for an event at RequestResponse level; encode runs only
// when the event records it.
func recordResponseBody(ctx context.Context, encode func() ([]byte, error)) {
	if rec := auditRecordFrom(ctx); rec != nil && rec.level == audit.LevelRequestResponse {
		if b, err := encode(); err == nil {
			rec.responseObject = b
		}
	}
}

type auditKey struct{}

func auditRecordFrom(ctx context.Context) *auditRecord {
	r, _ := ctx.Value(auditKey{}).(*auditRecord)
	return r
}

// annotate adds an annotation to the request's audit event, if it has one.
func annotate(ctx context.Context, k, v string) {
	if r := auditRecordFrom(ctx); r != nil {
		r.annotations[k] = v
	}
}

func userInfo(u auth.User) audit.UserInfo {
	return audit.UserInfo{Username: u.Name, UID: u.UID, Groups: u.Groups, Extra: u.Extra}
}

// longRunning are requests whose response streams: they get a
// ResponseStarted event, and their response body is never recorded.
func longRunning(ri RequestInfo, r *http.Request) bool {
	return ri.Verb == "watch" || slices.Contains([]string{"exec", "attach", "portforward", "proxy"}, ri.Subresource) ||
		ri.Subresource == "log" && r.URL.Query().Get("follow") == "true"
}

// withAudit records each request the policy asks for, at each stage it
// does not omit. It runs after authentication (so it knows the user) and
// before impersonation and authorization (which add to the event).
func (s *Server) withAudit(next http.Handler) http.Handler {
	if s.audit == nil || s.audit.Log == nil {
		return next
	}
	return http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		ri := requestInfoFrom(r.Context())
		u, _ := auth.UserFrom(r.Context())
		verb := ri.Verb
		if verb == "" {
			verb = nonResourceVerb(r.Method)
		}
		d := s.audit.Policy.Decide(audit.Attributes{User: u.Name, Groups: u.Groups, Verb: verb, IsResource: ri.IsResource, Group: ri.Group,
			Resource: ri.Resource, Subresource: ri.Subresource, Namespace: ri.Namespace, Name: ri.Name, Path: r.URL.Path})
		if d.Level == audit.LevelNone {
			next.ServeHTTP(rw, r)
			return
		}
		ev := newAuditEvent(rw, r, ri, verb, u, d.Level)
		emit := func(stage audit.Stage) { s.emitAudit(ev, d, stage) }
		emit(audit.StageRequestReceived)
		rec := &auditRecord{annotations: map[string]string{}, level: d.Level}
		r = r.WithContext(context.WithValue(r.Context(), auditKey{}, rec))
		// A patch's body is its request object (the handler decodes a
		// whole object only for creates and updates).
		var reqBody *bytes.Buffer
		if audit.LevelMetadata.Less(d.Level) && r.Method == http.MethodPatch && r.Body != nil {
			reqBody = &bytes.Buffer{}
			r.Body = struct {
				io.Reader
				io.Closer
			}{io.TeeReader(r.Body, &limitedWriter{buf: reqBody, max: auditBodyLimit}), r.Body}
		}
		long := longRunning(ri, r)
		w := &auditWriter{ResponseWriter: rw, long: long, started: func() {
			ev.ImpersonatedUser, ev.Annotations = rec.impersonated, rec.annotations
			emit(audit.StageResponseStarted)
		}}
		defer func() {
			ev.ImpersonatedUser = rec.impersonated
			if len(rec.annotations) > 0 {
				ev.Annotations = rec.annotations
			}
			if p := recover(); p != nil {
				ev.ResponseStatus = &audit.ResponseStatus{Code: http.StatusInternalServerError, Status: metav1.StatusFailure, Message: "panic"}
				emit(audit.StagePanic)
				panic(p)
			}
			code := w.code
			if code == 0 {
				code = http.StatusOK
			}
			ev.ResponseStatus = &audit.ResponseStatus{Code: code}
			if code >= 400 {
				var st metav1.Status
				if json.Unmarshal(w.body.Bytes(), &st) == nil {
					ev.ResponseStatus.Status, ev.ResponseStatus.Message, ev.ResponseStatus.Reason = st.Status, st.Message, string(st.Reason)
				}
			}
			switch {
			case rec.requestObject != nil:
				ev.RequestObject = compactObject(rec.requestObject, d.OmitManagedFields)
			case reqBody != nil && json.Valid(reqBody.Bytes()):
				ev.RequestObject = compactObject(reqBody.Bytes(), d.OmitManagedFields)
			}
			if rec.responseObject != nil && code < 400 && !long {
				ev.ResponseObject = compactObject(rec.responseObject, d.OmitManagedFields)
			}
			emit(audit.StageResponseComplete)
		}()
		next.ServeHTTP(w, r)
	})
}

// newAuditEvent is the event of request r by u at level, with its
// Audit-Id set on the response.
func newAuditEvent(rw http.ResponseWriter, r *http.Request, ri RequestInfo, verb string, u auth.User, level audit.Level) *audit.Event {
	id := uuid.NewString()
	rw.Header().Set("Audit-Id", id)
	ev := &audit.Event{Kind: "Event", APIVersion: "audit.k8s.io/v1", Level: level, AuditID: id, RequestURI: r.URL.RequestURI(),
		Verb: verb, User: userInfo(u), UserAgent: r.UserAgent(), RequestReceivedTimestamp: audit.MicroTime(time.Now())}
	if host, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		ev.SourceIPs = []string{host}
	}
	if ri.IsResource {
		ev.ObjectRef = &audit.ObjectReference{Resource: ri.Resource, Namespace: ri.Namespace, Name: ri.Name, APIGroup: ri.Group, APIVersion: ri.Version, Subresource: ri.Subresource}
	}
	return ev
}

// emitAudit writes ev at stage unless the policy's decision d omits it.
func (s *Server) emitAudit(ev *audit.Event, d audit.Decision, stage audit.Stage) {
	if slices.Contains(d.OmitStages, stage) {
		return
	}
	e := *ev
	e.Stage, e.StageTimestamp = stage, audit.MicroTime(time.Now())
	if err := s.audit.Log.Write(&e); err != nil {
		s.log.Error("write audit event", "err", err)
	}
}

// auditFailedAuthentication records a request refused with 401 as
// upstream does: no user, one ResponseStarted event whose status message
// names the credentials tried, at the level the policy gives a request
// without a user.
func (s *Server) auditFailedAuthentication(rw http.ResponseWriter, r *http.Request) {
	if s.audit == nil || s.audit.Log == nil {
		return
	}
	ri := requestInfoFrom(r.Context())
	verb := ri.Verb
	if verb == "" {
		verb = nonResourceVerb(r.Method)
	}
	d := s.audit.Policy.Decide(audit.Attributes{Verb: verb, IsResource: ri.IsResource, Group: ri.Group,
		Resource: ri.Resource, Subresource: ri.Subresource, Namespace: ri.Namespace, Name: ri.Name, Path: r.URL.Path})
	if d.Level == audit.LevelNone {
		return
	}
	ev := newAuditEvent(rw, r, ri, verb, auth.User{}, d.Level)
	ev.ResponseStatus = &audit.ResponseStatus{Code: http.StatusUnauthorized, Message: "Authentication failed, attempted: " + strings.Join(authMethods(r), ", ")}
	s.emitAudit(ev, d, audit.StageResponseStarted)
}

// authMethods are the kinds of credential r carries, as upstream's
// failed-authentication audit names them.
func authMethods(r *http.Request) []string {
	var out []string
	h := r.Header.Get("Authorization")
	if strings.HasPrefix(h, "Basic ") {
		out = append(out, "basic")
	}
	if strings.HasPrefix(h, "Bearer ") {
		out = append(out, "bearer")
	}
	if r.TLS != nil && len(r.TLS.PeerCertificates) > 0 {
		out = append(out, "x509")
	}
	return out
}

// compactObject is a recorded body, without managedFields if asked.
func compactObject(b []byte, omitManagedFields bool) json.RawMessage {
	if omitManagedFields {
		var m map[string]any
		if json.Unmarshal(b, &m) == nil {
			if md, ok := m["metadata"].(map[string]any); ok {
				delete(md, "managedFields")
				if out, err := json.Marshal(m); err == nil {
					return out
				}
			}
		}
	}
	var buf bytes.Buffer
	if json.Compact(&buf, b) != nil {
		return nil
	}
	return buf.Bytes()
}

// limitedWriter keeps up to max bytes and then drops all it kept: a
// half-recorded body would be worse than none.
type limitedWriter struct {
	buf  *bytes.Buffer
	max  int
	over bool
}

func (l *limitedWriter) Write(p []byte) (int, error) {
	if !l.over {
		if l.buf.Len()+len(p) > l.max {
			l.over = true
			l.buf.Reset()
		} else {
			l.buf.Write(p)
		}
	}
	return len(p), nil
}

// auditWriter notes the response's code, keeps an error's Status, and
// tells when a streamed response starts.
type auditWriter struct {
	http.ResponseWriter
	code    int
	long    bool
	started func()
	body    bytes.Buffer
	lim     *limitedWriter
}

func (w *auditWriter) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
		if w.long {
			w.started()
		}
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *auditWriter) Write(b []byte) (int, error) {
	if w.code == 0 {
		w.WriteHeader(http.StatusOK)
	}
	if w.code >= 400 && !w.long {
		if w.lim == nil {
			w.lim = &limitedWriter{buf: &w.body, max: auditBodyLimit}
		}
		_, _ = w.lim.Write(b)
	}
	return w.ResponseWriter.Write(b)
}

func (w *auditWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (w *auditWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// Hijack hands the connection over for WebSocket streams.
func (w *auditWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	if w.code == 0 {
		w.code = http.StatusSwitchingProtocols
		if w.long {
			w.started()
		}
	}
	return http.NewResponseController(w.ResponseWriter).Hijack()
}
