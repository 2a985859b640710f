package nprand

import "testing"

// numpy 2.4.6: np.random.seed(7); np.random.randint(0, 1000, size=8)
// (np.random.choice(np.arange(1000), size=8) draws the same).
func TestMatchesNumPyLegacySeed(t *testing.T) {
	want := []int{175, 196, 537, 502, 579, 211, 919, 615}
	g := New(7)
	for i, w := range want {
		if got := g.Intn(1000); got != w {
			t.Fatalf("draw %d = %d, want %d", i, got, w)
		}
	}
	if New(1).Intn(1) != 0 {
		t.Error("Intn(1) must be 0")
	}
}
