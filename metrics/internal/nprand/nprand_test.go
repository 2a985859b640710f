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

// numpy 2.4.6: np.random.default_rng(12345).bit_generator.random_raw(3) and
// .choice(1000, size=10) (= .integers(0, 1000, size=10)).
func TestPCG64MatchesNumPyDefaultRNG(t *testing.T) {
	g := NewPCG64(12345)
	for i, w := range []uint64{4193609425186963869, 5843160025838961886, 14708796524633321433} {
		if got := g.Uint64(); got != w {
			t.Fatalf("raw %d = %d, want %d", i, got, w)
		}
	}
	g = NewPCG64(12345)
	for i, w := range []int{699, 227, 788, 316, 204, 797, 642, 676, 988, 391} {
		if got := g.Intn(1000); got != w {
			t.Fatalf("draw %d = %d, want %d", i, got, w)
		}
	}
}
