package kubelet

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	cri "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// ensureImage makes the container's image present according to its pull
// policy. It returns the image's user (for runAsNonRoot), or, on failure,
// how long the pull back-off still runs.
func (k *Kubelet) ensureImage(ctx context.Context, pod *v1.Pod, c *v1.Container) (uid *int64, user string, wait time.Duration, err error) {
	spec := &cri.ImageSpec{Image: c.Image, UserSpecifiedImage: c.Image}
	status, err := k.rt.ImageStatus(ctx, &cri.ImageStatusRequest{Image: spec})
	present := err == nil && status.Image != nil
	policy := c.ImagePullPolicy
	if policy == "" {
		policy = v1.PullIfNotPresent
	}
	if present && policy != v1.PullAlways {
		k.eventOnce(pod, v1.EventTypeNormal, "Pulled", fmt.Sprintf("Container image %q already present on machine", c.Image))
		uid, user := imageUser(status.Image)
		return uid, user, 0, nil
	}
	if policy == v1.PullNever {
		msg := fmt.Sprintf("Container image %q is not present with pull policy of Never", c.Image)
		k.setWaiting(pod, c.Name, "ErrImageNeverPull", msg)
		k.eventOnce(pod, v1.EventTypeWarning, "ErrImageNeverPull", msg)
		return nil, "", 0, fmt.Errorf("%s", msg)
	}
	key := "pull/" + backoffKey(pod, c.Name)
	if w := k.backoff.Wait(key, k.pullFailed(key)); w > 0 {
		msg := fmt.Sprintf("Back-off pulling image %q", c.Image)
		k.setWaiting(pod, c.Name, "ImagePullBackOff", msg)
		k.eventOnce(pod, v1.EventTypeNormal, "BackOff", msg)
		return nil, "", w, fmt.Errorf("%s", msg)
	}
	k.events.Eventf(pod, v1.EventTypeNormal, "Pulling", "Pulling image %q", c.Image)
	started := k.clock.Now()
	auth, err := k.pullAuth(ctx, pod, c.Image)
	if err != nil {
		k.log.Warn("image pull secrets", "pod", pod.Namespace+"/"+pod.Name, "err", err)
	}
	var resp *cri.PullImageResponse
	for _, a := range append(auth, nil) {
		resp, err = k.rt.PullImage(ctx, &cri.PullImageRequest{Image: spec, Auth: a, SandboxConfig: nil})
		if err == nil {
			break
		}
	}
	if err != nil {
		k.backoff.Next(key)
		k.pullFailures.Store(key, k.clock.Now())
		msg := fmt.Sprintf("Failed to pull image %q: %s", c.Image, criMessage(err))
		k.setWaiting(pod, c.Name, "ErrImagePull", msg)
		k.events.Event(pod, v1.EventTypeWarning, "Failed", msg)
		k.events.Event(pod, v1.EventTypeWarning, "Failed", "Error: ErrImagePull")
		return nil, "", 0, fmt.Errorf("%s", msg)
	}
	k.pullFailures.Delete(key)
	k.events.Eventf(pod, v1.EventTypeNormal, "Pulled", "Successfully pulled image %q in %s", c.Image, k.clock.Since(started).Round(time.Millisecond))
	status, err = k.rt.ImageStatus(ctx, &cri.ImageStatusRequest{Image: &cri.ImageSpec{Image: resp.ImageRef}})
	if err == nil && status.Image != nil {
		uid, user := imageUser(status.Image)
		return uid, user, 0, nil
	}
	return nil, "", 0, nil
}

func (k *Kubelet) pullFailed(key string) time.Time {
	if t, ok := k.pullFailures.Load(key); ok {
		return t.(time.Time)
	}
	return time.Time{}
}

func imageUser(img *cri.Image) (*int64, string) {
	if img.Uid != nil {
		v := img.Uid.Value
		return &v, ""
	}
	if img.Username == "" {
		return nil, ""
	}
	if n, err := strconv.ParseInt(strings.SplitN(img.Username, ":", 2)[0], 10, 64); err == nil {
		return &n, ""
	}
	return nil, img.Username
}

// pullAuth returns the credentials the pod's imagePullSecrets hold for the
// image's registry, in order.
func (k *Kubelet) pullAuth(ctx context.Context, pod *v1.Pod, image string) ([]*cri.AuthConfig, error) {
	host := registryHost(image)
	var out []*cri.AuthConfig
	for _, ref := range pod.Spec.ImagePullSecrets {
		s, err := k.client.CoreV1().Secrets(pod.Namespace).Get(ctx, ref.Name, metav1.GetOptions{})
		if err != nil {
			return out, fmt.Errorf("secret %q: %w", ref.Name, err)
		}
		var auths map[string]dockerAuth
		switch s.Type {
		case v1.SecretTypeDockerConfigJson:
			var cfg struct {
				Auths map[string]dockerAuth `json:"auths"`
			}
			if err := json.Unmarshal(s.Data[v1.DockerConfigJsonKey], &cfg); err != nil {
				return out, fmt.Errorf("secret %q: %w", ref.Name, err)
			}
			auths = cfg.Auths
		case v1.SecretTypeDockercfg:
			if err := json.Unmarshal(s.Data[v1.DockerConfigKey], &auths); err != nil {
				return out, fmt.Errorf("secret %q: %w", ref.Name, err)
			}
		}
		for server, a := range auths {
			if registryHost(strings.TrimPrefix(strings.TrimPrefix(server, "https://"), "http://")+"/x") != host {
				continue
			}
			user, pass := a.Username, a.Password
			if a.Auth != "" {
				if dec, err := base64.StdEncoding.DecodeString(a.Auth); err == nil {
					user, pass, _ = strings.Cut(string(dec), ":")
				}
			}
			out = append(out, &cri.AuthConfig{Username: user, Password: pass, ServerAddress: server})
		}
	}
	return out, nil
}

type dockerAuth struct {
	Username string `json:"username"`
	Password string `json:"password"`
	Auth     string `json:"auth"`
}

// registryHost is the registry part of an image reference, docker.io for
// short names (the Docker convention every client follows).
func registryHost(image string) string {
	first, _, found := strings.Cut(image, "/")
	if !found || (!strings.ContainsAny(first, ".:") && first != "localhost") {
		return "docker.io"
	}
	if first == "index.docker.io" || first == "registry-1.docker.io" {
		return "docker.io"
	}
	return first
}
