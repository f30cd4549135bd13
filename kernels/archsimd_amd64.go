//go:build goexperiment.simd && amd64 && !purego && !go1.27

package kernels

import "simd/archsimd"

//go:generate go run gen_archsimd.go

// archsimdImpls lists the archsimd sets this CPU can run, best first.
func archsimdImpls() []*impl {
	var s []*impl
	if archsimd.X86.AVX512() {
		s = append(s, archsimd512Impl)
	}
	if archsimd.X86.AVX2() && archsimd.X86.FMA() {
		s = append(s, archsimd256Impl)
	}
	return s
}

// sum4 stores (or adds, with acc) [Σa, Σb, Σc, Σd] into dst[0:4], each
// argument already folded to 4 lanes.
func sum4(dst []float32, acc bool, a, b, c, d archsimd.Float32x4) {
	s := a.AddPairs(b).AddPairs(c.AddPairs(d))
	if acc {
		s = s.Add(archsimd.LoadFloat32x4Slice(dst))
	}
	s.StoreSlice(dst)
}
