package apiserver

import (
	"bytes"
	"encoding/json"

	"sigs.k8s.io/yaml"
)

func jsonIndent(dst *bytes.Buffer, src []byte) error { return json.Indent(dst, src, "", "  ") }

func jsonToYAML(j []byte) ([]byte, error) { return yaml.JSONToYAML(j) }
