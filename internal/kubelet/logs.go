package kubelet

import (
	"bufio"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	v1 "k8s.io/api/core/v1"
)

// containerLogPath is the CRI log file of one run of a container.
func (k *Kubelet) containerLogPath(pod *v1.Pod, name string, restartCount int) string {
	return filepath.Join(k.logDir(pod), name, strconv.Itoa(restartCount)+".log")
}

// logTail returns the last lines (at most maxBytes) of a container's log,
// without the CRI timestamps and stream tags.
func (k *Kubelet) logTail(pod *v1.Pod, name string, restartCount, lines, maxBytes int) string {
	f, err := os.Open(k.containerLogPath(pod, name, restartCount))
	if err != nil {
		return ""
	}
	defer f.Close()
	var ring []string
	s := bufio.NewScanner(f)
	s.Buffer(make([]byte, 64<<10), 1<<20)
	var partial strings.Builder
	for s.Scan() {
		e, ok := parseCRILog(s.Bytes())
		if !ok {
			continue
		}
		partial.Write(e.content)
		if !e.partial {
			ring = append(ring, partial.String())
			partial.Reset()
			if len(ring) > lines {
				ring = ring[1:]
			}
		}
	}
	if partial.Len() > 0 {
		// Output without a final newline is still the last line.
		ring = append(ring, partial.String())
		if len(ring) > lines {
			ring = ring[1:]
		}
	}
	out := strings.Join(ring, "\n")
	if len(out) > maxBytes {
		out = out[len(out)-maxBytes:]
	}
	return out
}

// criLogEntry is one line of the CRI log format:
// "2016-10-06T00:17:09.669794202Z stdout F content".
type criLogEntry struct {
	timestamp string
	stream    string
	partial   bool
	content   []byte
}

func parseCRILog(line []byte) (criLogEntry, bool) {
	parts := strings.SplitN(string(line), " ", 4)
	if len(parts) < 3 {
		return criLogEntry{}, false
	}
	e := criLogEntry{timestamp: parts[0], stream: parts[1]}
	if len(parts) == 4 {
		e.partial = parts[2] == "P"
		e.content = []byte(parts[3])
	} else {
		// "ts stream F" with empty content
		e.partial = parts[2] == "P"
	}
	return e, true
}
