package audit

import (
	"encoding/json"
	"maps"
	"slices"
	"strconv"
	"time"

	"github.com/skiff-sh/skiff/internal/objectjson"
)

// appendJSON appends e as json.Marshal encodes it, without its reflection
// (an audit log writes one or two events per request: json.Marshal was
// half of the log's cost). Events that carry request or response objects
// are left to encoding/json, which also compacts and escapes those; ok is
// false for them.
func (e *Event) appendJSON(dst []byte) (_ []byte, ok bool) {
	if e.RequestObject != nil || e.ResponseObject != nil {
		return dst, false
	}
	dst = append(dst, `{"kind":`...)
	dst = objectjson.AppendString(dst, e.Kind)
	dst = appendField(dst, "apiVersion", e.APIVersion)
	dst = appendField(dst, "level", string(e.Level))
	dst = appendField(dst, "auditID", e.AuditID)
	dst = appendField(dst, "stage", string(e.Stage))
	dst = appendField(dst, "requestURI", e.RequestURI)
	dst = appendField(dst, "verb", e.Verb)
	dst = append(dst, `,"user":`...)
	dst = e.User.appendJSON(dst)
	if e.ImpersonatedUser != nil {
		dst = append(dst, `,"impersonatedUser":`...)
		dst = e.ImpersonatedUser.appendJSON(dst)
	}
	if len(e.SourceIPs) > 0 {
		dst = append(dst, `,"sourceIPs":`...)
		dst = appendStrings(dst, e.SourceIPs)
	}
	if e.UserAgent != "" {
		dst = appendField(dst, "userAgent", e.UserAgent)
	}
	if r := e.ObjectRef; r != nil {
		dst = append(dst, `,"objectRef":{`...)
		n := len(dst)
		for _, f := range [...]struct{ name, value string }{{"resource", r.Resource}, {"namespace", r.Namespace}, {"name", r.Name},
			{"apiGroup", r.APIGroup}, {"apiVersion", r.APIVersion}, {"subresource", r.Subresource}} {
			if f.value != "" {
				dst = appendField(dst, f.name, f.value)
			}
		}
		if len(dst) > n { // the first field's comma goes
			dst = append(dst[:n], dst[n+1:]...)
		}
		dst = append(dst, '}')
	}
	if s := e.ResponseStatus; s != nil {
		dst = append(dst, `,"responseStatus":{"metadata":{}`...)
		for _, f := range [...]struct{ name, value string }{{"status", s.Status}, {"message", s.Message}, {"reason", s.Reason}} {
			if f.value != "" {
				dst = appendField(dst, f.name, f.value)
			}
		}
		dst = append(dst, `,"code":`...)
		dst = strconv.AppendInt(dst, int64(s.Code), 10)
		dst = append(dst, '}')
	}
	dst = append(dst, `,"requestReceivedTimestamp":`...)
	dst = e.RequestReceivedTimestamp.appendJSON(dst)
	dst = append(dst, `,"stageTimestamp":`...)
	dst = e.StageTimestamp.appendJSON(dst)
	if len(e.Annotations) > 0 {
		dst = append(dst, `,"annotations":`...)
		dst = appendMap(dst, e.Annotations, objectjson.AppendString)
	}
	return append(dst, '}'), true
}

func (u *UserInfo) appendJSON(dst []byte) []byte {
	dst = append(dst, `{"username":`...)
	dst = objectjson.AppendString(dst, u.Username)
	if u.UID != "" {
		dst = appendField(dst, "uid", u.UID)
	}
	if len(u.Groups) > 0 {
		dst = append(dst, `,"groups":`...)
		dst = appendStrings(dst, u.Groups)
	}
	if len(u.Extra) > 0 {
		dst = append(dst, `,"extra":`...)
		dst = appendMap(dst, u.Extra, appendStrings)
	}
	return append(dst, '}')
}

// appendField appends ,"name":value.
func appendField(dst []byte, name, value string) []byte {
	dst = append(dst, ',', '"')
	dst = append(dst, name...)
	dst = append(dst, '"', ':')
	return objectjson.AppendString(dst, value)
}

// appendStrings appends a list as encoding/json does a []string (null for
// a nil one).
func appendStrings(dst []byte, l []string) []byte {
	if l == nil {
		return append(dst, "null"...)
	}
	dst = append(dst, '[')
	for i, s := range l {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = objectjson.AppendString(dst, s)
	}
	return append(dst, ']')
}

// appendMap appends m as encoding/json does a map: keys sorted.
func appendMap[V any](dst []byte, m map[string]V, value func([]byte, V) []byte) []byte {
	dst = append(dst, '{')
	for i, k := range slices.Sorted(maps.Keys(m)) {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = objectjson.AppendString(dst, k)
		dst = append(dst, ':')
		dst = value(dst, m[k])
	}
	return append(dst, '}')
}

// microFormat is upstream's MicroTime layout: RFC 3339 with microseconds.
const microFormat = "2006-01-02T15:04:05.000000Z07:00"

func (t MicroTime) appendJSON(dst []byte) []byte {
	dst = append(dst, '"')
	dst = time.Time(t).UTC().AppendFormat(dst, microFormat)
	return append(dst, '"')
}

// MarshalJSON implements json.Marshaler.
func (t MicroTime) MarshalJSON() ([]byte, error) {
	return json.Marshal(time.Time(t).UTC().Format(microFormat))
}
