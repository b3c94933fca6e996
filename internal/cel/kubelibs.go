package cel

import (
	"fmt"
	"net/url"
	"reflect"
	"strings"

	"github.com/blang/semver/v4"
	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/common/types/ref"
	"k8s.io/apimachinery/pkg/api/resource"
	apimachineryvalidation "k8s.io/apimachinery/pkg/api/validation"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/kube-openapi/pkg/validation/strfmt"
)

// Kubernetes' own CEL libraries, as upstream gives them to CRD rules and
// admission policies: quantity (resource quantities), url, format (named
// string formats) and semver. Their values are opaque types of these names.
var (
	QuantityType = cel.OpaqueType("kubernetes.Quantity")
	URLType      = cel.OpaqueType("kubernetes.URL")
	FormatType   = cel.OpaqueType("kubernetes.NamedFormat")
	SemverType   = cel.OpaqueType("kubernetes.Semver")
)

// opaque is a value of one of the types above around a Go value.
type opaque struct {
	t *types.Type
	v any
}

func (o opaque) ConvertToNative(t reflect.Type) (any, error) {
	if reflect.TypeOf(o.v).AssignableTo(t) {
		return o.v, nil
	}
	return nil, fmt.Errorf("type conversion error from '%s' to '%v'", o.t, t)
}

func (o opaque) ConvertToType(t ref.Type) ref.Val {
	switch t {
	case o.t:
		return o
	case types.TypeType:
		return o.t
	}
	return types.NewErr("type conversion error from '%s' to '%s'", o.t, t)
}

func (o opaque) Equal(other ref.Val) ref.Val {
	p, ok := other.(opaque)
	if !ok || p.t != o.t {
		return types.MaybeNoSuchOverloadErr(other)
	}
	switch a := o.v.(type) {
	case *resource.Quantity:
		return types.Bool(a.Equal(*p.v.(*resource.Quantity)))
	case semver.Version:
		return types.Bool(a.Equals(p.v.(semver.Version)))
	case authzState:
		return types.False // checks and decisions are not compared
	}
	return types.Bool(reflect.DeepEqual(o.v, p.v))
}

func (o opaque) Type() ref.Type { return o.t }
func (o opaque) Value() any     { return o.v }

func kubeLibraries() cel.EnvOption { return cel.Lib(kubeLibs{}) }

type kubeLibs struct{}

func (kubeLibs) ProgramOptions() []cel.ProgramOption { return nil }

