// Package testenv holds helpers for tests that need something from outside the
// repository: the reference data in ../shared, node and npm, other tools.
package testenv

import (
	"os"
	"testing"
)

// CI reports whether the tests run in CI (the environment variable CI is set
// and not empty; .ci/run sets CI=1).
func CI() bool { return os.Getenv("CI") != "" }

// SkipOrFail skips the test because something it needs is missing, or fails
// it in CI, where everything the tests need must be present.
func SkipOrFail(t testing.TB, format string, args ...any) {
	t.Helper()
	if CI() {
		t.Fatalf("missing in CI: "+format, args...)
		return
	}
	t.Skipf(format, args...)
}
