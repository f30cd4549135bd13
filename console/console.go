// Package console is roe's web console: a page over the expert library and
// its routing, served by roe serve at /ui/. It is static (HTML, CSS and
// plain JavaScript embedded in the binary; nothing is fetched from the
// network at run time) and holds no data of its own: the page asks for the
// API key and calls the same API, under the same limits, as any client.
package console

import (
	"embed"
	"io/fs"
)

//go:embed static
var static embed.FS

// Files are the console's files, index.html at the root.
func Files() fs.FS {
	sub, err := fs.Sub(static, "static")
	if err != nil {
		panic(err) // the embedded folder is always there
	}
	return sub
}

// ContentSecurityPolicy is sent with every console file: the page loads
// only its own files and talks only to its own server.
const ContentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; connect-src 'self'; " +
	"form-action 'none'; frame-ancestors 'none'; base-uri 'none'"
