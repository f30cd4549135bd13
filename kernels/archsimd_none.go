//go:build !goexperiment.simd || !amd64 || purego || go1.27

package kernels

// archsimdImpls: none without GOEXPERIMENT=simd, off amd64, with purego, or
// on a Go release after 1.26 (simd/archsimd is experimental and its API may
// change: the archsimd sets are pinned to the release they were written for).
func archsimdImpls() []*impl { return nil }
