package apiserver

import (
	"errors"
	"fmt"
	"net/http"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// toStatus turns any error into the Status a client receives; errors that
// are not API errors become 500 InternalError.
func toStatus(err error) *metav1.Status {
	var se apierrors.APIStatus
	if errors.As(err, &se) {
		s := se.Status()
		if s.Status == "" {
			s.Status = metav1.StatusFailure
		}
		return statusObject(&s)
	}
	if runtime.IsStrictDecodingError(err) {
		return statusObject(&apierrors.NewBadRequest(err.Error()).ErrStatus)
	}
	return statusObject(&apierrors.NewInternalError(err).ErrStatus)
}

// writeError sends err as a Status in JSON (or protobuf when asked).
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	st := toStatus(err)
	if st.Code == 0 {
		st.Code = http.StatusInternalServerError
	}
	out := Output{Media: mediaJSON}
	if strings.Contains(r.Header.Get("Accept"), mediaProtobuf) && !strings.Contains(r.Header.Get("Accept"), mediaJSON) {
		out.Media = mediaProtobuf
	}
	body, encErr := s.codecs.EncodeAs(out, st)
	if encErr != nil {
		body = []byte(fmt.Sprintf(`{"kind":"Status","apiVersion":"v1","status":"Failure","message":%q,"code":500}`, encErr.Error()))
	}
	w.Header().Set("Content-Type", out.Media)
	w.Header().Set("Cache-Control", "no-cache, private")
	if st.Code == http.StatusTooManyRequests || st.Code == http.StatusGatewayTimeout || st.Code == http.StatusServiceUnavailable {
		if st.Details != nil && st.Details.RetryAfterSeconds > 0 {
			w.Header().Set("Retry-After", fmt.Sprint(st.Details.RetryAfterSeconds))
		}
	}
	w.WriteHeader(int(st.Code))
	w.Write(body)
}

func badRequest(format string, args ...any) error {
	return apierrors.NewBadRequest(fmt.Sprintf(format, args...))
}

func statusError(code int, reason metav1.StatusReason, msg string) error {
	return &apierrors.StatusError{ErrStatus: metav1.Status{Status: metav1.StatusFailure, Code: int32(code), Reason: reason, Message: msg}}
}