func (kubeLibs) CompileOptions() []cel.EnvOption {
	q, u, f, s := QuantityType, URLType, FormatType, cel.StringType
	quantityOp := func(name string, op func(a, b *resource.Quantity) ref.Val) cel.EnvOption {
		return cel.Function(name,
			cel.MemberOverload("quantity_"+name, []*cel.Type{q, q}, cel.DynType, cel.BinaryBinding(func(a, b ref.Val) ref.Val {
				x, y, err := quantities(a, b)
				if err != nil {
					return err
				}
				return op(x, y)
			})))
	}
	arith := func(name string, sign int64) cel.EnvOption {
		apply := func(x, y *resource.Quantity) ref.Val {
			out := x.DeepCopy()
			if sign > 0 {
				out.Add(*y)
			} else {
				out.Sub(*y)
			}
			return opaque{QuantityType, &out}
		}
		return cel.Function(name,
			cel.MemberOverload("quantity_"+name, []*cel.Type{q, q}, q, cel.BinaryBinding(func(a, b ref.Val) ref.Val {
				x, y, err := quantities(a, b)
				if err != nil {
					return err
				}
				return apply(x, y)
			})),
			cel.MemberOverload("quantity_"+name+"_int", []*cel.Type{q, cel.IntType}, q, cel.BinaryBinding(func(a, b ref.Val) ref.Val {
				x, ok := a.Value().(*resource.Quantity)
				i, ok2 := b.(types.Int)
				if !ok || !ok2 {
					return types.MaybeNoSuchOverloadErr(b)
				}
				return apply(x, resource.NewQuantity(int64(i), resource.DecimalSI))
			})))
	}
	urlGetter := func(name string, get func(*url.URL) ref.Val, out *cel.Type) cel.EnvOption {
		return cel.Function(name, cel.MemberOverload("url_"+name, []*cel.Type{u}, out, cel.UnaryBinding(func(v ref.Val) ref.Val {
			p, ok := v.Value().(*url.URL)
			if !ok {
				return types.MaybeNoSuchOverloadErr(v)
			}
			return get(p)
		})))
	}
	opts := []cel.EnvOption{
		// quantity
		cel.Function("quantity", cel.Overload("string_to_quantity", []*cel.Type{s}, q, stringUnary(func(str string) ref.Val {
			parsed, err := resource.ParseQuantity(str)
			if err != nil {
				return types.WrapErr(err)
			}
			return opaque{QuantityType, &parsed}
		}))),
		cel.Function("isQuantity", cel.Overload("is_quantity_string", []*cel.Type{s}, cel.BoolType, stringUnary(func(str string) ref.Val {
			_, err := resource.ParseQuantity(str)
			return types.Bool(err == nil)
		}))),
		cel.Function("sign", cel.MemberOverload("quantity_sign", []*cel.Type{q}, cel.IntType, quantityUnary(func(x *resource.Quantity) ref.Val { return types.Int(x.Sign()) }))),
		cel.Function("isInteger", cel.MemberOverload("quantity_is_integer", []*cel.Type{q}, cel.BoolType, quantityUnary(func(x *resource.Quantity) ref.Val {
			_, ok := x.AsInt64()
			return types.Bool(ok)
		}))),
		cel.Function("asInteger", cel.MemberOverload("quantity_get_integer", []*cel.Type{q}, cel.IntType, quantityUnary(func(x *resource.Quantity) ref.Val {
			i, ok := x.AsInt64()
			if !ok {
				return types.NewErr("cannot convert value to integer")
			}
			return types.Int(i)
		}))),
		cel.Function("asApproximateFloat", cel.MemberOverload("quantity_get_float", []*cel.Type{q}, cel.DoubleType, quantityUnary(func(x *resource.Quantity) ref.Val {
			return types.Double(x.AsApproximateFloat64())
		}))),
		arith("add", 1),
		arith("sub", -1),
		quantityOp("isGreaterThan", func(x, y *resource.Quantity) ref.Val { return types.Bool(x.Cmp(*y) > 0) }),
		quantityOp("isLessThan", func(x, y *resource.Quantity) ref.Val { return types.Bool(x.Cmp(*y) < 0) }),
		quantityOp("compareTo", func(x, y *resource.Quantity) ref.Val { return types.Int(x.Cmp(*y)) }),

		// url
		cel.Function("url", cel.Overload("string_to_url", []*cel.Type{s}, u, stringUnary(func(str string) ref.Val {
			p, err := url.ParseRequestURI(str)
			if err != nil {
				return types.NewErr("URL parse error during conversion from string: %v", err)
			}
			return opaque{URLType, p}
		}))),
		cel.Function("isURL", cel.Overload("is_url_string", []*cel.Type{s}, cel.BoolType, stringUnary(func(str string) ref.Val {
			_, err := url.ParseRequestURI(str)
			return types.Bool(err == nil)
		}))),
		urlGetter("getScheme", func(p *url.URL) ref.Val { return types.String(p.Scheme) }, s),
		urlGetter("getHost", func(p *url.URL) ref.Val { return types.String(p.Host) }, s),
		urlGetter("getHostname", func(p *url.URL) ref.Val { return types.String(p.Hostname()) }, s),
		urlGetter("getPort", func(p *url.URL) ref.Val { return types.String(p.Port()) }, s),
		urlGetter("getEscapedPath", func(p *url.URL) ref.Val { return types.String(p.EscapedPath()) }, s),
		urlGetter("getQuery", func(p *url.URL) ref.Val {
			return types.DefaultTypeAdapter.NativeToValue(map[string][]string(p.Query()))
		}, cel.MapType(s, cel.ListType(s))),

		// format
		cel.Function("format.named", cel.Overload("format_named", []*cel.Type{s}, cel.OptionalType(f), stringUnary(func(name string) ref.Val {
			if _, known := namedFormats[name]; !known {
				return types.OptionalNone
			}
			return types.OptionalOf(opaque{FormatType, name})
		}))),
		cel.Function("validate", cel.MemberOverload("format_validate", []*cel.Type{f, s}, cel.OptionalType(cel.ListType(s)), cel.BinaryBinding(func(fv, v ref.Val) ref.Val {
			name, ok := fv.Value().(string)
			str, ok2 := v.Value().(string)
			if !ok || !ok2 {
				return types.MaybeNoSuchOverloadErr(v)
			}
			if errs := namedFormats[name](str); len(errs) > 0 {
				return types.OptionalOf(types.NewStringList(types.DefaultTypeAdapter, errs))
			}
			return types.OptionalNone
		}))),
	}
	opts = append(opts, semverOptions()...)
	opts = append(opts, authzOptions()...)
	for name := range namedFormats {
		opts = append(opts, cel.Function("format."+name, cel.Overload("format_"+name, nil, f, cel.FunctionBinding(func(...ref.Val) ref.Val {
			return opaque{FormatType, name}
		}))))
	}
	return opts
}

