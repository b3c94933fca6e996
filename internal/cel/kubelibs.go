package cel

import (
	"fmt"
	"net/url"
	"reflect"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/common/types/ref"
	"k8s.io/apimachinery/pkg/api/resource"
	apimachineryvalidation "k8s.io/apimachinery/pkg/api/validation"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/kube-openapi/pkg/validation/strfmt"
)

// Kubernetes' own CEL libraries, as upstream gives them to CRD rules and
// admission policies: quantity (resource quantities), url, and format
// (named string formats). Their values are opaque types of these names.
var (
	QuantityType = cel.OpaqueType("kubernetes.Quantity")
	URLType      = cel.OpaqueType("kubernetes.URL")
	FormatType   = cel.OpaqueType("kubernetes.NamedFormat")
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
	if a, ok := o.v.(*resource.Quantity); ok {
		return types.Bool(a.Equal(*p.v.(*resource.Quantity)))
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
		cel.Function("quantity", cel.Overload("string_to_quantity", []*cel.Type{s}, q, cel.UnaryBinding(func(v ref.Val) ref.Val {
			str, ok := v.Value().(string)
			if !ok {
				return types.MaybeNoSuchOverloadErr(v)
			}
			parsed, err := resource.ParseQuantity(str)
			if err != nil {
				return types.WrapErr(err)
			}
			return opaque{QuantityType, &parsed}
		}))),
		cel.Function("isQuantity", cel.Overload("is_quantity_string", []*cel.Type{s}, cel.BoolType, cel.UnaryBinding(func(v ref.Val) ref.Val {
			str, ok := v.Value().(string)
			if !ok {
				return types.MaybeNoSuchOverloadErr(v)
			}
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
		cel.Function("url", cel.Overload("string_to_url", []*cel.Type{s}, u, cel.UnaryBinding(func(v ref.Val) ref.Val {
			str, ok := v.Value().(string)
			if !ok {
				return types.MaybeNoSuchOverloadErr(v)
			}
			p, err := url.ParseRequestURI(str)
			if err != nil {
				return types.NewErr("URL parse error during conversion from string: %v", err)
			}
			return opaque{URLType, p}
		}))),
		cel.Function("isURL", cel.Overload("is_url_string", []*cel.Type{s}, cel.BoolType, cel.UnaryBinding(func(v ref.Val) ref.Val {
			str, ok := v.Value().(string)
			if !ok {
				return types.MaybeNoSuchOverloadErr(v)
			}
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
		cel.Function("format.named", cel.Overload("format_named", []*cel.Type{s}, cel.OptionalType(f), cel.UnaryBinding(func(v ref.Val) ref.Val {
			name, ok := v.Value().(string)
			if !ok {
				return types.MaybeNoSuchOverloadErr(v)
			}
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
	for name := range namedFormats {
		opts = append(opts, cel.Function("format."+name, cel.Overload("format_"+name, nil, f, cel.FunctionBinding(func(...ref.Val) ref.Val {
			return opaque{FormatType, name}
		}))))
	}
	return opts
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
