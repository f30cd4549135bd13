package safetensors

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// writeSharded writes two shards and an index with the given weight_map JSON
// (nil means the correct one) and returns the folder.
func writeSharded(t *testing.T, weightMap string) string {
	t.Helper()
	dir := t.TempDir()
	s1 := []Tensor{
		F32Tensor("model.embed_tokens.weight", []int{2, 2}, []float32{1, 2, 3, 4}),
		BF16Tensor("model.layers.0.w", []int{2}, []float32{0.5, -1}),
	}
	s2 := []Tensor{
		F16Tensor("model.norm.weight", []int{2}, []float32{1, 0.25}),
		I32Tensor("ids", []int{3}, []int32{7, 8, 9}),
	}
	if err := Write(filepath.Join(dir, "model-00001-of-00002.safetensors"), s1, map[string]string{"format": "pt"}); err != nil {
		t.Fatal(err)
	}
	if err := Write(filepath.Join(dir, "model-00002-of-00002.safetensors"), s2, map[string]string{"format": "pt"}); err != nil {
		t.Fatal(err)
	}
	if weightMap == "" {
		weightMap = `{"model.embed_tokens.weight":"model-00001-of-00002.safetensors",
			"model.layers.0.w":"model-00001-of-00002.safetensors",
			"model.norm.weight":"model-00002-of-00002.safetensors",
			"ids":"model-00002-of-00002.safetensors"}`
	}
	index := `{"metadata":{"total_size":40},"weight_map":` + weightMap + `}`
	if err := os.WriteFile(filepath.Join(dir, IndexFileName), []byte(index), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestShardedSet(t *testing.T) {
	dir := writeSharded(t, "")
	s, err := OpenDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var names []string
	for _, info := range s.Tensors() {
		names = append(names, info.Name)
	}
	if got := strings.Join(names, ","); got != "ids,model.embed_tokens.weight,model.layers.0.w,model.norm.weight" {
		t.Errorf("tensors %s", got)
	}
	if got := filepath.Base(s.File("model.norm.weight")); got != "model-00002-of-00002.safetensors" {
		t.Errorf("File = %s", got)
	}
	if s.File("absent") != "" {
		t.Error("File(absent) not empty")
	}
	if v, err := s.Float32("model.embed_tokens.weight"); err != nil || v[3] != 4 {
		t.Errorf("embed %v %v", v, err)
	}
	if v, err := s.Float32("model.layers.0.w"); err != nil || v[0] != 0.5 || v[1] != -1 {
		t.Errorf("bf16 %v %v", v, err)
	}
	if v, err := s.Float32("model.norm.weight"); err != nil || v[1] != 0.25 {
		t.Errorf("f16 %v %v", v, err)
	}
	if v, err := s.Int32("ids"); err != nil || v[2] != 9 {
		t.Errorf("ids %v %v", v, err)
	}
	if info, ok := s.Info("ids"); !ok || info.DType != I32 {
		t.Errorf("Info(ids) = %+v", info)
	}
	if _, err := s.Float32("absent"); !errors.Is(err, ErrNotFound) {
		t.Errorf("absent: %v", err)
	}
	if len(s.Files()) != 2 || s.IndexMetadata()["total_size"] != float64(40) {
		t.Errorf("files %d, metadata %v", len(s.Files()), s.IndexMetadata())
	}
}

func TestShardedRejects(t *testing.T) {
	cases := []struct {
		name, weightMap string
		kind            error
		msg             string
	}{
		{"path traversal", `{"model.embed_tokens.weight":"../model-00001-of-00002.safetensors"}`, ErrIndex, "outside the model folder"},
		{"absolute path", `{"model.embed_tokens.weight":"/etc/passwd"}`, ErrIndex, "outside the model folder"},
		{"missing tensor", `{"model.embed_tokens.weight":"model-00001-of-00002.safetensors",
			"model.layers.0.w":"model-00001-of-00002.safetensors",
			"lm_head.weight":"model-00001-of-00002.safetensors"}`, ErrNotFound, `weight_map["lm_head.weight"]: tensor not in shard`},
		{"tensor in wrong shard", `{"model.embed_tokens.weight":"model-00002-of-00002.safetensors"}`, ErrNotFound, "not in shard"},
		{"missing shard", `{"x":"model-00003-of-00003.safetensors"}`, ErrNotFound, "model-00003-of-00003.safetensors"},
		{"unlisted tensor", `{"model.embed_tokens.weight":"model-00001-of-00002.safetensors"}`, ErrIndex, `"model.layers.0.w", which weight_map does not assign`},
		{"duplicate entry", `{"model.embed_tokens.weight":"model-00001-of-00002.safetensors","model.embed_tokens.weight":"model-00001-of-00002.safetensors"}`, ErrDuplicate, "duplicate"},
		{"empty weight_map", `{}`, ErrIndex, "empty"},
		{"not a map", `[]`, ErrIndex, "not an object"},
		{"non-string file", `{"a":1}`, ErrIndex, "not a file name"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := writeSharded(t, c.weightMap)
			s, err := OpenDir(dir)
			if err == nil {
				s.Close()
				t.Fatal("no error")
			}
			if !errors.Is(err, c.kind) || !strings.Contains(err.Error(), c.msg) {
				t.Errorf("got %q, want %v mentioning %q", err, c.kind, c.msg)
			}
			if !strings.Contains(err.Error(), IndexFileName) {
				t.Errorf("error %q does not name the index", err)
			}
		})
	}
}

func TestOpenDirMissingAndBadIndex(t *testing.T) {
	if _, err := OpenDir(t.TempDir()); !errors.Is(err, ErrNotFound) {
		t.Errorf("empty folder: %v", err)
	}
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, IndexFileName), []byte(`{"weight_map":`), 0o644)
	if _, err := OpenDir(dir); !errors.Is(err, ErrIndex) {
		t.Errorf("bad JSON: %v", err)
	}
	// A corrupt shard reports both the index and the shard's problem.
	dir = writeSharded(t, "")
	os.WriteFile(filepath.Join(dir, "model-00002-of-00002.safetensors"), []byte("bad"), 0o644)
	_, err := OpenDir(dir)
	if !errors.Is(err, ErrTruncated) || !strings.Contains(err.Error(), "model-00002-of-00002.safetensors") {
		t.Errorf("corrupt shard: %v", err)
	}
}
