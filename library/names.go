package library

// CheckName reports whether name is a valid expert name (see Add), with an
// ErrInvalid naming the problem; callers check before costly work.
func CheckName(name string) error { return checkName(name) }
