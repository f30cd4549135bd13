// Command mips measures roe's exact maximum inner-product search (retriever.Index.Search)
// over random vectors, next to the machine's read bandwidth measured in the same
// process, and can write the vectors out for faiss_bench.py (see faiss.sh).
//
//	go run ./benchmarks/mips [-n 10000,100000,1000000] [-dim 576,64] [-q 1,32] [-k 10] [-write DIR] [-json FILE]
//
// Data are uniform in [-1, 1) from a fixed seed; rows are grouped in experts of
// 100 (the paper's S); normalisation is raw, like FAISS IndexFlatIP.
package main

import (
	"encoding/binary"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"time"

	"roe/benchmarks/internal/results"
	"roe/kernels"
	"roe/retriever"
)

// Result is one measured configuration.
type Result struct {
	Norm      string  `json:"norm"`
	N         int     `json:"n"`
	Dim       int     `json:"dim"`
	Q         int     `json:"q"`
	K         int     `json:"k"`
	MsPerCall float64 `json:"ms_per_batch"`        // best (minimum) wall time of one Search over the Q queries
	MsMedian  float64 `json:"ms_per_batch_median"` // median of the same runs
	GBps      float64 `json:"gb_per_s"`            // matrix bytes (N·dim·4) / time
	PctBW     float64 `json:"pct_bandwidth"`
	GFlops    float64 `json:"gflops"`
	Reps      int     `json:"reps"`
}

// Report is the program's JSON output.
type Report struct {
	Commit        string   `json:"commit"`
	Kernels       string   `json:"kernels"`
	Threads       int      `json:"threads"`
	CPU           string   `json:"cpu"`
	ReadGBps      float64  `json:"read_bandwidth_gb_per_s"` // all threads, 1 GiB streaming read
	ReadGBps1T    float64  `json:"read_bandwidth_1thread_gb_per_s"`
	Results       []Result `json:"results"`
	Seed          uint64   `json:"seed"`
	DataDir       string   `json:"data_dir,omitempty"`
	ExpertSize    int      `json:"expert_size"`
	GoVersion     string   `json:"go_version"`
	LoadAvgStart  string   `json:"loadavg_start"` // /proc/loadavg: other processes skew timings
	LoadAvgEnd    string   `json:"loadavg_end"`
	TimestampUnix int64    `json:"timestamp_unix"`
}

