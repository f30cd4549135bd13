package safetensors

import (
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// mkFile builds a safetensors file from a raw header string and dataLen zero bytes of data.
func mkFile(header string, dataLen int) []byte {
	b := make([]byte, 8, 8+len(header)+dataLen)
	binary.LittleEndian.PutUint64(b, uint64(len(header)))
	b = append(b, header...)
	return append(b, make([]byte, dataLen)...)
}

// withLen builds a file whose length prefix is n, followed by rest.
func withLen(n uint64, rest string) []byte {
	b := make([]byte, 8)
	binary.LittleEndian.PutUint64(b, n)
	return append(b, rest...)
}

type badCase struct {
	name string
	file []byte
	kind error  // the specific sentinel the error must wrap
	msg  string // a fragment of the message
}

func badCases() []badCase {
	t := func(dtype, shape, offs string) string {
		return `{"dtype":"` + dtype + `","shape":` + shape + `,"data_offsets":` + offs + `}`
	}
	return []badCase{
		{"empty file", nil, ErrTruncated, "shorter than the 8-byte"},
		{"4 bytes", []byte{1, 0, 0, 0}, ErrTruncated, "shorter than the 8-byte"},
		{"header cut", withLen(100, `{"a":{"dtype":"F32"`), ErrTruncated, "past end of file"},
		{"header length past end", withLen(1000, `{}`), ErrTruncated, "header length 1000 past end of file"},
		{"huge header length", withLen(1<<62, `{}`), ErrHeader, "exceeds"},
		{"max uint64 header length", withLen(^uint64(0), `{}`), ErrHeader, "exceeds"},
		{"header over the cap", withLen(MaxHeaderSize+1, `{}`), ErrHeader, "exceeds"},
		{"zero header length", withLen(0, ``), ErrHeader, "too small"},
		{"invalid JSON", mkFile(`{"a":`, 0), ErrHeader, "invalid JSON"},
		{"invalid JSON garbage", mkFile(`{"a" 1}`, 0), ErrHeader, "invalid JSON"},
		{"trailing comma", mkFile(`{"a":`+t("F32", "[1]", "[0,4]")+`,}`, 4), ErrHeader, "invalid JSON"},
		{"non-object header array", mkFile(`[1,2,3]`, 0), ErrHeader, "not a JSON object"},
		{"non-object header string", mkFile(`"abc"`, 0), ErrHeader, "not a JSON object"},
		{"non-object header null", mkFile(`null`, 0), ErrHeader, "not a JSON object"},
		{"trailing data", mkFile(`{} {}`, 0), ErrHeader, "trailing data"},
		{"NUL padding", mkFile("{}\x00\x00", 0), ErrHeader, "invalid JSON"},
		{"entry not object", mkFile(`{"a":5}`, 0), ErrHeader, "want an object"},
		{"missing dtype", mkFile(`{"a":{"shape":[1],"data_offsets":[0,4]}}`, 4), ErrHeader, `missing "dtype"`},
		{"missing shape", mkFile(`{"a":{"dtype":"F32","data_offsets":[0,4]}}`, 4), ErrHeader, `missing "shape"`},
		{"missing offsets", mkFile(`{"a":{"dtype":"F32","shape":[1]}}`, 4), ErrHeader, `missing "data_offsets"`},
		{"unknown dtype", mkFile(`{"a":`+t("F33", "[1]", "[0,4]")+`}`, 4), ErrDType, `unknown dtype "F33"`},
		{"lowercase dtype", mkFile(`{"a":`+t("f32", "[1]", "[0,4]")+`}`, 4), ErrDType, `unknown dtype`},
		{"dtype not string", mkFile(`{"a":{"dtype":4,"shape":[1],"data_offsets":[0,4]}}`, 4), ErrDType, "want a string"},
		{"negative shape", mkFile(`{"a":`+t("F32", "[-1,4]", "[0,4]")+`}`, 4), ErrShape, "negative dimension"},
		{"shape not array", mkFile(`{"a":`+t("F32", "4", "[0,16]")+`}`, 16), ErrShape, "want an array"},
		{"fractional shape", mkFile(`{"a":`+t("F32", "[1.5]", "[0,4]")+`}`, 4), ErrShape, "not a 64-bit integer"},
		{"shape overflow", mkFile(`{"a":`+t("F32", "[2147483647,2147483647,2147483647]", "[0,4]")+`}`, 4), ErrShape, "overflows"},
		{"shape bytes mismatch", mkFile(`{"a":`+t("F32", "[2,3]", "[0,20]")+`}`, 24), ErrShape, "needs 24 bytes"},
		{"bf16 size mismatch", mkFile(`{"a":`+t("BF16", "[3]", "[0,12]")+`}`, 12), ErrShape, "needs 6 bytes"},
		{"offsets past end", mkFile(`{"model.norm.weight":`+t("F32", "[250]", "[0,1000]")+`}`, 800), ErrTruncated,
			`tensor "model.norm.weight": data_offsets [0 1000] past end of data (800 bytes)`},
		{"begin > end", mkFile(`{"a":`+t("F32", "[1]", "[8,4]")+`}`, 8), ErrOffsets, "begin > end"},
		{"negative offset", mkFile(`{"a":`+t("F32", "[1]", "[-4,0]")+`}`, 8), ErrOffsets, "negative"},
		{"three offsets", mkFile(`{"a":`+t("F32", "[1]", "[0,4,8]")+`}`, 8), ErrOffsets, "want 2"},
		{"huge offset", mkFile(`{"a":`+t("F32", "[1]", "[0,100000000000000000000]")+`}`, 8), ErrOffsets, "not a 64-bit integer"},
		{"offset string", mkFile(`{"a":`+t("F32", "[1]", `["0","4"]`)+`}`, 8), ErrOffsets, "want an integer"},
		{"overlapping tensors", mkFile(`{"a":`+t("F32", "[2]", "[0,8]")+`,"b":`+t("F32", "[2]", "[4,12]")+`}`, 12), ErrOverlap, "overlap"},
		{"same range", mkFile(`{"a":`+t("F32", "[1]", "[0,4]")+`,"b":`+t("F32", "[1]", "[0,4]")+`}`, 4), ErrOverlap, "overlap"},
		{"contained", mkFile(`{"a":`+t("F32", "[4]", "[0,16]")+`,"b":`+t("F32", "[1]", "[4,8]")+`,"c":`+t("F32", "[1]", "[8,12]")+`}`, 16), ErrOverlap, "overlap"},
		{"duplicate key", mkFile(`{"a":`+t("F32", "[1]", "[0,4]")+`,"a":`+t("F32", "[1]", "[4,8]")+`}`, 8), ErrDuplicate, "duplicate"},
		{"duplicate field", mkFile(`{"a":{"dtype":"F32","dtype":"F16","shape":[1],"data_offsets":[0,4]}}`, 4), ErrDuplicate, "duplicate"},
		{"duplicate metadata", mkFile(`{"__metadata__":{},"__metadata__":{}}`, 0), ErrDuplicate, "duplicate"},
		{"duplicate metadata key", mkFile(`{"__metadata__":{"a":"1","a":"2"}}`, 0), ErrDuplicate, "duplicate"},
		{"metadata number value", mkFile(`{"__metadata__":{"format":1}}`, 0), ErrMetadata, "want a string"},
		{"metadata object value", mkFile(`{"__metadata__":{"format":{"x":"y"}}}`, 0), ErrMetadata, "want a string"},
		{"metadata array", mkFile(`{"__metadata__":["pt"]}`, 0), ErrMetadata, "want an object"},
		{"metadata string", mkFile(`{"__metadata__":"pt"}`, 0), ErrMetadata, "want an object"},
	}
}

func TestBadInput(t *testing.T) {
	dir := t.TempDir()
	for _, c := range badCases() {
		t.Run(c.name, func(t *testing.T) {
			check := func(err error, wantFile bool) {
				t.Helper()
				if err == nil {
					t.Fatal("no error")
				}
				if !errors.Is(err, c.kind) || !errors.Is(err, ErrHeader) {
					t.Errorf("error %q does not wrap %v and ErrHeader", err, c.kind)
				}
				if !strings.Contains(err.Error(), c.msg) {
					t.Errorf("error %q does not mention %q", err, c.msg)
				}
				if wantFile && !strings.HasPrefix(err.Error(), "model.safetensors: ") {
					t.Errorf("error %q does not name the file", err)
				}
			}
			_, _, _, err := ParseHeader(c.file, int64(len(c.file)))
			check(err, false)
			path := filepath.Join(dir, "model.safetensors")
			if err := os.WriteFile(path, c.file, 0o644); err != nil {
				t.Fatal(err)
			}
			f, err := Open(path)
			if err == nil {
				f.Close()
			}
			check(err, true)
		})
	}
}

// A header cut short in the buffer given to ParseHeader (the file itself is long enough).
func TestParseHeaderCut(t *testing.T) {
	b := mkFile(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}`, 4)
	_, _, _, err := ParseHeader(b[:20], int64(len(b)))
	if !errors.Is(err, ErrTruncated) || !strings.Contains(err.Error(), "header cut") {
		t.Fatalf("got %v", err)
	}
}

func TestParseHeaderValid(t *testing.T) {
	hdr := `{"__metadata__":{"format":"pt","k":"v"},` +
		`"z":{"dtype":"F16","shape":[2,2],"data_offsets":[16,24]},` +
		`"a":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16],"extra":{"ignored":[1,2]}},` +
		`"scalar":{"dtype":"I64","shape":[],"data_offsets":[24,32]},` +
		`"empty":{"dtype":"F32","shape":[0,5],"data_offsets":[24,24]},` +
		`"empty2":{"dtype":"BF16","shape":[0],"data_offsets":[32,32]}}    `
	b := mkFile(hdr, 40) // 8 bytes of trailing slack are tolerated
	infos, meta, start, err := ParseHeader(b, int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	if start != int64(8+len(hdr)) {
		t.Errorf("dataStart = %d", start)
	}
	if meta["format"] != "pt" || meta["k"] != "v" || len(meta) != 2 {
		t.Errorf("metadata = %v", meta)
	}
	var names []string
	for _, in := range infos {
		names = append(names, in.Name)
	}
	if got := strings.Join(names, ","); got != "a,empty,empty2,scalar,z" {
		t.Errorf("names = %s", got)
	}
	if infos[3].Numel() != 1 || infos[3].Size() != 8 || infos[1].Numel() != 0 {
		t.Errorf("scalar/empty sizes wrong: %+v", infos)
	}
	// No metadata, null metadata, empty header.
	for _, h := range []string{`{}`, `{"__metadata__":null}`, `  {  }  `} {
		b := mkFile(h, 0)
		infos, meta, _, err := ParseHeader(b, int64(len(b)))
		if err != nil || len(infos) != 0 || meta == nil {
			t.Errorf("%s: %v %v %v", h, infos, meta, err)
		}
	}
}
