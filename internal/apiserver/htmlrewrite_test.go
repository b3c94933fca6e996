package apiserver

import (
	"strings"
	"testing"
)

func TestRewriteHTML(t *testing.T) {
	const prefix = "/api/v1/namespaces/n/pods/p:80/proxy"
	cases := map[string]string{
		`<a href="/rewriteme">test</a>`:                   `<a href="` + prefix + `/rewriteme">test</a>`,
		`<img src="/i.png"/><a href="rel">x</a>`:          `<img src="` + prefix + `/i.png"/><a href="rel">x</a>`,
		`<a href="//cdn.example/x">x</a>`:                 `<a href="//cdn.example/x">x</a>`,
		`<a href="http://example.com/x">x</a>`:            `<a href="http://example.com/x">x</a>`,
		`<p title="/not-a-link">t</p>`:                    `<p title="/not-a-link">t</p>`,
		"<!DOCTYPE html>\n<form action=\"/post\"></form>": "<!DOCTYPE html>\n<form action=\"" + prefix + "/post\"></form>",
	}
	for in, want := range cases {
		got, err := rewriteHTML(strings.NewReader(in), prefix)
		if err != nil || string(got) != want {
			t.Errorf("%s:\n got %s %v\nwant %s", in, got, err, want)
		}
	}
}
