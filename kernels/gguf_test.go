package kernels

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"os"
)

// A minimal GGUF reader for the golden tests: the tensor directory only, so
// that the kernels' tests do not depend on the model packages.

type ggufTensor struct {
	name string
	ne   []uint64
	typ  QType
	data []byte
}

type ggufWalker struct {
	b   []byte
	pos int
	err error
}

func (w *ggufWalker) take(n int) []byte {
	if w.err != nil || n < 0 || w.pos+n > len(w.b) {
		w.err = errors.New("gguf: truncated")
		return make([]byte, max(n, 0))
	}
	s := w.b[w.pos : w.pos+n]
	w.pos += n
	return s
}

func (w *ggufWalker) u32() uint32 { return binary.LittleEndian.Uint32(w.take(4)) }
func (w *ggufWalker) u64() uint64 { return binary.LittleEndian.Uint64(w.take(8)) }
func (w *ggufWalker) str() string {
	n := w.u64()
	if n > uint64(len(w.b)) {
		w.err = errors.New("gguf: bad string length")
		return ""
	}
	return string(w.take(int(n)))
}

// value skips (or, for integers, returns) one metadata value of type vt.
func (w *ggufWalker) value(vt uint32) uint64 {
	sizes := map[uint32]int{0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}
	switch vt {
	case 8:
		w.str()
		return 0
	case 9:
		et, n := w.u32(), w.u64()
		for i := uint64(0); i < n && w.err == nil; i++ {
			w.value(et)
		}
		return 0
	}
	n, ok := sizes[vt]
	if !ok {
		w.err = fmt.Errorf("gguf: value type %d", vt)
		return 0
	}
	b := w.take(n)
	var v uint64
	for i := n - 1; i >= 0; i-- {
		v = v<<8 | uint64(b[i])
	}
	return v
}

func readGGUF(path string) ([]ggufTensor, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	w := &ggufWalker{b: b}
	if string(w.take(4)) != "GGUF" {
		return nil, errors.New("gguf: bad magic")
	}
	if v := w.u32(); v != 3 && v != 2 {
		return nil, fmt.Errorf("gguf: version %d", v)
	}
	nt, nkv := w.u64(), w.u64()
	align := uint64(32)
	for i := uint64(0); i < nkv && w.err == nil; i++ {
		key, vt := w.str(), w.u32()
		v := w.value(vt)
		if key == "general.alignment" {
			align = v
		}
	}
	ts := make([]ggufTensor, 0, min(nt, 1<<16))
	offs := make([]uint64, 0, cap(ts))
	for i := uint64(0); i < nt && w.err == nil; i++ {
		t := ggufTensor{name: w.str()}
		nd := w.u32()
		for d := uint32(0); d < nd && w.err == nil; d++ {
			t.ne = append(t.ne, w.u64())
		}
		t.typ = QType(w.u32())
		offs = append(offs, w.u64())
		ts = append(ts, t)
	}
	if w.err != nil {
		return nil, w.err
	}
	start := (uint64(w.pos) + align - 1) / align * align
	for i := range ts {
		n := uint64(1)
		for _, e := range ts[i].ne {
			n *= e
		}
		rb, err := RowBytes(ts[i].typ, int(n))
		if err != nil || n > math.MaxInt32 {
			return nil, fmt.Errorf("gguf: tensor %s: %v", ts[i].name, err)
		}
		o := start + offs[i]
		if o+uint64(rb) > uint64(len(b)) {
			return nil, fmt.Errorf("gguf: tensor %s past the end", ts[i].name)
		}
		ts[i].data = b[o : o+uint64(rb)]
	}
	return ts, nil
}
