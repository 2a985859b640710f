package ortckpt

import (
	"os"
	"testing"

	"github.com/ortrain/ortrain/internal/testenv"
)

// FuzzDecode decodes arbitrary bytes as an ONNX Runtime training
// checkpoint (flatbuffer) and, when they decode, encodes and decodes the
// result again: offsets and lengths the bytes claim are checked, never
// trusted. Run by scripts/fuzz.sh.
func FuzzDecode(f *testing.F) {
	small, err := Encode(&Checkpoint{
		Version:   1,
		Trainable: []Tensor{{Name: "w", Dims: []int64{2}, DataType: 1, Raw: make([]byte, 8)}},
		Frozen:    []Tensor{{Name: "b", Dims: []int64{}, DataType: 7, Raw: make([]byte, 8)}},
		Ints:      map[string]int64{"step": 3}, Floats: map[string]float32{"lr": 0.5}, Strings: map[string]string{"k": "v"},
	})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(small)
	b, err := os.ReadFile(testenv.Testdata(f, "ort-artifacts", "t5-tiny", "checkpoint"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b[:min(len(b), 4096)])
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Decode(data)
		if err != nil {
			return
		}
		again, err := Encode(c)
		if err != nil {
			return // a decoded checkpoint may hold what Encode refuses
		}
		if _, err := Decode(again); err != nil {
			t.Fatalf("an encoded checkpoint does not decode: %v", err)
		}
	})
}
