package cel

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/google/cel-go/common/types"
)

// The quantity, url and format libraries answer as upstream's do.
func TestKubernetesLibraries(t *testing.T) {
	env, err := NewEnv(Var{Name: "self"})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		expr string
		want any // a Go value, or an error's text when wantErr
		err  bool
	}{
		{`isQuantity("100Mi")`, true, false},
		{`isQuantity("100 apples")`, false, false},
		{`quantity("1Gi").isGreaterThan(quantity("1000Mi"))`, true, false},
		{`quantity("500m").isLessThan(quantity("1"))`, true, false},
		{`quantity("2").compareTo(quantity("2000m"))`, int64(0), false},
		{`quantity("1.5").isInteger()`, false, false},
		{`quantity("3k").asInteger()`, int64(3000), false},
		{`quantity("1.5").asApproximateFloat()`, 1.5, false},
		{`quantity("-2").sign()`, int64(-1), false},
		{`quantity("1Gi").add(quantity("1Gi")) == quantity("2Gi")`, true, false},
		{`quantity("5").sub(2) == quantity("3")`, true, false},
		{`quantity("1.5").asInteger()`, "cannot convert value to integer", true},
		{`quantity("many")`, "quantities must match", true},
		{`isURL("https://example.com:8443/a%20b?x=1&x=2")`, true, false},
		{`isURL("not a url")`, false, false},
		{`url("https://example.com:8443/a%20b?x=1&x=2").getScheme()`, "https", false},
		{`url("https://example.com:8443/a").getHost()`, "example.com:8443", false},
		{`url("https://[::1]:80/").getHostname()`, "::1", false},
		{`url("https://example.com:8443/a").getPort()`, "8443", false},
		{`url("https://example.com/a%20b").getEscapedPath()`, "/a%20b", false},
		{`url("https://example.com/?x=1&x=2").getQuery()["x"]`, []string{"1", "2"}, false},
		{`format.dns1123Label().validate("my-name")`, nil, false},
		{`format.dns1123Label().validate("My_Name").hasValue()`, true, false},
		{`format.named("uuid").value().validate("nope").value()`, []string{"does not match the UUID format"}, false},
		{`format.named("no-such-format").hasValue()`, false, false},
		{`format.labelValue().validate("ok.value")`, nil, false},
		{`format.datetime().validate("2026-12-05T10:00:00Z")`, nil, false},
		{`isSemver("1.2.3-rc.1+build")`, true, false},
		{`isSemver("v1.2")`, false, false},
		{`isSemver("v1.2", true)`, true, false},
		{`semver("v01.2", true).major()`, int64(1), false},
		{`semver("1.10.0").isGreaterThan(semver("1.9.3"))`, true, false},
		{`semver("1.0.0-alpha").isLessThan(semver("1.0.0"))`, true, false},
		{`semver("1.2.3").compareTo(semver("1.2.3"))`, int64(0), false},
		{`semver("1.2.3").minor() + semver("1.2.3").patch()`, int64(5), false},
		{`semver("1.2")`, "could not parse semver", true},
	} {
		p, err := Compile(env, tc.expr, StaticEstimatedCostLimit, MaxRequestSizeBytes)
		if err != nil {
			t.Errorf("%s: %v", tc.expr, err)
			continue
		}
		out, _, err := p.Eval(map[string]any{"self": nil})
		if tc.err {
			if err == nil || !strings.Contains(err.Error(), tc.want.(string)) {
				t.Errorf("%s: %v, %v; want an error with %q", tc.expr, out, err, tc.want)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tc.expr, err)
			continue
		}
		switch want := tc.want.(type) {
		case nil:
			if out != types.OptionalNone {
				t.Errorf("%s = %v, want optional.none()", tc.expr, out)
			}
		case []string:
			got, err := out.ConvertToNative(typeOfStrings)
			if err != nil || strings.Join(got.([]string), "|") != strings.Join(want, "|") {
				t.Errorf("%s = %v (%v), want %v", tc.expr, out, err, want)
			}
		default:
			if out.Value() != want {
				t.Errorf("%s = %v (%T), want %v", tc.expr, out.Value(), out.Value(), want)
			}
		}
	}
}

var typeOfStrings = reflect.TypeOf([]string(nil))

// The authorizer library asks the Authorize it is given, as the request's
// user or a ServiceAccount, and answers with its decision.
func TestAuthorizerLibrary(t *testing.T) {
	var asked []AuthzCheck
	authorize := func(c AuthzCheck) (bool, string, error) {
		asked = append(asked, c)
		switch {
		case c.Verb == "boom":
			return false, "", errors.New("authorizer unavailable")
		case c.ServiceAccount != "":
			return false, "no RBAC policy matched", nil
		}
		return c.Resource == "deployments" || c.Path == "/healthz", "", nil
	}
	vars := append([]Var{{Name: "object"}}, AuthorizerVars()...)
	env, err := NewEnv(vars...)
	if err != nil {
		t.Fatal(err)
	}
	in := map[string]any{"object": nil, "authorizer": NewAuthorizer(authorize),
		"authorizer.requestResource": NewResourceCheck(authorize, "apps", "deployments", "scale", "prod", "web")}
	for _, tc := range []struct {
		expr string
		want any
		last AuthzCheck
	}{
		{`authorizer.group('apps').resource('deployments').namespace('prod').name('web').check('update').allowed()`, true,
			AuthzCheck{Verb: "update", Group: "apps", Resource: "deployments", Namespace: "prod", Name: "web"}},
		{`authorizer.group('').resource('secrets').subresource('x').check('get').allowed()`, false,
			AuthzCheck{Verb: "get", Resource: "secrets", Subresource: "x"}},
		{`authorizer.path('/healthz').check('get').allowed()`, true, AuthzCheck{Verb: "get", Path: "/healthz"}},
		{`authorizer.serviceAccount('ns', 'robot').group('apps').resource('deployments').check('list').reason()`, "no RBAC policy matched",
			AuthzCheck{ServiceAccount: "ns/robot", Verb: "list", Group: "apps", Resource: "deployments"}},
		{`authorizer.requestResource.check('patch').allowed()`, true,
			AuthzCheck{Verb: "patch", Group: "apps", Resource: "deployments", Subresource: "scale", Namespace: "prod", Name: "web"}},
		{`authorizer.group('').resource('pods').check('boom').errored()`, true, AuthzCheck{Verb: "boom", Resource: "pods"}},
		{`authorizer.group('').resource('pods').check('boom').error()`, "authorizer unavailable", AuthzCheck{Verb: "boom", Resource: "pods"}},
	} {
		p, err := Compile(env, tc.expr, StaticEstimatedCostLimit, MaxRequestSizeBytes)
		if err != nil {
			t.Errorf("%s: %v", tc.expr, err)
			continue
		}
		out, _, err := p.Eval(in)
		if err != nil || out.Value() != tc.want {
			t.Errorf("%s = %v, %v; want %v", tc.expr, out, err, tc.want)
		}
		if len(asked) == 0 || asked[len(asked)-1] != tc.last {
			t.Errorf("%s asked %+v, want %+v", tc.expr, asked, tc.last)
		}
	}
}
