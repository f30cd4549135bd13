package testenv

import "testing"

// recorder is a testing.TB that records Fatalf and Skipf instead of stopping.
type recorder struct {
	testing.TB
	fatal, skip string
}

func (r *recorder) Helper()                        {}
func (r *recorder) Fatalf(format string, _ ...any) { r.fatal = format }
func (r *recorder) Skipf(format string, _ ...any)  { r.skip = format }

func TestSkipOrFail(t *testing.T) {
	t.Setenv("CI", "")
	var r recorder
	if SkipOrFail(&r, "x missing"); CI() || r.skip != "x missing" || r.fatal != "" {
		t.Errorf("without CI: CI()=%v skip %q fatal %q", CI(), r.skip, r.fatal)
	}
	t.Setenv("CI", "true")
	r = recorder{}
	if SkipOrFail(&r, "x missing"); !CI() || r.skip != "" || r.fatal == "" {
		t.Errorf("with CI: CI()=%v skip %q fatal %q", CI(), r.skip, r.fatal)
	}
}