func main() {
	nsFlag := flag.String("n", "10000,100000,1000000", "database sizes")
	dimsFlag := flag.String("dim", "576,64", "vector dimensions")
	qsFlag := flag.String("q", "1,32", "query batch sizes")
	k := flag.Int("k", 10, "neighbours per query")
	write := flag.String("write", "", "directory to write base/query vectors and roe's top-k ids for faiss_bench.py")
	jsonOut := flag.String("json", "", "write the report as JSON here")
	minTime := flag.Duration("time", 2*time.Second, "minimum measuring time per configuration")
	center := flag.Bool("center", true, "also time center-l2 (roe's default) at the largest N")
	flag.Parse()
	ns, dims, qs := ints(*nsFlag), ints(*dimsFlag), ints(*qsFlag)
	const seed, expertSize = 42, 100

	rep := Report{Commit: results.Commit(), Kernels: kernels.Path(), Threads: kernels.Threads(), CPU: cpuName(), Seed: seed,
		DataDir: *write, ExpertSize: expertSize, GoVersion: runtime.Version(), TimestampUnix: time.Now().Unix()}
	rep.LoadAvgStart = loadAvg()
	rep.ReadGBps, rep.ReadGBps1T = readBandwidth()
	log.Printf("kernels %s, %d threads; read bandwidth %.1f GB/s (1 thread %.1f)", rep.Kernels, rep.Threads, rep.ReadGBps, rep.ReadGBps1T)

	maxN, maxQ := slices.Max(ns), slices.Max(qs)
	for _, dim := range dims {
		base := randMatrix(maxN, dim, seed+uint64(dim))
		query := randMatrix(maxQ, dim, seed+uint64(dim)+1000)
		if *write != "" {
			must(writeF32(filepath.Join(*write, fmt.Sprintf("base_%d.f32", dim)), base))
			must(writeF32(filepath.Join(*write, fmt.Sprintf("query_%d.f32", dim)), query))
		}
		for _, n := range ns {
			norms := []retriever.Normalization{retriever.Raw}
			if *center && n == maxN {
				norms = append(norms, retriever.CenterL2)
			}
			for _, norm := range norms {
				ix := build(base, n, dim, expertSize, norm)
				for _, q := range qs {
					qv := rows(query, q, dim)
					hits, err := ix.Search(qv, *k) // warm-up; builds derived state
					must(err)
					if *write != "" && norm == retriever.Raw {
						must(writeIDs(filepath.Join(*write, fmt.Sprintf("roe_ids_n%d_d%d_q%d_k%d.i64", n, dim, q, *k)), hits, expertSize))
					}
					var times []float64
					start := time.Now()
					for len(times) < 5 || time.Since(start) < *minTime {
						t0 := time.Now()
						_, err := ix.Search(qv, *k)
						must(err)
						times = append(times, time.Since(t0).Seconds())
						if len(times) >= 1000 {
							break
						}
					}
					slices.Sort(times)
					best := times[0]
					bytes := float64(n) * float64(dim) * 4
					r := Result{Norm: string(norm), N: n, Dim: dim, Q: q, K: *k, MsPerCall: best * 1e3, MsMedian: times[len(times)/2] * 1e3,
						GBps: bytes / best / 1e9, GFlops: 2 * float64(n) * float64(dim) * float64(q) / best / 1e9, Reps: len(times)}
					r.PctBW = 100 * r.GBps / rep.ReadGBps
					rep.Results = append(rep.Results, r)
					log.Printf("%-9s N=%-8d dim=%-4d Q=%-3d %9.3f ms  %7.2f GB/s (%5.1f%% of read bw)  %7.1f GFLOP/s  (%d reps)",
						norm, n, dim, q, r.MsPerCall, r.GBps, r.PctBW, r.GFlops, r.Reps)
				}
				ix = nil
				runtime.GC()
				debug.FreeOSMemory()
			}
		}
		base = nil
		runtime.GC()
		debug.FreeOSMemory()
	}
	rep.LoadAvgEnd = loadAvg()
	printTable(rep)
	if *jsonOut != "" {
		b, _ := json.MarshalIndent(rep, "", "  ")
		must(os.WriteFile(*jsonOut, append(b, '\n'), 0o644))
	}
}

// build indexes the first n rows of base as experts of size rows each.
func build(base []float32, n, dim, size int, norm retriever.Normalization) *retriever.Index {
	ix := retriever.NewIndex(dim, norm)
	ix.Reserve(n)
	for e := 0; e*size < n; e++ {
		lo, hi := e*size, min(n, (e+1)*size)
		must(ix.Add(fmt.Sprintf("expert-%06d", e), rows(base[lo*dim:hi*dim], hi-lo, dim), nil))
	}
	return ix
}

// rows views the first n rows of a [*, dim] matrix as slices.
func rows(m []float32, n, dim int) [][]float32 {
	out := make([][]float32, n)
	for i := range out {
		out[i] = m[i*dim : (i+1)*dim : (i+1)*dim]
	}
	return out
}

// randMatrix returns n×dim uniform [-1, 1) floats, generated in parallel
// chunks of 4096 rows each seeded from (seed, chunk), so the data do not depend on threads.
func randMatrix(n, dim int, seed uint64) []float32 {
	m := make([]float32, n*dim)
	const chunk = 4096
	kernels.Parallel((n+chunk-1)/chunk, func(lo, hi int) {
		for c := lo; c < hi; c++ {
			s := splitmix(seed*0x9E3779B97F4A7C15 + uint64(c) + 1)
			for i := c * chunk * dim; i < min(n, (c+1)*chunk)*dim; i++ {
				s ^= s << 13
				s ^= s >> 7
				s ^= s << 17
				m[i] = float32(s>>40)/float32(1<<23) - 1
			}
		}
	})
	return m
}