func semverOptions() []cel.EnvOption {
	v, s := SemverType, cel.StringType
	parse := func(args ...ref.Val) (semver.Version, ref.Val) {
		str, ok := args[0].Value().(string)
		if !ok {
			return semver.Version{}, types.MaybeNoSuchOverloadErr(args[0])
		}
		normalize := false
		if len(args) > 1 {
			b, ok := args[1].(types.Bool)
			if !ok {
				return semver.Version{}, types.MaybeNoSuchOverloadErr(args[1])
			}
			normalize = bool(b)
		}
		if normalize {
			str = normalizeSemver(str)
		}
		ver, err := semver.Parse(str)
		if err != nil {
			return semver.Version{}, types.NewErr("could not parse semver: %v", err)
		}
		return ver, nil
	}
	part := func(name string, get func(semver.Version) uint64) cel.EnvOption {
		return cel.Function(name, cel.MemberOverload("semver_"+name, []*cel.Type{v}, cel.IntType, cel.UnaryBinding(func(a ref.Val) ref.Val {
			ver, ok := a.Value().(semver.Version)
			if !ok {
				return types.MaybeNoSuchOverloadErr(a)
			}
			return types.Int(get(ver))
		})))
	}
	cmp := func(name string, out *cel.Type, res func(int) ref.Val) cel.EnvOption {
		return cel.Function(name, cel.MemberOverload("semver_"+name, []*cel.Type{v, v}, out, cel.BinaryBinding(func(a, b ref.Val) ref.Val {
			x, ok := a.Value().(semver.Version)
			y, ok2 := b.Value().(semver.Version)
			if !ok || !ok2 {
				return types.MaybeNoSuchOverloadErr(b)
			}
			return res(x.Compare(y))
		})))
	}
	toSemver := func(args ...ref.Val) ref.Val {
		ver, err := parse(args...)
		if err != nil {
			return err
		}
		return opaque{SemverType, ver}
	}
	isSemver := func(args ...ref.Val) ref.Val {
		_, err := parse(args...)
		return types.Bool(err == nil)
	}
	return []cel.EnvOption{
		cel.Function("semver",
			cel.Overload("string_to_semver", []*cel.Type{s}, v, cel.UnaryBinding(func(a ref.Val) ref.Val { return toSemver(a) })),
			cel.Overload("string_bool_to_semver", []*cel.Type{s, cel.BoolType}, v, cel.BinaryBinding(func(a, b ref.Val) ref.Val { return toSemver(a, b) }))),
		cel.Function("isSemver",
			cel.Overload("is_semver_string", []*cel.Type{s}, cel.BoolType, cel.UnaryBinding(func(a ref.Val) ref.Val { return isSemver(a) })),
			cel.Overload("is_semver_string_bool", []*cel.Type{s, cel.BoolType}, cel.BoolType, cel.BinaryBinding(func(a, b ref.Val) ref.Val { return isSemver(a, b) }))),
		part("major", func(x semver.Version) uint64 { return x.Major }),
		part("minor", func(x semver.Version) uint64 { return x.Minor }),
		part("patch", func(x semver.Version) uint64 { return x.Patch }),
		cmp("isGreaterThan", cel.BoolType, func(c int) ref.Val { return types.Bool(c > 0) }),
		cmp("isLessThan", cel.BoolType, func(c int) ref.Val { return types.Bool(c < 0) }),
		cmp("compareTo", cel.IntType, func(c int) ref.Val { return types.Int(c) }),
	}
}

