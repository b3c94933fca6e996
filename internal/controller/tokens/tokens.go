// Package tokens fills Secrets of type kubernetes.io/service-account-token,
// as upstream's tokens controller: a long-lived (legacy) token of the
// ServiceAccount the Secret names, the cluster CA and the namespace; a
// Secret whose ServiceAccount is gone (or was recreated) is deleted, which
// also ends its token.
package tokens

import (
	"context"
	"log/slog"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"

	"github.com/skiff-sh/skiff/internal/controller"
	"github.com/skiff-sh/skiff/internal/satoken"
	"github.com/skiff-sh/skiff/internal/work"
)

// Controller fills ServiceAccount token Secrets.
type Controller struct {
	client   kubernetes.Interface
	key      *satoken.Key
	ca       []byte
	secrets  corelisters.SecretLister
	accounts corelisters.ServiceAccountLister
	synced   []cache.InformerSynced
	queue    workqueue.TypedRateLimitingInterface[string]
	log      *slog.Logger
}

// New registers the controller's handlers (ServiceAccount changes requeue
// their namespace's token Secrets).
func New(cc *controller.Context) (controller.Controller, error) {
	sec := cc.Informers.Core().V1().Secrets()
	sa := cc.Informers.Core().V1().ServiceAccounts()
	c := &Controller{client: cc.Client, key: cc.TokenKey, ca: cc.RootCA, secrets: sec.Lister(), accounts: sa.Lister(),
		synced: []cache.InformerSynced{sec.Informer().HasSynced, sa.Informer().HasSynced},
		queue:  work.NewQueue[string]("serviceaccount-token"), log: cc.Log.With("controller", "serviceaccount-token")}
	enqueue := func(o any) {
		if s, ok := o.(*corev1.Secret); ok && s.Type == corev1.SecretTypeServiceAccountToken {
			c.queue.Add(s.Namespace + "/" + s.Name)
		}
	}
	if _, err := sec.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{AddFunc: enqueue, UpdateFunc: func(_, o any) { enqueue(o) }}); err != nil {
		return nil, err
	}
	accountChanged := func(o any) {
		if tomb, ok := o.(cache.DeletedFinalStateUnknown); ok {
			o = tomb.Obj
		}
		a, ok := o.(*corev1.ServiceAccount)
		if !ok {
			return
		}
		list, _ := c.secrets.Secrets(a.Namespace).List(labels.Everything())
		for _, s := range list {
			if s.Type == corev1.SecretTypeServiceAccountToken && s.Annotations[corev1.ServiceAccountNameKey] == a.Name {
				c.queue.Add(s.Namespace + "/" + s.Name)
			}
		}
	}
	_, err := sa.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{AddFunc: accountChanged, UpdateFunc: func(_, o any) { accountChanged(o) }, DeleteFunc: accountChanged})
	return c, err
}

// Run implements controller.Controller.
func (c *Controller) Run(ctx context.Context, workers int) {
	if c.key == nil {
		c.log.Info("no service-account key: token Secrets are not filled")
		<-ctx.Done()
		return
	}
	work.Serve(ctx, c.log, c.queue, workers, c.sync, c.synced...)
}

func (c *Controller) sync(ctx context.Context, key string) error {
	ns, name, _ := cache.SplitMetaNamespaceKey(key)
	s, err := c.secrets.Secrets(ns).Get(name)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil || s.Type != corev1.SecretTypeServiceAccountToken || s.DeletionTimestamp != nil {
		return err
	}
	saName := s.Annotations[corev1.ServiceAccountNameKey]
	sa, err := c.accounts.ServiceAccounts(ns).Get(saName)
	if apierrors.IsNotFound(err) || (err == nil && s.Annotations[corev1.ServiceAccountUIDKey] != "" && types.UID(s.Annotations[corev1.ServiceAccountUIDKey]) != sa.UID) {
		// Its account is gone: so is the Secret (and with it the token).
		err := c.client.CoreV1().Secrets(ns).Delete(ctx, name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &s.UID}})
		if apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
			return nil
		}
		return err
	}
	if err != nil {
		return err
	}
	if len(s.Data[corev1.ServiceAccountTokenKey]) > 0 && string(s.Data[corev1.ServiceAccountRootCAKey]) == string(c.ca) && string(s.Data[corev1.ServiceAccountNamespaceKey]) == ns {
		return nil
	}
	next := s.DeepCopy()
	if next.Annotations == nil {
		next.Annotations = map[string]string{}
	}
	next.Annotations[corev1.ServiceAccountUIDKey] = string(sa.UID)
	if next.Data == nil {
		next.Data = map[string][]byte{}
	}
	if len(next.Data[corev1.ServiceAccountTokenKey]) == 0 {
		tok, err := c.key.Sign(satoken.Claims{Issuer: satoken.LegacyIssuer, Subject: satoken.Subject(ns, sa.Name),
			LegacyNamespace: ns, LegacySecret: name, LegacyName: sa.Name, LegacyUID: string(sa.UID)})
		if err != nil {
			return err
		}
		next.Data[corev1.ServiceAccountTokenKey] = []byte(tok)
	}
	next.Data[corev1.ServiceAccountRootCAKey] = c.ca
	next.Data[corev1.ServiceAccountNamespaceKey] = []byte(ns)
	_, err = c.client.CoreV1().Secrets(ns).Update(ctx, next, metav1.UpdateOptions{})
	if apierrors.IsConflict(err) || apierrors.IsNotFound(err) {
		c.queue.Add(key)
		return nil
	}
	return err
}
