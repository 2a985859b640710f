package metrics

import "math"

// exactSum keeps a floating-point sum exactly, as non-overlapping partials
// (Shewchuk's algorithm, as in Python's math.fsum). Its value is the
// correctly rounded exact sum, whatever the order of the terms, so the
// statistics of shards merge into exactly the single-pass result.
type exactSum struct {
	Partials []float64 `json:"partials"`
}

func (s *exactSum) add(x float64) {
	p := s.Partials
	i := 0
	for _, y := range p {
		if math.Abs(x) < math.Abs(y) {
			x, y = y, x
		}
		hi := x + y
		lo := y - (hi - x)
		if lo != 0 {
			p[i] = lo
			i++
		}
		x = hi
	}
	p = p[:i]
	if x != 0 {
		p = append(p, x)
	}
	s.Partials = p
}

func (s *exactSum) merge(t exactSum) {
	for _, x := range t.Partials {
		s.add(x)
	}
}

// value rounds the exact sum to the nearest float64, halves to even
// (CPython's math_fsum final step).
func (s *exactSum) value() float64 {
	p := s.Partials
	n := len(p)
	if n == 0 {
		return 0
	}
	n--
	hi := p[n]
	lo := 0.0
	for n > 0 {
		x := hi
		n--
		y := p[n]
		hi = x + y
		yr := hi - x
		lo = y - yr
		if lo != 0 {
			break
		}
	}
	if n > 0 && ((lo < 0 && p[n-1] < 0) || (lo > 0 && p[n-1] > 0)) {
		y := lo * 2
		x := hi + y
		if yr := x - hi; y == yr {
			hi = x
		}
	}
	return hi
}

func (s exactSum) clone() exactSum {
	return exactSum{Partials: append([]float64(nil), s.Partials...)}
}
