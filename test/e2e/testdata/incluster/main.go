// Command incluster is an unmodified in-cluster client-go program, as an
// operator would be: rest.InClusterConfig (the mounted token, CA and
// KUBERNETES_SERVICE_HOST/PORT), then every two seconds a list of pods in
// its own namespace and one in kube-system, each line saying what happened
// and which token (by its ID) the client held.
package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

const dir = "/var/run/secrets/kubernetes.io/serviceaccount/"

func main() {
	cfg, err := rest.InClusterConfig()
	if err != nil {
		fmt.Println("config:", err)
		os.Exit(1)
	}
	cs := kubernetes.NewForConfigOrDie(cfg)
	ns, _ := os.ReadFile(dir + "namespace")
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		own, err := cs.CoreV1().Pods(string(ns)).List(ctx, metav1.ListOptions{})
		switch {
		case err != nil:
			fmt.Printf("own: error %v\n", err)
		default:
			fmt.Printf("own: %d pods\n", len(own.Items))
		}
		_, err = cs.CoreV1().Pods("kube-system").List(ctx, metav1.ListOptions{})
		switch {
		case apierrors.IsForbidden(err):
			fmt.Println("kube-system: forbidden")
		default:
			fmt.Printf("kube-system: %v\n", err)
		}
		cancel()
		fmt.Printf("token: %s\n", tokenID())
		time.Sleep(2 * time.Second)
	}
}

// tokenID is the jti of the token file now.
func tokenID() string {
	b, err := os.ReadFile(dir + "token")
	if err != nil {
		return "unreadable"
	}
	parts := strings.Split(string(b), ".")
	if len(parts) != 3 {
		return "malformed"
	}
	p, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return "malformed"
	}
	var c struct {
		ID string `json:"jti"`
	}
	_ = json.Unmarshal(p, &c)
	return c.ID
}
