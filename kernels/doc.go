// Package kernels holds roe's numeric kernels: the only place with SIMD.
//
// Every kernel has a plain reference twin (reference.go) that the fast
// version is tested against. Fast paths are chosen at start-up from the CPU's
// features (AVX-512, AVX2+FMA, or portable Go), and large products are split
// across a persistent worker pool.
package kernels
