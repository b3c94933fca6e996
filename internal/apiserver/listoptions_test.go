package apiserver

import (
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestValidateListOptions(t *testing.T) {
	yes := true
	cases := []struct {
		name    string
		o       listOptions
		watch   bool
		wantErr []string // fields named by the errors, in order
	}{
		{"plain list", listOptions{}, false, nil},
		{"exact with rv", listOptions{RV: "5", RVMatch: metav1.ResourceVersionMatchExact}, false, nil},
		{"match without rv", listOptions{RVMatch: metav1.ResourceVersionMatchNotOlderThan}, false, []string{"resourceVersionMatch"}},
		{"match with continue", listOptions{RV: "5", Continue: "x", RVMatch: metav1.ResourceVersionMatchExact}, false, []string{"resourceVersionMatch"}},
		{"exact at 0", listOptions{RV: "0", RVMatch: metav1.ResourceVersionMatchExact}, false, []string{"resourceVersionMatch"}},
		{"match on watch", listOptions{RV: "5", RVMatch: metav1.ResourceVersionMatchNotOlderThan}, true, []string{"resourceVersionMatch"}},
		{"watch list, empty rv", listOptions{SendInitial: &yes, Bookmarks: true, RVMatch: metav1.ResourceVersionMatchNotOlderThan}, true, nil},
		{"watch list without bookmarks", listOptions{SendInitial: &yes, RVMatch: metav1.ResourceVersionMatchNotOlderThan}, true, []string{"allowWatchBookmarks"}},
		{"watch list without match", listOptions{SendInitial: &yes, Bookmarks: true}, true, []string{"resourceVersionMatch"}},
		{"sendInitialEvents on list", listOptions{SendInitial: &yes, Bookmarks: true, RVMatch: metav1.ResourceVersionMatchNotOlderThan}, false, []string{"sendInitialEvents"}},
	}
	for _, c := range cases {
		errs := validateListOptions(c.o, c.watch)
		var got []string
		for _, e := range errs {
			got = append(got, e.Field)
		}
		if len(got) != len(c.wantErr) {
			t.Errorf("%s: errors %v, want fields %v", c.name, errs, c.wantErr)
			continue
		}
		for i := range got {
			if got[i] != c.wantErr[i] {
				t.Errorf("%s: error %d on %s, want %s", c.name, i, got[i], c.wantErr[i])
			}
		}
	}
}
