package audit

import (
	"encoding/json"
	"io"
	"os"
	"sync"
	"time"

	"gopkg.in/natefinch/lumberjack.v2"
)

// Event is one audit.k8s.io/v1 Event, as upstream writes it.
type Event struct {
	Kind                     string            `json:"kind"`
	APIVersion               string            `json:"apiVersion"`
	Level                    Level             `json:"level"`
	AuditID                  string            `json:"auditID"`
	Stage                    Stage             `json:"stage"`
	RequestURI               string            `json:"requestURI"`
	Verb                     string            `json:"verb"`
	User                     UserInfo          `json:"user"`
	ImpersonatedUser         *UserInfo         `json:"impersonatedUser,omitempty"`
	SourceIPs                []string          `json:"sourceIPs,omitempty"`
	UserAgent                string            `json:"userAgent,omitempty"`
	ObjectRef                *ObjectReference  `json:"objectRef,omitempty"`
	ResponseStatus           *ResponseStatus   `json:"responseStatus,omitempty"`
	RequestObject            json.RawMessage   `json:"requestObject,omitempty"`
	ResponseObject           json.RawMessage   `json:"responseObject,omitempty"`
	RequestReceivedTimestamp MicroTime         `json:"requestReceivedTimestamp"`
	StageTimestamp           MicroTime         `json:"stageTimestamp"`
	Annotations              map[string]string `json:"annotations,omitempty"`
}

// UserInfo is who made a request.
type UserInfo struct {
	Username string              `json:"username"`
	UID      string              `json:"uid,omitempty"`
	Groups   []string            `json:"groups,omitempty"`
	Extra    map[string][]string `json:"extra,omitempty"`
}

// ObjectReference is what a request is about.
type ObjectReference struct {
	Resource    string `json:"resource,omitempty"`
	Namespace   string `json:"namespace,omitempty"`
	Name        string `json:"name,omitempty"`
	APIGroup    string `json:"apiGroup,omitempty"`
	APIVersion  string `json:"apiVersion,omitempty"`
	Subresource string `json:"subresource,omitempty"`
}

// ResponseStatus is the answer's code (and, for a failure, its Status).
type ResponseStatus struct {
	Metadata struct{} `json:"metadata"`
	Status   string   `json:"status,omitempty"`
	Message  string   `json:"message,omitempty"`
	Reason   string   `json:"reason,omitempty"`
	Code     int      `json:"code"`
}

// MicroTime marshals as upstream's RFC 3339 with microseconds.
type MicroTime time.Time

// Log writes events, one JSON line each.
type Log struct {
	mu sync.Mutex
	w  io.Writer
}

// LogConfig is where and how the log is kept (upstream's --audit-log-*).
type LogConfig struct {
	// Path is the file; "-" is standard output.
	Path string
	// MaxAge is how many days old files are kept (0: no limit), MaxBackup
	// how many (0: no limit), MaxSize the megabytes a file grows to before
	// it is rotated (0: 100).
	MaxAge, MaxBackup, MaxSize int
}

// NewLog opens the log (the file is made mode 0600).
func NewLog(c LogConfig) (*Log, error) {
	if c.Path == "-" {
		return &Log{w: os.Stdout}, nil
	}
	// lumberjack makes the file with 0600 and rotates it.
	return &Log{w: &lumberjack.Logger{Filename: c.Path, MaxAge: c.MaxAge, MaxBackups: c.MaxBackup, MaxSize: c.MaxSize, LocalTime: false}}, nil
}

// Write records one event.
func (l *Log) Write(e *Event) error {
	b, ok := e.appendJSON(make([]byte, 0, 1024))
	if !ok {
		var err error
		if b, err = json.Marshal(e); err != nil {
			return err
		}
	}
	b = append(b, '\n')
	l.mu.Lock()
	defer l.mu.Unlock()
	_, err := l.w.Write(b)
	return err
}

// Close closes the file.
func (l *Log) Close() error {
	if c, ok := l.w.(io.Closer); ok && l.w != os.Stdout {
		return c.Close()
	}
	return nil
}
