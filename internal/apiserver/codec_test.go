package apiserver

import "testing"

func TestNegotiate(t *testing.T) {
	cases := []struct {
		accept string
		want   Output
		err    bool
	}{
		{"", Output{Media: mediaJSON}, false},
		{"application/json", Output{Media: mediaJSON}, false},
		{"application/vnd.kubernetes.protobuf, */*", Output{Media: mediaProtobuf}, false},
		{"application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json", Output{Media: mediaJSON, Table: true}, false},
		{"application/json;as=Table;v=v9;g=meta.k8s.io,application/json", Output{Media: mediaJSON}, false},
		{"application/yaml", Output{Media: mediaYAML}, false},
		{"application/vnd.kubernetes.protobuf;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1", Output{Media: mediaProtobuf, PartialMetadata: true}, false},
		{"text/html", Output{}, true},
	}
	for _, c := range cases {
		got, err := Negotiate(c.accept, true)
		if (err != nil) != c.err || got != c.want {
			t.Errorf("%q: got %+v, %v; want %+v", c.accept, got, err, c.want)
		}
	}
}

func TestContinueToken(t *testing.T) {
	tok := encodeContinue(42, "ns/name\x00")
	got, err := decodeContinue(tok)
	if err != nil || got.ResourceVersion != 42 || got.StartKey != "ns/name\x00" {
		t.Errorf("round trip: %+v %v", got, err)
	}
	for _, bad := range []string{"", "!!!", "eyJ2IjoieCJ9"} {
		if _, err := decodeContinue(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
