package safetensors

// FromBytes validates an in-memory safetensors file, such as one embedded in
// the binary; name is used in error messages. b must not be modified afterwards.
func FromBytes(name string, b []byte) (*File, error) {
	infos, metadata, dataStart, err := parseHeader(name, b, int64(len(b)))
	if err != nil {
		return nil, err
	}
	f := &File{path: name, name: name, metadata: metadata, infos: infos,
		index: make(map[string]int, len(infos)), data: b[dataStart:], unmap: func() error { return nil }}
	for i, t := range infos {
		f.index[t.Name] = i
	}
	return f, nil
}
