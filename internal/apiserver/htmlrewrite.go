package apiserver

import (
	"bytes"
	"io"
	"strings"

	"golang.org/x/net/html"
)

// linkAttrs are the attributes holding URLs, per element, that upstream's
// proxy rewrites so that a page served through pods/proxy or
// services/proxy links back through the proxy.
var linkAttrs = map[string][]string{
	"a": {"href"}, "applet": {"codebase"}, "area": {"href"}, "audio": {"src"}, "base": {"href"},
	"blockquote": {"cite"}, "body": {"background"}, "button": {"formaction"}, "command": {"icon"},
	"del": {"cite"}, "embed": {"src"}, "form": {"action"}, "frame": {"longdesc", "src"},
	"head": {"profile"}, "html": {"manifest"}, "iframe": {"longdesc", "src"},
	"img": {"longdesc", "src", "usemap"}, "input": {"src", "usemap", "formaction"}, "ins": {"cite"},
	"link": {"href"}, "object": {"classid", "codebase", "data", "usemap"}, "q": {"cite"},
	"script": {"src"}, "source": {"src"}, "video": {"poster", "src"},
}

// rewriteHTML prefixes the absolute paths ("/x", not "//host/x" or
// "http://...") in the link attributes of an HTML document with prefix;
// everything else is copied as it was.
func rewriteHTML(doc io.Reader, prefix string) ([]byte, error) {
	var out bytes.Buffer
	z := html.NewTokenizer(doc)
	for {
		tt := z.Next()
		switch tt {
		case html.ErrorToken:
			if z.Err() == io.EOF {
				return out.Bytes(), nil
			}
			return nil, z.Err()
		case html.StartTagToken, html.SelfClosingTagToken:
			raw := append([]byte(nil), z.Raw()...)
			tok := z.Token()
			attrs, changed := linkAttrs[tok.Data], false
			for i, a := range tok.Attr {
				for _, name := range attrs {
					if a.Key == name && strings.HasPrefix(a.Val, "/") && !strings.HasPrefix(a.Val, "//") {
						tok.Attr[i].Val = prefix + a.Val
						changed = true
					}
				}
			}
			if changed {
				out.WriteString(tok.String())
			} else {
				out.Write(raw)
			}
		default:
			out.Write(z.Raw())
		}
	}
}
