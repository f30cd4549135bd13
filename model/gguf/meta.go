package gguf

// Typed metadata getters for model loading. A missing key is ErrNotFound, a
// key of the wrong type ErrFormat; both messages name the key.

// ArchitectureKey names the model architecture ("llama", "qwen2", ...).
const ArchitectureKey = "general.architecture"

// Architecture returns general.architecture.
func (f *File) Architecture() (string, error) { return f.String(ArchitectureKey) }

// lookup returns the value of key, or ErrNotFound naming it.
func (f *File) lookup(key string) (Value, error) {
	v, ok := f.Get(key)
	if !ok {
		return Value{}, f.errf(ErrNotFound, "metadata key %q missing", key)
	}
	return v, nil
}

func (f *File) wrongType(key string, v Value, want string) error {
	return f.errf(ErrFormat, "metadata key %q is %s %s, want %s", key, v.Type, v.Describe(), want)
}

// Uint returns an integer key's value (any unsigned type, or a signed one
// that is not negative).
func (f *File) Uint(key string) (uint64, error) {
	v, err := f.lookup(key)
	if err != nil {
		return 0, err
	}
	u, ok := v.Uint()
	if !ok {
		return 0, f.wrongType(key, v, "a non-negative integer")
	}
	return u, nil
}

// Float returns a float32 or float64 key's value.
func (f *File) Float(key string) (float64, error) {
	v, err := f.lookup(key)
	if err != nil {
		return 0, err
	}
	x, ok := v.Float()
	if !ok {
		return 0, f.wrongType(key, v, "a float")
	}
	return x, nil
}

// String returns a string key's value.
func (f *File) String(key string) (string, error) {
	v, err := f.lookup(key)
	if err != nil {
		return "", err
	}
	s, ok := v.String()
	if !ok {
		return "", f.wrongType(key, v, "a string")
	}
	return s, nil
}

// Bool returns a bool key's value.
func (f *File) Bool(key string) (bool, error) {
	v, err := f.lookup(key)
	if err != nil {
		return false, err
	}
	b, ok := v.Bool()
	if !ok {
		return false, f.wrongType(key, v, "a bool")
	}
	return b, nil
}

// OptUint is Uint with def for a missing key; a wrong type is still an error.
func (f *File) OptUint(key string, def uint64) (uint64, error) {
	if _, ok := f.Get(key); !ok {
		return def, nil
	}
	return f.Uint(key)
}

// OptFloat is Float with def for a missing key; a wrong type is still an error.
func (f *File) OptFloat(key string, def float64) (float64, error) {
	if _, ok := f.Get(key); !ok {
		return def, nil
	}
	return f.Float(key)
}

// OptBool is Bool with def for a missing key; a wrong type is still an error.
func (f *File) OptBool(key string, def bool) (bool, error) {
	if _, ok := f.Get(key); !ok {
		return def, nil
	}
	return f.Bool(key)
}

// OptString is String with def for a missing key; a wrong type is still an error.
func (f *File) OptString(key string, def string) (string, error) {
	if _, ok := f.Get(key); !ok {
		return def, nil
	}
	return f.String(key)
}
