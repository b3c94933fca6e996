// Package kubeclient holds the client set-up every component of skiff shares,
// apart from any one of them: the wire format and rate limits of the
// connections its own components open to the API server.
package kubeclient

import (
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
)

// Protobuf asks for protobuf, as upstream's controllers and scheduler do; a
// copy of c is returned.
func Protobuf(c *rest.Config) *rest.Config {
	c = rest.CopyConfig(c)
	c.ContentType = runtime.ContentTypeProtobuf
	c.AcceptContentTypes = runtime.ContentTypeProtobuf + "," + runtime.ContentTypeJSON
	return c
}
