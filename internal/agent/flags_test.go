package agent

import (
	"testing"

	v1 "k8s.io/api/core/v1"
)

func TestParseTaints(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    v1.Taint
		wantErr bool
	}{
		{in: "dedicated=gpu:NoSchedule", want: v1.Taint{Key: "dedicated", Value: "gpu", Effect: v1.TaintEffectNoSchedule}},
		{in: "example.com/drain:NoExecute", want: v1.Taint{Key: "example.com/drain", Effect: v1.TaintEffectNoExecute}},
		{in: "dedicated=gpu", wantErr: true},
		{in: "dedicated=gpu:Sometimes", wantErr: true},
		{in: "bad key:NoSchedule", wantErr: true},
	} {
		got, err := ParseTaints([]string{tc.in})
		if (err != nil) != tc.wantErr {
			t.Errorf("%q: err = %v", tc.in, err)
			continue
		}
		if err == nil && got[0] != tc.want {
			t.Errorf("%q = %+v, want %+v", tc.in, got[0], tc.want)
		}
	}
}

func TestParseReservedAndLabels(t *testing.T) {
	r, err := ParseReserved([]string{"cpu=100m", "memory=1Gi"}, []string{"cpu=200m"})
	if err != nil {
		t.Fatal(err)
	}
	if cpu := r[v1.ResourceCPU]; cpu.MilliValue() != 300 {
		t.Errorf("cpu reserved = %s, want 300m", cpu.String())
	}
	if _, err := ParseReserved([]string{"gpu=1"}); err == nil {
		t.Error("gpu accepted as a reserved resource")
	}
	l, err := ParseLabels([]string{"zone=a", "example.com/role=db"})
	if err != nil || l["zone"] != "a" || l["example.com/role"] != "db" {
		t.Errorf("labels = %v, %v", l, err)
	}
	if _, err := ParseLabels([]string{"zone"}); err == nil {
		t.Error("label without value accepted")
	}
}
