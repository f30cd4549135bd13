package llama2c

import (
	"encoding/binary"
	"testing"
)

// FuzzParseCheckpoint: a corrupt checkpoint or tokenizer gives an error, never a panic or a huge allocation.
func FuzzParseCheckpoint(f *testing.F) {
	hdr := make([]byte, 28)
	for i, v := range []int32{8, 16, 1, 2, 1, 4, 4} {
		binary.LittleEndian.PutUint32(hdr[4*i:], uint32(v))
	}
	f.Add(hdr)
	f.Add(append(hdr, make([]byte, 4096)...))
	f.Add([]byte{0x32, 0x34, 0x6b, 0x61})
	f.Fuzz(func(t *testing.T, b []byte) {
		ParseCheckpoint(b)
		ParseTokenizer(b, 4)
	})
}
