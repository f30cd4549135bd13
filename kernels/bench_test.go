package kernels

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"testing"

	"github.com/viterin/vek/vek32"
)

// Shapes: decode GEMV (m=1), small batch decode (m=8), prefill (m=128, 512),
// with SmolLM-sized n, k and a vocabulary-sized n.
var mmShapes = [][3]int{
	{1, 1536, 576}, {1, 49152, 576}, {8, 1536, 576}, {128, 1536, 576}, {512, 1536, 576},
}

func gflops(b *testing.B, flops float64) {
	b.ReportMetric(flops*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
}

// BenchmarkMatMulT compares, per shape: each kernel set on 1 and all threads,
// the reference twin, vek32.Dot per output, and vek32.MatMul on a
// pre-transposed w (vek has no transposed GEMM).
func BenchmarkMatMulT(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 1))
	saved, threads := cur, Threads()
	defer func() { cur = saved; SetThreads(threads) }()
	for _, s := range mmShapes {
		m, n, k := s[0], s[1], s[2]
		x, w, dst := randVec(r, m*k, 1), randVec(r, n*k, 1), make([]float32, m*n)
		flops := 2 * float64(m) * float64(n) * float64(k)
		name := fmt.Sprintf("m=%d,n=%d,k=%d", m, n, k)
		for _, im := range impls {
			for _, th := range []int{1, threads} {
				b.Run(fmt.Sprintf("%s/%s/threads=%d", name, im.name, th), func(b *testing.B) {
					cur = im
					SetThreads(th)
					for b.Loop() {
						MatMulT(dst, x, w, m, n, k)
					}
					gflops(b, flops)
				})
				if threads == 1 {
					break
				}
			}
		}
		cur = saved
		SetThreads(threads)
		if m*n*k <= 1<<26 { // the scalar twin takes seconds on the big ones
			b.Run(name+"/ref", func(b *testing.B) {
				for b.Loop() {
					matMulTRef(dst, x, w, m, n, k)
				}
				gflops(b, flops)
			})
		}
		b.Run(name+"/vekDot", func(b *testing.B) {
			for b.Loop() {
				for i := 0; i < m; i++ {
					for j := 0; j < n; j++ {
						dst[i*n+j] = vek32.Dot(x[i*k:i*k+k], w[j*k:j*k+k])
					}
				}
			}
			gflops(b, flops)
		})
		if m > 1 {
			wt := make([]float32, k*n)
			for j := 0; j < n; j++ {
				for p := 0; p < k; p++ {
					wt[p*n+j] = w[j*k+p]
				}
			}
			b.Run(name+"/vekMatMul", func(b *testing.B) {
				for b.Loop() {
					vek32.MatMul_Into(dst, x, wt, k)
				}
				gflops(b, flops)
			})
		}
	}
}

func BenchmarkDot(b *testing.B) {
	r := rand.New(rand.NewPCG(2, 2))
	saved := cur
	defer func() { cur = saved }()
	for _, n := range []int{64, 576, 4096} {
		x, y := randVec(r, n, 1), randVec(r, n, 1)
		for _, im := range impls {
			b.Run(fmt.Sprintf("n=%d/%s", n, im.name), func(b *testing.B) {
				cur = im
				for b.Loop() {
					Dot(x, y)
				}
				gflops(b, 2*float64(n))
			})
		}
		b.Run(fmt.Sprintf("n=%d/ref", n), func(b *testing.B) {
			for b.Loop() {
				dotRef(x, y)
			}
			gflops(b, 2*float64(n))
		})
		b.Run(fmt.Sprintf("n=%d/vek", n), func(b *testing.B) {
			for b.Loop() {
				vek32.Dot(x, y)
			}
			gflops(b, 2*float64(n))
		})
	}
}

// benchRow times a one-row kernel on each kernel set and the reference.
func benchRow(b *testing.B, sizes []int, fast, ref func(x []float32)) {
	r := rand.New(rand.NewPCG(3, 3))
	saved := cur
	defer func() { cur = saved }()
	for _, n := range sizes {
		x := randVec(r, n, 4)
		buf := make([]float32, n)
		run := func(b *testing.B, f func(x []float32)) {
			for b.Loop() {
				copy(buf, x)
				f(buf)
			}
			b.SetBytes(int64(4 * n))
		}
		for _, im := range impls {
			b.Run(fmt.Sprintf("n=%d/%s", n, im.name), func(b *testing.B) { cur = im; run(b, fast) })
		}
		b.Run(fmt.Sprintf("n=%d/ref", n), func(b *testing.B) { run(b, ref) })
	}
}

func BenchmarkSoftmax(b *testing.B) {
	benchRow(b, []int{128, 2048, 32768}, Softmax, softmaxRef)
}

func BenchmarkRMSNorm(b *testing.B) {
	w := randVec(rand.New(rand.NewPCG(4, 4)), 8192, 1)
	benchRow(b, []int{576, 4096},
		func(x []float32) { RMSNorm(x, x, w[:len(x)], 1e-5) },
		func(x []float32) { rmsNormRef(x, x, w[:len(x)], 1e-5) })
}

