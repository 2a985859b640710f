// Package nprand reproduces the random stream of NumPy's legacy global
// generator (numpy.random.seed / numpy.random.choice), which rouge-score's
// BootstrapAggregator draws from: MT19937 seeded with init_genrand, and
// bounded integers by masked rejection sampling on 32-bit outputs.
package nprand

const (
	n         = 624
	m         = 397
	matrixA   = 0x9908b0df
	upperMask = 0x80000000
	lowerMask = 0x7fffffff
)

// MT19937 is the Mersenne Twister as NumPy's RandomState runs it.
type MT19937 struct {
	key [n]uint32
	pos int
}

// New seeds a generator as numpy.random.seed(seed) does for an integer seed.
func New(seed uint32) *MT19937 {
	g := &MT19937{}
	s := seed
	for i := 0; i < n; i++ {
		g.key[i] = s
		s = 1812433253*(s^(s>>30)) + uint32(i) + 1
	}
	g.pos = n
	return g
}

func (g *MT19937) generate() {
	var y uint32
	i := 0
	for ; i < n-m; i++ {
		y = (g.key[i] & upperMask) | (g.key[i+1] & lowerMask)
		g.key[i] = g.key[i+m] ^ (y >> 1) ^ (-(y & 1) & matrixA)
	}
	for ; i < n-1; i++ {
		y = (g.key[i] & upperMask) | (g.key[i+1] & lowerMask)
		g.key[i] = g.key[i+(m-n)] ^ (y >> 1) ^ (-(y & 1) & matrixA)
	}
	y = (g.key[n-1] & upperMask) | (g.key[0] & lowerMask)
	g.key[n-1] = g.key[m-1] ^ (y >> 1) ^ (-(y & 1) & matrixA)
	g.pos = 0
}

// Uint32 is the next tempered 32-bit output.
func (g *MT19937) Uint32() uint32 {
	if g.pos == n {
		g.generate()
	}
	y := g.key[g.pos]
	g.pos++
	y ^= y >> 11
	y ^= (y << 7) & 0x9d2c5680
	y ^= (y << 15) & 0xefc60000
	y ^= y >> 18
	return y
}

// Intn draws from [0, k) as RandomState.randint(0, k) (and hence
// RandomState.choice(k)) does for k <= 2**32: the smallest all-ones mask
// covering k-1, redrawing while the masked value exceeds k-1. k must be
// at least 1; k == 1 draws nothing, as in NumPy.
func (g *MT19937) Intn(k int) int { return g.Draw(NewBound(k)) }

// Bound is [0, k) with its rejection mask precomputed, for many draws.
type Bound struct{ rng, mask uint32 }

// NewBound prepares draws from [0, k); k must be in [1, 2**32].
func NewBound(k int) Bound {
	rng := uint32(k - 1)
	mask := rng
	mask |= mask >> 1
	mask |= mask >> 2
	mask |= mask >> 4
	mask |= mask >> 8
	mask |= mask >> 16
	return Bound{rng: rng, mask: mask}
}

// Draw is Intn(k) for the k of b.
func (g *MT19937) Draw(b Bound) int {
	switch b.rng {
	case 0:
		return 0
	case 0xffffffff:
		return int(g.Uint32())
	}
	for {
		if v := g.Uint32() & b.mask; v <= b.rng {
			return int(v)
		}
	}
}
