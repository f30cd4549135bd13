package main

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"
)

// version overrides the module version when set at link time
// (-ldflags "-X main.version=v1.2.3"): a build without the module's VCS
// information, such as a container build without .git, still says what it is.
var version string

// versionString is what `roe --version` prints: the module version, the VCS
// commit and time the binary was built from (marked "modified" when the
// work tree had changes), and the Go version.
func versionString() string {
	info, ok := debug.ReadBuildInfo()
	v := version
	if v == "" && ok {
		v = info.Main.Version
	}
	if v == "" {
		v = "(devel)"
	}
	parts := []string{"roe " + v}
	if ok {
		var rev, at string
		modified := false
		for _, s := range info.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.time":
				at = s.Value
			case "vcs.modified":
				modified = s.Value == "true"
			}
		}
		if rev != "" {
			c := "commit " + rev
			if at != "" {
				c += " (" + at + ")"
			}
			if modified {
				c += " modified"
			}
			parts = append(parts, c)
		}
	}
	parts = append(parts, fmt.Sprintf("%s %s/%s", runtime.Version(), runtime.GOOS, runtime.GOARCH))
	return strings.Join(parts, ", ")
}
