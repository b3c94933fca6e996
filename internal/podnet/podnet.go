// Package podnet joins the nodes' pod networks (host-gw): every node gets
// a route to each other node's pod CIDR through that node's InternalIP,
// kept current from a Node informer. Routes computes them from the Nodes;
// Router applies them with netlink.
package podnet

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"reflect"
	"sort"
	"time"

	"github.com/skiff-sh/skiff/internal/work"

	"github.com/vishvananda/netlink"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/tools/cache"
)

// routeProtocol marks the routes skiff owns, so it finds and removes its
// own stale routes without touching anyone else's.
const routeProtocol = netlink.RouteProtocol(77)

// Route sends one pod range to the node that holds it.
type Route struct {
	Dst *net.IPNet
	Via net.IP
}

func (r Route) String() string { return r.Dst.String() + " via " + r.Via.String() }

// Routes are the routes node self needs: one per other node with an IPv4
// pod CIDR and an InternalIP, sorted by destination.
func Routes(self string, nodes []*v1.Node) []Route {
	var out []Route
	for _, n := range nodes {
		if n.Name == self || n.DeletionTimestamp != nil {
			continue
		}
		via := internalIPv4(n)
		if via == nil {
			continue
		}
		cidrs := n.Spec.PodCIDRs
		if len(cidrs) == 0 && n.Spec.PodCIDR != "" {
			cidrs = []string{n.Spec.PodCIDR}
		}
		for _, c := range cidrs {
			_, dst, err := net.ParseCIDR(c)
			if err != nil || dst.IP.To4() == nil {
				continue
			}
			out = append(out, Route{Dst: dst, Via: via})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Dst.String() < out[j].Dst.String() })
	return out
}

func internalIPv4(n *v1.Node) net.IP {
	for _, a := range n.Status.Addresses {
		if a.Type == v1.NodeInternalIP {
			if ip := net.ParseIP(a.Address).To4(); ip != nil {
				return ip
			}
		}
	}
	return nil
}

// Router installs routes in the agent's network namespace.
type Router struct {
	Log *slog.Logger
}

// Sync makes the kernel hold exactly want among skiff's routes.
func (r *Router) Sync(want []Route) error {
	have, err := netlink.RouteListFiltered(netlink.FAMILY_V4, &netlink.Route{Protocol: routeProtocol}, netlink.RT_FILTER_PROTOCOL)
	if err != nil {
		return fmt.Errorf("list routes: %w", err)
	}
	wanted := map[string]Route{}
	for _, w := range want {
		wanted[w.Dst.String()] = w
	}
	for _, h := range have {
		if h.Dst == nil {
			continue
		}
		if w, ok := wanted[h.Dst.String()]; ok && w.Via.Equal(h.Gw) {
			delete(wanted, h.Dst.String())
			continue
		}
		if _, ok := wanted[h.Dst.String()]; ok {
			continue // replaced below
		}
		if err := netlink.RouteDel(&h); err != nil {
			r.Log.Warn("remove stale pod route", "dst", h.Dst.String(), "err", err)
		}
	}
	var firstErr error
	for _, w := range wanted {
		rt := &netlink.Route{Dst: w.Dst, Gw: w.Via, Protocol: routeProtocol}
		if err := netlink.RouteReplace(rt); err != nil {
			// A node off this link cannot be reached host-gw: say so and
			// keep the other routes.
			r.Log.Warn("pod route", "route", w.String(), "err", err)
			if firstErr == nil {
				firstErr = fmt.Errorf("route %s: %w", w, err)
			}
			continue
		}
		r.Log.Debug("pod route", "route", w.String())
	}
	return firstErr
}

// Run keeps the routes current until ctx ends. Forwarding is switched on
// first: the node routes between its bridge and its uplink.
func Run(ctx context.Context, self string, factory informers.SharedInformerFactory, log *slog.Logger) error {
	for _, f := range []string{"/proc/sys/net/ipv4/ip_forward", "/proc/sys/net/bridge/bridge-nf-call-iptables"} {
		// The second makes bridged pod-to-pod traffic pass the ip hooks,
		// so a Service's reply from a pod on the same bridge is un-NATed.
		if err := os.WriteFile(f, []byte("1"), 0o644); err != nil {
			log.Warn("sysctl", "file", f, "err", err)
		}
	}
	nodes := factory.Core().V1().Nodes()
	kick := work.NewSignal()
	trigger := func(any) { kick.Fire() }
	_, _ = nodes.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: trigger, DeleteFunc: trigger,
		UpdateFunc: func(old, cur any) {
			o, n := old.(*v1.Node), cur.(*v1.Node)
			if o.Spec.PodCIDR != n.Spec.PodCIDR || !reflect.DeepEqual(o.Status.Addresses, n.Status.Addresses) || (o.DeletionTimestamp == nil) != (n.DeletionTimestamp == nil) {
				trigger(cur)
			}
		},
	})
	factory.Start(ctx.Done())
	if !cache.WaitForCacheSync(ctx.Done(), nodes.Informer().HasSynced) {
		return ctx.Err()
	}
	r := &Router{Log: log}
	retry := time.NewTimer(time.Hour)
	defer retry.Stop()
	for {
		list, err := nodes.Lister().List(labels.Everything())
		if err == nil {
			err = r.Sync(Routes(self, list))
		}
		retry.Reset(time.Hour)
		if err != nil {
			retry.Reset(10 * time.Second)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-kick.C:
		case <-retry.C:
		}
	}
}
