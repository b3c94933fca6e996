package e2e

import (
	"context"
	"io"
	"net/http"
	"time"
)

// fetchInNetns GETs a URL from inside the cluster's network namespace.
func fetchInNetns(url string) (string, error) {
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		DialContext:       cl.dialInNetns,
		DisableKeepAlives: true,
	}}
	req, err := http.NewRequestWithContext(context.Background(), http.MethodGet, url, nil)
	if err != nil {
		return "", err
	}
	resp, err := client.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}
