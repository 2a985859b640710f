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

func TestAverageDividesTheSum(t *testing.T) {
	b := []float32{1, 3}
	if err := AverageFloat32(twoRanks{peer: []float32{3, -1}}, b); err != nil || !slices.Equal(b, []float32{2, 1}) {
		t.Fatalf("%v %v", b, err)
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
