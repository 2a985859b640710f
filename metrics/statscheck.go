package metrics

import (
	"errors"
	"fmt"
	"math"
)

// MaxOrder bounds BLEU's max_ngram_order and chrF's character and word
// orders: statistics hold a count per order for every segment, so an order
// of 10^9 asked for gigabytes before the first line was read; no text
// shares n-grams of a thousand tokens or characters that shorter ones would
// not already score.
const MaxOrder = 1000

// maxCount bounds every count of a statistics file: counts are added, and
// scored as float64, which holds integers exactly below 2^53.
const maxCount = 1 << 53

func checkOrder(what string, n int) error {
	if n > MaxOrder {
		return fmt.Errorf("%s %d is more than the %d ortrain scores", what, n, MaxOrder)
	}
	return nil
}

func countOK(v int64) bool { return v >= 0 && v < maxCount }

// check reports statistics that no text could have produced (they
// would score BLEU in the tens of thousands): counts must be
// non-negative, matches at most the n-grams of their order, those at most
// the hypothesis length, and per-segment rows must add up to the totals.
func (s BLEUStats) check() error {
	if !countOK(s.Segments) || !countOK(s.SysLen) || !countOK(s.RefLen) || !countOK(s.TokenizedPeriods) {
		return errors.New("BLEU statistics hold negative or absurd counts")
	}
	if s.TokenizedPeriods > s.Segments || s.MinRefs < 0 || s.MinRefs > s.MaxRefs || (s.Segments > 0 && s.MinRefs < 1) {
		return fmt.Errorf("BLEU statistics are inconsistent: %d segments, %d tokenized periods, references per segment %d to %d", s.Segments, s.TokenizedPeriods, s.MinRefs, s.MaxRefs)
	}
	for n := range s.Correct {
		c, t := s.Correct[n], s.Total[n]
		if !countOK(c) || !countOK(t) || c > t || t > s.SysLen {
			return fmt.Errorf("BLEU statistics are impossible at order %d: %d matches of %d n-grams in %d hypothesis tokens", n+1, c, t, s.SysLen)
		}
	}
	if s.PerSegment != nil {
		sum := make([]int64, 2+2*len(s.Correct))
		for _, row := range s.PerSegment {
			for i, v := range row {
				if !countOK(v) {
					return errors.New("BLEU per-segment statistics hold negative or absurd counts")
				}
				sum[i] += v
			}
		}
		want := append(append([]int64{s.SysLen, s.RefLen}, s.Correct...), s.Total...)
		for i := range want {
			if sum[i] != want[i] {
				return errors.New("BLEU per-segment statistics do not add up to the totals")
			}
		}
	}
	return nil
}

// check reports chrF statistics no text could have produced: per order,
// matches at most the hypothesis and reference n-grams.
func (s CHRFStats) check() error {
	if !countOK(s.Segments) || s.MinRefs < 0 || s.MinRefs > s.MaxRefs || (s.Segments > 0 && s.MinRefs < 1) {
		return fmt.Errorf("chrF statistics are inconsistent: %d segments, references per segment %d to %d", s.Segments, s.MinRefs, s.MaxRefs)
	}
	if err := checkCounts(s.Counts); err != nil {
		return err
	}
	if s.PerSegment != nil {
		sum := make([]int64, len(s.Counts))
		for _, row := range s.PerSegment {
			if err := checkCounts(row); err != nil {
				return fmt.Errorf("per-segment %w", err)
			}
			for i, v := range row {
				sum[i] += v
			}
		}
		for i := range sum {
			if sum[i] != s.Counts[i] {
				return errors.New("chrF per-segment statistics do not add up to the totals")
			}
		}
	}
	return nil
}

func checkCounts(c []int64) error {
	for i := 0; i+2 < len(c); i += 3 {
		hyp, ref, match := c[i], c[i+1], c[i+2]
		if !countOK(hyp) || !countOK(ref) || !countOK(match) || match > hyp || match > ref {
			return fmt.Errorf("chrF statistics are impossible at order %d: %d matches of %d hypothesis and %d reference n-grams", i/3+1, match, hyp, ref)
		}
	}
	return nil
}

// check reports ROUGE statistics no scoring could have produced: a count
// of pairs, sums of precision, recall and F within [0, count], pair
// scores within [0, 1].
func (s ROUGEStats) check() error {
	if !countOK(s.Count) {
		return fmt.Errorf("ROUGE statistics hold a count of %d pairs", s.Count)
	}
	for i, t := range s.Sums {
		for j := range t {
			if v := t[j].value(); !(v >= 0 && v <= float64(s.Count)*(1+1e-9)) {
				return fmt.Errorf("ROUGE statistics are impossible: a sum of %v over %d pairs (type %d), each score lies in [0, 1]", v, s.Count, i+1)
			}
		}
	}
	for _, p := range s.Pairs {
		for _, v := range p {
			if !(v >= 0 && v <= 1) || math.IsNaN(v) {
				return fmt.Errorf("ROUGE statistics are impossible: a pair score of %v, each lies in [0, 1]", v)
			}
		}
	}
	return nil
}