func splitmix(x uint64) uint64 {
	x += 0x9E3779B97F4A7C15
	x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9
	x = (x ^ (x >> 27)) * 0x94D049BB133111EB
	return x ^ (x >> 31) | 1
}

// readBandwidth streams a 1 GiB array (a SIMD Dot of the array with itself,
// which reads each byte once from memory) with all threads and with one,
// returning the best of several passes in GB/s.
func readBandwidth() (all, one float64) {
	a := make([]float32, 1<<28)
	kernels.Parallel(len(a)/(1<<16), func(lo, hi int) { // touch every page first
		for i := lo << 16; i < hi<<16; i += 1024 {
			a[i] = 1
		}
	})
	sink := float32(0)
	pass := func(parallel bool) float64 {
		t0 := time.Now()
		if parallel {
			const chunk = 1 << 20
			parts := make([]float32, len(a)/chunk)
			kernels.Parallel(len(parts), func(lo, hi int) {
				for c := lo; c < hi; c++ {
					x := a[c*chunk : (c+1)*chunk]
					parts[c] = kernels.Dot(x, x)
				}
			})
			sink += parts[0]
		} else {
			sink += kernels.Dot(a, a)
		}
		return float64(len(a)*4) / time.Since(t0).Seconds() / 1e9
	}
	for range 8 {
		all = math.Max(all, pass(true))
	}
	for range 4 {
		one = math.Max(one, pass(false))
	}
	if sink == 42 {
		fmt.Print("")
	}
	return all, one
}

func printTable(rep Report) {
	fmt.Printf("\nroe exact MIPS (%s kernels, %d threads, read bandwidth %.1f GB/s)\n\n", rep.Kernels, rep.Threads, rep.ReadGBps)
	fmt.Println("| norm | N | dim | Q | ms/batch | GB/s | % read bw | GFLOP/s |")
	fmt.Println("|---|---:|---:|---:|---:|---:|---:|---:|")
	for _, r := range rep.Results {
		fmt.Printf("| %s | %d | %d | %d | %.3f | %.2f | %.1f | %.1f |\n", r.Norm, r.N, r.Dim, r.Q, r.MsPerCall, r.GBps, r.PctBW, r.GFlops)
	}
}

// writeF32 writes a float32 matrix as raw little-endian bytes.
func writeF32(path string, m []float32) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	const chunk = 1 << 20
	buf := make([]byte, 4*chunk)
	for lo := 0; lo < len(m); lo += chunk {
		part := m[lo:min(len(m), lo+chunk)]
		for i, v := range part {
			binary.LittleEndian.PutUint32(buf[4*i:], math.Float32bits(v))
		}
		if _, err := f.Write(buf[:4*len(part)]); err != nil {
			f.Close()
			return err
		}
	}
	return f.Close()
}

// writeIDs writes roe's hits as global row ids, [Q, k] int64 little-endian.
func writeIDs(path string, hits [][]retriever.Hit, size int) error {
	var b []byte
	for _, hs := range hits {
		for _, h := range hs {
			e, err := strconv.Atoi(strings.TrimPrefix(h.Expert, "expert-"))
			if err != nil {
				return err
			}
			b = binary.LittleEndian.AppendUint64(b, uint64(e*size+h.Row))
		}
	}
	return os.WriteFile(path, b, 0o644)
}

func loadAvg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	return strings.TrimSpace(string(b))
}

func cpuName() string {
	b, _ := os.ReadFile("/proc/cpuinfo")
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "model name") {
			if _, v, ok := strings.Cut(l, ":"); ok {
				return strings.TrimSpace(v)
			}
		}
	}
	return runtime.GOARCH
}

func ints(s string) []int {
	var out []int
	for _, f := range strings.Split(s, ",") {
		v, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || v < 1 {
			log.Fatalf("bad number %q", f)
		}
		out = append(out, v)
	}
	return out
}

func must(err error) {
	if err != nil {
		log.Fatal(err)
	}
}
