package report

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/ortrain/ortrain/internal/testenv"
)

// TestEventFileMatchesTorchSummaryWriter compares the bytes of an event
// file with what torch's SummaryWriter.add_scalar wrote for the same
// scalars and wall times (scripts/refs/trainer_tensorboard_refs.py; the
// same script checked that TensorBoard's EventAccumulator reads them).
func TestEventFileMatchesTorchSummaryWriter(t *testing.T) {
	data, err := os.ReadFile(testenv.Testdata(t, "trainer", "tensorboard_refs.json"))
	if err != nil {
		t.Fatal(err)
	}
	var ref struct {
		Start   float64 `json:"start_wall_time"`
		Scalars []struct {
			Tag   string  `json:"tag"`
			Value any     `json:"value"`
			Step  int64   `json:"step"`
			Wall  float64 `json:"wall"`
		} `json:"scalars"`
		FileHex string           `json:"file_hex"`
		Seen    map[string][]any `json:"event_accumulator"`
	}
	if err := json.Unmarshal(data, &ref); err != nil {
		t.Fatal(err)
	}
	var sc []Scalar
	for _, s := range ref.Scalars {
		v := math.NaN()
		if f, ok := s.Value.(float64); ok {
			v = f
		}
		sc = append(sc, Scalar{s.Tag, v, s.Step, s.Wall})
	}
	want, _ := hex.DecodeString(ref.FileHex)
	if got := EncodeEvents(ref.Start, "tensorboard.summary.writer.event_file_writer", sc); !bytes.Equal(got, want) {
		t.Fatalf("event bytes differ:\n got %x\nwant %x", got, want)
	}
	if len(ref.Seen) != 7 {
		t.Fatalf("EventAccumulator saw %d tags", len(ref.Seen))
	}

	// The file writer produces the same bytes but for its own writer name.
	want = EncodeEvents(ref.Start, WriterName, sc)
	dir := t.TempDir()
	start := time.Unix(int64(ref.Start), int64((ref.Start-math.Floor(ref.Start))*1e9))
	w, err := NewEventWriter(dir, func() time.Time { return start })
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range sc {
		if err := w.AddScalarAt(s.Tag, s.Value, s.Step, s.Wall); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(w.Path)
	if !bytes.Equal(got, want) {
		t.Fatal("EventWriter's file differs from the reference")
	}
	if m, _ := filepath.Match("events.out.tfevents.*.*.*.0", filepath.Base(w.Path)); !m {
		t.Errorf("file name %s", filepath.Base(w.Path))
	}
}
