//go:build !linux

package main

func hugeFloats(n int) ([]float32, func()) { return make([]float32, n), func() {} }
