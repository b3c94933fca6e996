package controller

import (
	"slices"
	"testing"
)

func TestSelect(t *testing.T) {
	all := []Registration{{Name: "a"}, {Name: "b"}, {Name: "c"}}
	cases := []struct {
		spec    []string
		want    []string
		wantErr bool
	}{
		{[]string{"*"}, []string{"a", "b", "c"}, false},
		{[]string{"*", "-b"}, []string{"a", "c"}, false},
		{[]string{"b"}, []string{"b"}, false},
		{nil, nil, false},
		{[]string{""}, nil, false},
		{[]string{"*", "-nope"}, nil, true},
		{[]string{"nope"}, nil, true},
	}
	for _, c := range cases {
		got, err := Select(all, c.spec)
		if (err != nil) != c.wantErr {
			t.Errorf("%v: err %v", c.spec, err)
			continue
		}
		var names []string
		for _, r := range got {
			names = append(names, r.Name)
		}
		if !slices.Equal(names, c.want) {
			t.Errorf("%v: selected %v, want %v", c.spec, names, c.want)
		}
	}
}
