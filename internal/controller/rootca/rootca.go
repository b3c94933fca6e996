// Package rootca publishes the cluster CA as the kube-root-ca.crt ConfigMap
// in every active namespace, and puts it back when it is changed or removed.
package rootca

import (
	"context"
	"log/slog"

	"github.com/skiff-sh/skiff/internal/work"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"

	"github.com/skiff-sh/skiff/internal/controller"
)

const (
	// Name is the ConfigMap's name, as upstream.
	Name = "kube-root-ca.crt"
	// DataKey holds the PEM bundle.
	DataKey        = "ca.crt"
	descriptionKey = "kubernetes.io/description"
	description    = "Contains a CA bundle that can be used to verify the kube-apiserver when using internal endpoints such as the internal service IP or kubernetes.default.svc. No other usage is guaranteed across distributions of Kubernetes clusters."
)

// Controller keeps kube-root-ca.crt in every namespace.
type Controller struct {
	client     kubernetes.Interface
	ca         string
	namespaces corelisters.NamespaceLister
	configMaps corelisters.ConfigMapLister
	synced     []cache.InformerSynced
	cmInformer cache.SharedIndexInformer
	queue      workqueue.TypedRateLimitingInterface[string]
	log        *slog.Logger
}

// New registers the controller's informer handlers. ConfigMaps are watched
// by name only, not all of them.
func New(cc *controller.Context) (controller.Controller, error) {
	ns := cc.Informers.Core().V1().Namespaces()
	lw := cache.NewFilteredListWatchFromClient(cc.InformerClient.CoreV1().RESTClient(), "configmaps", metav1.NamespaceAll, func(o *metav1.ListOptions) {
		o.FieldSelector = fields.OneTermEqualSelector("metadata.name", Name).String()
	})
	cms := cache.NewSharedIndexInformer(lw, &corev1.ConfigMap{}, 0, cache.Indexers{cache.NamespaceIndex: cache.MetaNamespaceIndexFunc})
	c := &Controller{
		client:     cc.Client,
		ca:         string(cc.RootCA),
		namespaces: ns.Lister(),
		configMaps: corelisters.NewConfigMapLister(cms.GetIndexer()),
		synced:     []cache.InformerSynced{ns.Informer().HasSynced, cms.HasSynced},
		cmInformer: cms,
		queue:      work.NewQueue[string]("root-ca-cert-publisher"),
		log:        cc.Log.With("controller", "root-ca-cert-publisher"),
	}
	if _, err := ns.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { c.queue.Add(obj.(*corev1.Namespace).Name) },
		UpdateFunc: func(_, obj any) { c.queue.Add(obj.(*corev1.Namespace).Name) },
	}); err != nil {
		return nil, err
	}
	enqueueCM := func(obj any) {
		if tomb, ok := obj.(cache.DeletedFinalStateUnknown); ok {
			obj = tomb.Obj
		}
		if cm, ok := obj.(*corev1.ConfigMap); ok {
			c.queue.Add(cm.Namespace)
		}
	}
	_, err := cms.AddEventHandler(cache.ResourceEventHandlerFuncs{
		UpdateFunc: func(_, obj any) { enqueueCM(obj) },
		DeleteFunc: enqueueCM,
	})
	return c, err
}

// Run implements controller.Controller.
func (c *Controller) Run(ctx context.Context, workers int) {
	go c.cmInformer.RunWithContext(ctx)
	work.Serve(ctx, c.log, c.queue, workers, c.sync, c.synced...)
}

func (c *Controller) sync(ctx context.Context, namespace string) error {
	ns, err := c.namespaces.Get(namespace)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	if ns.Status.Phase != corev1.NamespaceActive || ns.DeletionTimestamp != nil {
		return nil
	}
	cms := c.client.CoreV1().ConfigMaps(namespace)
	cur, err := c.configMaps.ConfigMaps(namespace).Get(Name)
	if apierrors.IsNotFound(err) {
		_, err = cms.Create(ctx, &corev1.ConfigMap{
			ObjectMeta: metav1.ObjectMeta{Name: Name, Annotations: map[string]string{descriptionKey: description}},
			Data:       map[string]string{DataKey: c.ca},
		}, metav1.CreateOptions{})
		// A namespace that is gone or going wants nothing more; any other
		// refusal (a quota not counted yet, say) is retried.
		if apierrors.IsAlreadyExists(err) || apierrors.IsNotFound(err) || apierrors.HasStatusCause(err, corev1.NamespaceTerminatingCause) {
			return nil
		}
		return err
	}
	if err != nil {
		return err
	}
	if cur.Data[DataKey] == c.ca && len(cur.Data) == 1 && len(cur.BinaryData) == 0 && cur.Annotations[descriptionKey] == description {
		return nil
	}
	fixed := cur.DeepCopy()
	fixed.Data, fixed.BinaryData = map[string]string{DataKey: c.ca}, nil
	if fixed.Annotations == nil {
		fixed.Annotations = map[string]string{}
	}
	fixed.Annotations[descriptionKey] = description
	_, err = cms.Update(ctx, fixed, metav1.UpdateOptions{})
	if apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
		return work.RetryAfter(0)
	}
	return err
}
