//go:build !amd64 || purego

package kernels

func simdImpls() []*impl { return nil }