func BenchmarkSiLUMul(b *testing.B) {
	u := randVec(rand.New(rand.NewPCG(5, 5)), 8192, 1)
	benchRow(b, []int{1536, 8192},
		func(x []float32) { SiLUMul(x, u[:len(x)]) },
		func(x []float32) { siluMulRef(x, u[:len(x)]) })
}

// BenchmarkGEMVQ times decode GEMVs (m=1) on SmolLM2-135M shapes per weight
// type, in GB/s of weight bytes streamed, with float32 (MatMulT) and bf16
// (MatMulTBF16) for comparison. K-quant rows hold whole 256-blocks, so their
// 576 is 512. Run with -cpu 1,2 for the thread counts.
func BenchmarkGEMVQ(b *testing.B) {
	r := rand.New(rand.NewPCG(7, 7))
	saved, threads := cur, Threads()
	defer func() { cur = saved; SetThreads(threads) }()
	for _, s := range [][2]int{{576, 1536}, {1536, 576}, {49152, 576}} {
		for _, ty := range []QType{F32, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, IQ4_NL, IQ4_XS} {
			n, k := s[0], s[1]
			if ty.BlockSize() == 256 && k%256 != 0 {
				k = k / 256 * 256
			}
			w := randQMatrix(r, ty, n, k)
			x, dst := randVec(r, k, 1), make([]float32, n)
			var wf []float32
			var wh []uint16
			switch ty {
			case F32:
				wf = make([]float32, n*k)
				dequantizeRowRef(F32, wf, w.Data)
			case BF16:
				wh = make([]uint16, n*k)
				for i := range wh {
					wh[i] = le16(w.Data[2*i:])
				}
			}
			for _, im := range impls {
				b.Run(fmt.Sprintf("n=%d,k=%d/%s/%s", n, k, ty, im.name), func(b *testing.B) {
					cur = im
					SetThreads(runtime.GOMAXPROCS(0))
					for b.Loop() {
						switch ty {
						case F32:
							MatMulT(dst, x, wf, 1, n, k)
						case BF16:
							MatMulTBF16(dst, x, wh, 1, n, k)
						default:
							MatMulTQ(dst, x, w, 1)
						}
					}
					b.ReportMetric(float64(len(w.Data))*float64(b.N)/b.Elapsed().Seconds()/1e9, "GB/s")
				})
			}
		}
	}
}

// BenchmarkMatMulTQ times small-batch decode and prefill products with
// quantized weights (n=1536, k=576 or 512), in GFLOP/s.
func BenchmarkMatMulTQ(b *testing.B) {
	r := rand.New(rand.NewPCG(8, 8))
	saved, threads := cur, Threads()
	defer func() { cur = saved; SetThreads(threads) }()
	for _, ty := range []QType{Q8_0, Q4_K, Q6_K, Q5_K} {
		n, k := 1536, 576
		if ty.BlockSize() == 256 {
			k = 512
		}
		w := randQMatrix(r, ty, n, k)
		for _, m := range []int{1, 2, 4, 8, 128} {
			x, dst := randVec(r, m*k, 1), make([]float32, m*n)
			for _, im := range impls {
				b.Run(fmt.Sprintf("%s/m=%d/%s", ty, m, im.name), func(b *testing.B) {
					cur = im
					SetThreads(runtime.GOMAXPROCS(0))
					for b.Loop() {
						MatMulTQ(dst, x, w, m)
					}
					gflops(b, 2*float64(m*n*k))
				})
			}
		}
	}
}

// BenchmarkGEMVQ8 times decode GEMVs (m=1) on SmolLM2-135M shapes with
// float32 activations (act=f32, MatMulTQ, exact) and int8 activations
// (act=q8, MatMulTQ8, lossy) in the kernel set in use, in GB/s of weight
// bytes. K-quant rows of 576 are 512 (whole 256-blocks). Run with -cpu 1,2
// for the thread counts; benchmarks/q8ratio.sh prints q8 ÷ f32.
func BenchmarkGEMVQ8(b *testing.B) {
	r := rand.New(rand.NewPCG(9, 9))
	threads := Threads()
	defer SetThreads(threads)
	for _, s := range [][2]int{{576, 576}, {1536, 576}, {576, 1536}, {49152, 576}} {
		for _, ty := range Q8Types() {
			n, k := s[0], s[1]
			if ty.BlockSize() == 256 && k%256 != 0 {
				k = k / 256 * 256
			}
			w := randQMatrix(r, ty, n, k)
			x, dst := randVec(r, k, 1), make([]float32, n)
			for _, act := range []string{"f32", "q8"} {
				b.Run(fmt.Sprintf("n=%d,k=%d/%s/act=%s", n, k, ty, act), func(b *testing.B) {
					SetThreads(runtime.GOMAXPROCS(0))
					for b.Loop() {
						if act == "q8" {
							MatMulTQ8(dst, x, w, 1)
						} else {
							MatMulTQ(dst, x, w, 1)
						}
					}
					b.ReportMetric(float64(len(w.Data))*float64(b.N)/b.Elapsed().Seconds()/1e9, "GB/s")
				})
			}
		}
	}
}