// normalizeSemver is what semver(s, true) accepts beyond strict semver: a
// leading "v", a missing minor or patch (as 0), and leading zeros.
func normalizeSemver(s string) string {
	s = strings.TrimPrefix(s, "v")
	core, rest := s, ""
	if i := strings.IndexAny(s, "-+"); i >= 0 {
		core, rest = s[:i], s[i:]
	}
	parts := strings.Split(core, ".")
	for len(parts) < 3 {
		parts = append(parts, "0")
	}
	for i, p := range parts {
		if t := strings.TrimLeft(p, "0"); t != "" || p == "" {
			parts[i] = t
		} else {
			parts[i] = "0"
		}
	}
	return strings.Join(parts, ".") + rest
}

// stringUnary binds a function of one string argument.
func stringUnary(f func(string) ref.Val) cel.OverloadOpt {
	return cel.UnaryBinding(func(v ref.Val) ref.Val {
		str, ok := v.Value().(string)
		if !ok {
			return types.MaybeNoSuchOverloadErr(v)
		}
		return f(str)
	})
}

func quantityUnary(f func(*resource.Quantity) ref.Val) cel.OverloadOpt {
	return cel.UnaryBinding(func(v ref.Val) ref.Val {
		x, ok := v.Value().(*resource.Quantity)
		if !ok {
			return types.MaybeNoSuchOverloadErr(v)
		}
		return f(x)
	})
}

func quantities(a, b ref.Val) (*resource.Quantity, *resource.Quantity, ref.Val) {
	x, ok := a.Value().(*resource.Quantity)
	y, ok2 := b.Value().(*resource.Quantity)
	if !ok || !ok2 {
		return nil, nil, types.MaybeNoSuchOverloadErr(b)
	}
	return x, y, nil
}

// namedFormats are the formats format.named and format.<name>() know, each
// with upstream's validation and messages.
var namedFormats = map[string]func(string) []string{
	"dns1123Label":           func(s string) []string { return apimachineryvalidation.NameIsDNSLabel(s, false) },
	"dns1123Subdomain":       func(s string) []string { return apimachineryvalidation.NameIsDNSSubdomain(s, false) },
	"dns1035Label":           func(s string) []string { return apimachineryvalidation.NameIsDNS1035Label(s, false) },
	"qualifiedName":          validation.IsQualifiedName,
	"dns1123LabelPrefix":     func(s string) []string { return apimachineryvalidation.NameIsDNSLabel(s, true) },
	"dns1123SubdomainPrefix": func(s string) []string { return apimachineryvalidation.NameIsDNSSubdomain(s, true) },
	"dns1035LabelPrefix":     func(s string) []string { return apimachineryvalidation.NameIsDNS1035Label(s, true) },
	"labelValue":             validation.IsValidLabelValue,
	"uri": func(s string) []string {
		if _, err := url.ParseRequestURI(s); err != nil {
			return []string{err.Error()}
		}
		return nil
	},
	"uuid":     strfmtCheck("uuid", "does not match the UUID format"),
	"byte":     strfmtCheck("byte", "invalid base64"),
	"date":     strfmtCheck("date", "invalid date"),
	"datetime": strfmtCheck("datetime", "invalid datetime"),
}

func strfmtCheck(format, msg string) func(string) []string {
	return func(s string) []string {
		if !strfmt.Default.Validates(format, s) {
			return []string{msg}
		}
		return nil
	}
}
