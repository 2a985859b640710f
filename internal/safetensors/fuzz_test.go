package safetensors

import (
	"bytes"
	"os"
	"testing"

	"github.com/ortrain/ortrain/internal/testenv"
)

// FuzzDecode decodes arbitrary bytes as a safetensors file and, when they
// decode, reads every tensor and writes the file again: nothing may panic
// or allocate what a header merely claims. Run by scripts/fuzz.sh.
func FuzzDecode(f *testing.F) {
	ref, err := os.ReadFile(testenv.Testdata(f, "safetensors", "reference.safetensors"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(ref)
	var b bytes.Buffer
	Write(&b, map[string]Tensor{"w": FromFloat32([]int64{2, 2}, []float32{1, 2, 3, 4}), "i": FromInt64([]int64{1}, []int64{7})}, map[string]string{"format": "pt"})
	f.Add(b.Bytes())
	f.Add([]byte("\x10\x00\x00\x00\x00\x00\x00\x00{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296],\"data_offsets\":[0,0]}}"))
	f.Fuzz(func(t *testing.T, data []byte) {
		file, err := Decode(data)
		if err != nil {
			return
		}
		for _, tensor := range file.Tensors {
			tensor.Float32s()
			tensor.Int64s()
		}
		var out bytes.Buffer
		if err := Write(&out, file.Tensors, file.Metadata); err != nil {
			t.Fatalf("a decoded file does not write: %v", err)
		}
		if _, err := Decode(out.Bytes()); err != nil {
			t.Fatalf("a written file does not decode: %v", err)
		}
	})
}
