package configfile

import (
	"errors"
	"strings"
	"testing"
)

const doc = `apiVersion: v1
kind: Thing
resources:
  - resources: [secrets]
    providers:
      - aescbc:
          keys:
            - name: key1
              secret: c2VjcmV0
      - identity: {}
`

type thing struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Resources  []struct {
		Resources []string `json:"resources"`
		Providers []struct {
			AESCBC *struct {
				Keys []struct {
					Name   string `json:"name"`
					Secret string `json:"secret"`
				} `json:"keys"`
			} `json:"aescbc"`
			Identity *struct{} `json:"identity"`
		} `json:"providers"`
	} `json:"resources"`
}

func TestLine(t *testing.T) {
	for _, c := range []struct {
		path string
		want int
	}{
		{"", 1},
		{"kind", 2},
		{"resources", 3},
		{"resources[0]", 4},
		{"resources[0].resources[0]", 4},
		{"resources[0].providers[0].aescbc", 6},
		{"resources[0].providers[0].aescbc.keys[0].secret", 9},
		{"resources[0].providers[1].identity", 10},
		{"resources[0].providers[2]", 0},
		{"resources[0].nothing", 0},
		{"kind.deeper", 0},
	} {
		if got := Line([]byte(doc), c.path); got != c.want {
			t.Errorf("Line(%q) = %d, want %d", c.path, got, c.want)
		}
	}
}

func TestDecode(t *testing.T) {
	var th thing
	if err := Decode([]byte(doc), &th); err != nil {
		t.Fatal(err)
	}
	if th.Resources[0].Providers[0].AESCBC.Keys[0].Secret != "c2VjcmV0" {
		t.Errorf("decoded %+v", th)
	}
	for _, c := range []struct {
		name, data, want string
	}{
		{"unknown field", "kind: Thing\nresources:\n- providers:\n  - aescbc:\n      kees: []\n",
			`line 5: resources[0].providers[0].aescbc.kees: unknown field`},
		{"wrong type", "kind: [a]\n", `json: cannot unmarshal array into Go struct field thing.kind of type string`},
	} {
		err := Locate([]byte(c.data), "", Decode([]byte(c.data), &thing{}))
		if err == nil || err.Error() != c.want {
			t.Errorf("%s: %v, want %s", c.name, err, c.want)
		}
	}
	for _, bad := range []string{"kind: Thing\nkind: [\n", "kind: Thing\nkind: Other\n"} {
		if err := Decode([]byte(bad), &thing{}); err == nil || !strings.Contains(err.Error(), "line 2") {
			t.Errorf("%q: %v, want an error at line 2", bad, err)
		}
	}
}

func TestLocate(t *testing.T) {
	err := Locate([]byte(doc), "resources[0]", Errorf("providers[1].identity", "Invalid value"))
	var ce *Error
	if !errors.As(err, &ce) || err.Error() != "line 10: resources[0].providers[1].identity: Invalid value" {
		t.Errorf("located: %v", err)
	}
	plain := errors.New("not a field")
	if Locate([]byte(doc), "", plain) != plain {
		t.Error("a plain error was changed")
	}
}
