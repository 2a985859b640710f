package nprand

import "math/bits"

// PCG64 reproduces numpy.random.default_rng(seed) for a non-negative integer
// seed: SeedSequence's hash of the seed, PCG64 (XSL-RR 128/64), its buffered
// 32-bit outputs and Generator.integers' Lemire bounded draws, which
// Generator.choice(n, size) uses. sacrebleu's bootstrap resampling draws
// from it.
type PCG64 struct {
	hi, lo       uint64 // state
	incHi, incLo uint64
	has32        bool
	u32          uint32
}

const (
	multHi = 0x2360ed051fc65da4
	multLo = 0x4385df649fccf645
)

// seedSequenceState is SeedSequence(seed).generate_state(n) as 32-bit words.
func seedSequenceState(seed uint64, n int) []uint32 {
	const (
		initA, multA = 0x43b0d7e5, 0x931e8875
		initB, multB = 0x8b51f9dd, 0x58f38ded
		mixL, mixR   = 0xca01f9dd, 0x4973f715
	)
	entropy := []uint32{uint32(seed)}
	if seed>>32 != 0 {
		entropy = append(entropy, uint32(seed>>32))
	}
	hc := uint32(initA)
	hashmix := func(v uint32) uint32 {
		v ^= hc
		hc *= multA
		v *= hc
		return v ^ v>>16
	}
	mix := func(x, y uint32) uint32 {
		r := mixL*x - mixR*y
		return r ^ r>>16
	}
	var pool [4]uint32
	for i := range pool {
		var e uint32
		if i < len(entropy) {
			e = entropy[i]
		}
		pool[i] = hashmix(e)
	}
	for src := range pool {
		for dst := range pool {
			if src != dst {
				pool[dst] = mix(pool[dst], hashmix(pool[src]))
			}
		}
	}
	out := make([]uint32, n)
	hb := uint32(initB)
	for i := range out {
		d := pool[i%4]
		d ^= hb
		hb *= multB
		d *= hb
		out[i] = d ^ d>>16
	}
	return out
}

// NewPCG64 seeds a generator as numpy.random.default_rng(seed).
func NewPCG64(seed uint64) *PCG64 {
	w := seedSequenceState(seed, 8)
	v := func(i int) uint64 { return uint64(w[2*i]) | uint64(w[2*i+1])<<32 }
	sHi, sLo, iHi, iLo := v(0), v(1), v(2), v(3)
	g := &PCG64{}
	// inc = (initseq << 1) | 1
	g.incHi = iHi<<1 | iLo>>63
	g.incLo = iLo<<1 | 1
	g.step()
	var c uint64
	g.lo, c = bits.Add64(g.lo, sLo, 0)
	g.hi, _ = bits.Add64(g.hi, sHi, c)
	g.step()
	return g
}

func (g *PCG64) step() {
	hi, lo := bits.Mul64(g.lo, multLo)
	hi += g.hi*multLo + g.lo*multHi
	var c uint64
	g.lo, c = bits.Add64(lo, g.incLo, 0)
	g.hi, _ = bits.Add64(hi, g.incHi, c)
}

// Uint64 is the next 64-bit output (numpy's random_raw).
func (g *PCG64) Uint64() uint64 {
	g.step()
	return bits.RotateLeft64(g.hi^g.lo, -int(g.hi>>58))
}

// Uint32 is numpy's buffered next_uint32: the low then the high half of a
// 64-bit output.
func (g *PCG64) Uint32() uint32 {
	if g.has32 {
		g.has32 = false
		return g.u32
	}
	x := g.Uint64()
	g.has32 = true
	g.u32 = uint32(x >> 32)
	return uint32(x)
}

// Intn draws from [0, k), 1 <= k <= 2**32, as Generator.integers(0, k) does
// (Lemire's multiply-and-reject on 32-bit outputs).
func (g *PCG64) Intn(k int) int {
	rng := uint32(k - 1)
	switch rng {
	case 0:
		return 0
	case 0xffffffff:
		return int(g.Uint32())
	}
	excl := rng + 1
	m := uint64(g.Uint32()) * uint64(excl)
	if left := uint32(m); left < excl {
		threshold := (0xffffffff - rng) % excl
		for left < threshold {
			m = uint64(g.Uint32()) * uint64(excl)
			left = uint32(m)
		}
	}
	return int(m >> 32)
}
