// Package golden compares a test's output with a file under testdata/ that
// a reviewer reads as a diff; `go test ... -update` rewrites the files from
// the current output.
package golden

import (
	"flag"
	"os"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/ from the current output")

// Check compares got with the file at path, or rewrites the file with -update.
func Check(t testing.TB, path, got string) {
	t.Helper()
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if string(want) != got {
		t.Errorf("%s differs from the output; review the change and run with -update if it is intended.\ngot:\n%s\nwant:\n%s", path, got, want)
	}
}
