package cel

import (
	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/common/types/ref"
)

// The authorizer library upstream gives admission policies: an expression
// asks whether the request's user (or a ServiceAccount) may do something,
// `authorizer.group('apps').resource('deployments').namespace('ns').check('create').allowed()`,
// or `authorizer.requestResource.check('approve')` for the request's own
// resource.
var (
	AuthorizerType    = cel.OpaqueType("kubernetes.authorization.Authorizer")
	PathCheckType     = cel.OpaqueType("kubernetes.authorization.PathCheck")
	GroupCheckType    = cel.OpaqueType("kubernetes.authorization.GroupCheck")
	ResourceCheckType = cel.OpaqueType("kubernetes.authorization.ResourceCheck")
	DecisionType      = cel.OpaqueType("kubernetes.authorization.Decision")
)

// AuthzCheck is one question to the authorizer.
type AuthzCheck struct {
	// ServiceAccount, "namespace/name", asks for that ServiceAccount
	// rather than the request's user.
	ServiceAccount string
	// Path is set for a non-resource request.
	Path                                                string
	Verb, Group, Resource, Subresource, Namespace, Name string
}

// Authorize answers a check: allowed, the reason, or the error that kept
// it from deciding.
type Authorize func(AuthzCheck) (allowed bool, reason string, err error)

// NewAuthorizer is the value of the `authorizer` variable.
func NewAuthorizer(f Authorize) ref.Val { return opaque{AuthorizerType, authzState{f: f}} }

// NewResourceCheck is the value of `authorizer.requestResource`: a check
// of the request's own resource.
func NewResourceCheck(f Authorize, group, resource, subresource, namespace, name string) ref.Val {
	return opaque{ResourceCheckType, authzState{f: f, check: AuthzCheck{Group: group, Resource: resource, Subresource: subresource, Namespace: namespace, Name: name}}}
}

// AuthorizerVars declares the two variables policies see.
func AuthorizerVars() []Var {
	return []Var{{Name: "authorizer", Type: AuthorizerType}, {Name: "authorizer.requestResource", Type: ResourceCheckType}}
}

// authzState is an Authorizer, a check being built, or (with decided) a
// Decision.
type authzState struct {
	f       Authorize
	check   AuthzCheck
	allowed bool
	reason  string
	err     string
}

func authzOptions() []cel.EnvOption {
	s := cel.StringType
	with := func(v ref.Val, t *types.Type, change func(*authzState)) ref.Val {
		st, ok := v.Value().(authzState)
		if !ok {
			return types.MaybeNoSuchOverloadErr(v)
		}
		change(&st)
		return opaque{t, st}
	}
	setter := func(name string, from, to *types.Type, set func(*AuthzCheck, string)) cel.EnvOption {
		return cel.Function(name, cel.MemberOverload(name+"_"+from.String(), []*cel.Type{from, s}, to, cel.BinaryBinding(func(v, arg ref.Val) ref.Val {
			str, ok := arg.Value().(string)
			if !ok {
				return types.MaybeNoSuchOverloadErr(arg)
			}
			return with(v, to, func(st *authzState) { set(&st.check, str) })
		})))
	}
	check := func(from *types.Type) cel.FunctionOpt {
		return cel.MemberOverload("check_"+from.String(), []*cel.Type{from, s}, DecisionType, cel.BinaryBinding(func(v, verb ref.Val) ref.Val {
			str, ok := verb.Value().(string)
			if !ok {
				return types.MaybeNoSuchOverloadErr(verb)
			}
			return with(v, DecisionType, func(st *authzState) {
				st.check.Verb = str
				allowed, reason, err := st.f(st.check)
				st.allowed, st.reason = allowed, reason
				if err != nil {
					st.err = err.Error()
				}
			})
		}))
	}
	decision := func(name string, out *types.Type, get func(authzState) ref.Val) cel.EnvOption {
		return cel.Function(name, cel.MemberOverload("decision_"+name, []*cel.Type{DecisionType}, out, cel.UnaryBinding(func(v ref.Val) ref.Val {
			st, ok := v.Value().(authzState)
			if !ok {
				return types.MaybeNoSuchOverloadErr(v)
			}
			return get(st)
		})))
	}
	return []cel.EnvOption{
		setter("path", AuthorizerType, PathCheckType, func(c *AuthzCheck, v string) { c.Path = v }),
		setter("group", AuthorizerType, GroupCheckType, func(c *AuthzCheck, v string) { c.Group = v }),
		setter("resource", GroupCheckType, ResourceCheckType, func(c *AuthzCheck, v string) { c.Resource = v }),
		setter("subresource", ResourceCheckType, ResourceCheckType, func(c *AuthzCheck, v string) { c.Subresource = v }),
		setter("namespace", ResourceCheckType, ResourceCheckType, func(c *AuthzCheck, v string) { c.Namespace = v }),
		setter("name", ResourceCheckType, ResourceCheckType, func(c *AuthzCheck, v string) { c.Name = v }),
		cel.Function("serviceAccount", cel.MemberOverload("authorizer_service_account", []*cel.Type{AuthorizerType, s, s}, AuthorizerType,
			cel.FunctionBinding(func(args ...ref.Val) ref.Val {
				ns, ok := args[1].Value().(string)
				name, ok2 := args[2].Value().(string)
				if !ok || !ok2 {
					return types.MaybeNoSuchOverloadErr(args[1])
				}
				return with(args[0], AuthorizerType, func(st *authzState) { st.check.ServiceAccount = ns + "/" + name })
			}))),
		cel.Function("check", check(PathCheckType), check(ResourceCheckType)),
		decision("allowed", cel.BoolType, func(st authzState) ref.Val { return types.Bool(st.allowed) }),
		decision("reason", s, func(st authzState) ref.Val { return types.String(st.reason) }),
		decision("errored", cel.BoolType, func(st authzState) ref.Val { return types.Bool(st.err != "") }),
		decision("error", s, func(st authzState) ref.Val { return types.String(st.err) }),
	}
}
