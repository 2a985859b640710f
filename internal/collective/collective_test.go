package collective

import (
	"crypto/sha256"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/ortrain/ortrain/internal/fault"
)

// twoRanks is rank 0 of a world of 2 whose other rank holds other (for
// AllGather) and whose all-reduce adds peer.
type twoRanks struct {
	Single
	other []byte
	peer  []float32
}

func (twoRanks) Size() int { return 2 }
func (c twoRanks) AllGather(p []byte) ([][]byte, error) {
	return [][]byte{p, c.other}, nil
}
func (c twoRanks) AllReduceFloat32(b []float32, op Op) error {
	for i := range b {
		b[i] += c.peer[i]
	}
	return nil
}

func TestSingleIsTheIdentity(t *testing.T) {
	var c Comm = Single{}
	b := []float32{1, 2}
	if err := AverageFloat32(c, b); err != nil || !slices.Equal(b, []float32{1, 2}) {
		t.Fatalf("%v %v", b, err)
	}
	all, err := c.AllGather([]byte("x"))
	if err != nil || len(all) != 1 || string(all[0]) != "x" {
		t.Fatalf("%q %v", all, err)
	}
	if v, err := BroadcastInt64(c, -7, 0); v != -7 || err != nil {
		t.Fatalf("%d %v", v, err)
	}
	if err := c.Broadcast(nil, 1); err == nil {
		t.Fatal("broadcast from rank 1 of 1 accepted")
	}
}

// threeRanks is rank 0 of a world of 3 whose all-reduce adds the other
// ranks' bufs, as they hand them over (scaled as AverageFloat32 scales).
type threeRanks struct {
	Single
	peers [2][]float32
}

func (threeRanks) Size() int { return 3 }
func (c threeRanks) AllReduceFloat32(b []float32, op Op) error {
	for i := range b {
		third := 1 / float32(3)
		b[i] = (b[i] + c.peers[0][i]*third) + c.peers[1][i]*third
	}
	return nil
}

// TestAverageScalesThenSums: every rank's buffer times 1/N, then the sum,
// as DDP's reducer and NCCL's average take it; with 3 ranks this differs
// from the sum divided by 3 in the last bit (1, 1, 3: 1.6666667, not
// 1.6666666 — checked with numpy float32).
func TestAverageScalesThenSums(t *testing.T) {
	b := []float32{1, 3}
	if err := AverageFloat32(twoRanks{peer: []float32{3 * 0.5, -1 * 0.5}}, b); err != nil || !slices.Equal(b, []float32{2, 1}) {
		t.Fatalf("2 ranks: %v %v", b, err)
	}
	third := 1 / float32(3)
	one := float32(1)
	b = []float32{1}
	if err := AverageFloat32(threeRanks{peers: [2][]float32{{1}, {3}}}, b); err != nil {
		t.Fatal(err)
	}
	want := (one*third + one*third) + 3*third
	if b[0] != want || b[0] != 1.6666667 {
		t.Errorf("3 ranks: %.9g, want %.9g", b[0], want)
	}
	if sumThenDivide := (one + one + 3) / 3; b[0] == sumThenDivide {
		t.Errorf("3 ranks: %.9g is the sum divided by 3", b[0])
	}
}

func TestCheckSameNamesTheRank(t *testing.T) {
	same := sha256.Sum256([]byte("args"))
	if err := CheckSame(twoRanks{other: same[:]}, "arguments", []byte("args")); err != nil {
		t.Fatal(err)
	}
	other := sha256.Sum256([]byte("other"))
	err := CheckSame(twoRanks{other: other[:]}, "arguments", []byte("args"))
	if !errors.Is(err, fault.Settings) || !strings.Contains(err.Error(), "rank 1's arguments differs from rank 0's") {
		t.Fatalf("got %v", err)
	}
}
