package safetensors

import (
	"encoding/binary"
	"errors"
	"strings"
	"testing"

	"github.com/ortrain/ortrain/internal/fault"
)

func withHeader(h string, data int) []byte {
	b := make([]byte, 8, 8+len(h)+data)
	binary.LittleEndian.PutUint64(b, uint64(len(h)))
	return append(append(b, h...), make([]byte, data)...)
}

// A shape whose element count overflows int64 is refused: it used to wrap
// to a small count (zero here), pass the size check, and reach whoever
// allocated by the shape.
func TestShapeOverflowRefused(t *testing.T) {
	for _, shape := range []string{"[8589934592, 2147483648]", "[4294967296, 4294967296, 4]", "[9223372036854775807, 2]"} {
		_, err := Decode(withHeader(`{"w": {"dtype": "F32", "shape": `+shape+`, "data_offsets": [0, 0]}}`, 0))
		if !errors.Is(err, fault.Input) || !strings.Contains(err.Error(), "shape") {
			t.Errorf("shape %s: %v", shape, err)
		}
	}
	if _, err := Decode(withHeader(`{"w": {"dtype": "F32", "shape": [4294967296, 0], "data_offsets": [0, 0]}}`, 0)); err != nil {
		t.Errorf("a zero dim: %v", err)
	}
}
