package metrics

import (
	"errors"
	"fmt"
	"math"
	"math/big"
	"sort"

	"github.com/ortrain/ortrain/metrics/internal/nprand"
)

// DefaultSacreBLEUSeed is sacrebleu's bootstrap seed when SACREBLEU_SEED is unset.
const DefaultSacreBLEUSeed = 12345

// BootstrapCI is sacrebleu's bootstrap estimate (Score.estimate_ci): the
// mean of the resampled scores and half the width of their 95% interval.
type BootstrapCI struct {
	Mean      float64 `json:"confidence_mean"`
	CI        float64 `json:"confidence_var"`
	Samples   int     `json:"-"`
	Seed      uint64  `json:"-"`
	Signature string  `json:"-"`
}

// sacreResample is sacrebleu.significance._bootstrap_resample: the resample
// indices of numpy.random.default_rng(seed).choice(N, size=(samples, N)),
// and per resample the float32 sum of the segment statistics, scored by fn.
func sacreResample(segs [][]int64, samples int, seed uint64, fn func([]float32) pyNum) ([]pyNum, error) {
	if samples <= 1 {
		return nil, errors.New("bootstrap needs at least 2 samples")
	}
	n := len(segs)
	if n == 0 {
		return nil, errors.New("bootstrap needs the per-segment statistics of at least one segment")
	}
	rng := nprand.NewPCG64(seed)
	k := len(segs[0])
	sum := make([]float32, k)
	scores := make([]pyNum, samples)
	for s := range scores {
		clear(sum)
		for j := 0; j < n; j++ {
			seg := segs[rng.Intn(n)]
			for c, v := range seg {
				sum[c] += float32(v)
			}
		}
		scores[s] = fn(sum)
	}
	return scores, nil
}

// estimateCI is Score.estimate_ci: sorted scores, the n//40-th from each end,
// and statistics.mean (exact, then rounded to the scores' type).
func estimateCI(scores []pyNum) (mean, ci float64) {
	sort.Slice(scores, func(i, j int) bool { return scores[i].v < scores[j].v })
	n := len(scores)
	lo := n / 40
	hi := n - lo - 1
	ci = pyFloat(0.5).mul(scores[hi].binop(scores[lo], '-')).v
	total := new(big.Rat)
	allF32 := true
	for _, s := range scores {
		total.Add(total, new(big.Rat).SetFloat64(s.v))
		allF32 = allF32 && s.f32
	}
	mean, _ = total.Quo(total, big.NewRat(int64(n), 1)).Float64()
	if allF32 {
		mean = float64(float32(mean))
	}
	return mean, ci
}

// bootstrapScore is compute_bleu on float32 statistics, with NumPy 2's
// float32/Python-float promotion at every step.
func (o BLEUOptions) bootstrapScore(st []float32) pyNum {
	order := o.MaxNgramOrder
	sysLen, refLen := int64(st[0]), int64(st[1])
	correct := make([]pyNum, order)
	total := make([]pyNum, order)
	anyCorrect := false
	for i := 0; i < order; i++ {
		correct[i] = npFloat32(st[2+i])
		total[i] = npFloat32(st[2+order+i])
		anyCorrect = anyCorrect || st[2+i] != 0
	}
	bp := 1.0
	if sysLen < refLen {
		if sysLen > 0 {
			bp = math.Exp(1 - float64(refLen)/float64(sysLen))
		} else {
			bp = 0
		}
	}
	if !anyCorrect {
		return pyFloat(0)
	}
	prec := make([]pyNum, order)
	sv, _ := o.smoothValue()
	smoothValue := pyFloat(sv)
	smoothMteval := pyFloat(1)
	effOrder := order
	for n := 1; n <= order; n++ {
		if o.SmoothMethod == SmoothAddK && n > 1 {
			correct[n-1] = correct[n-1].add(smoothValue)
			total[n-1] = total[n-1].add(smoothValue)
		}
		if total[n-1].v == 0 {
			break
		}
		if o.EffectiveOrder {
			effOrder = n
		}
		if correct[n-1].v == 0 {
			switch o.SmoothMethod {
			case SmoothExp:
				smoothMteval = smoothMteval.mul(pyFloat(2))
				prec[n-1] = pyFloat(100).div(smoothMteval.mul(total[n-1]))
			case SmoothFloor:
				prec[n-1] = pyFloat(100).mul(smoothValue).div(total[n-1])
			}
		} else {
			prec[n-1] = pyFloat(100).mul(correct[n-1]).div(total[n-1])
		}
	}
	sum := 0.0
	for _, p := range prec[:effOrder] {
		sum += myLog(p.v)
	}
	return pyFloat(bp * math.Exp(sum/float64(effOrder)))
}

// bootstrapScore is CHRF._compute_f_score on float32 statistics.
func (o CHRFOptions) bootstrapScore(st []float32) pyNum {
	eps := pyFloat(1e-16)
	score := pyFloat(0)
	effective := 0
	factor := pyFloat(float64(o.Beta * o.Beta))
	onePlus := pyFloat(float64(1 + o.Beta*o.Beta))
	avgPrec, avgRec := pyFloat(0), pyFloat(0)
	for i := 0; i < o.order(); i++ {
		nHyp, nRef, nMatch := npFloat32(st[3*i]), npFloat32(st[3*i+1]), npFloat32(st[3*i+2])
		prec, rec := eps, eps
		if nHyp.v > 0 {
			prec = nMatch.div(nHyp)
		}
		if nRef.v > 0 {
			rec = nMatch.div(nRef)
		}
		denom := factor.mul(prec).add(rec)
		if denom.v > 0 {
			score = score.add(onePlus.mul(prec).mul(rec).div(denom))
		} else {
			score = score.add(eps)
		}
		if nHyp.v > 0 && nRef.v > 0 {
			avgPrec = avgPrec.add(prec)
			avgRec = avgRec.add(rec)
			effective++
		}
	}
	if o.EpsSmoothing {
		return pyFloat(100).mul(score).div(pyFloat(float64(o.order())))
	}
	if effective == 0 {
		avgPrec, avgRec = pyFloat(0), pyFloat(0)
	} else {
		avgPrec = avgPrec.div(pyFloat(float64(effective)))
		avgRec = avgRec.div(pyFloat(float64(effective)))
	}
	if avgPrec.add(avgRec).v != 0 {
		s := onePlus.mul(avgPrec).mul(avgRec)
		s = s.div(factor.mul(avgPrec).add(avgRec))
		return pyFloat(100).mul(s)
	}
	return pyFloat(0)
}

// Bootstrap is corpus_score(..., n_bootstrap=samples) with SACREBLEU_SEED
// = seed: the confidence estimate and the signature with bs and seed. It
// needs KeepSegmentStats before the segments were added.
func (b *BLEU) Bootstrap(samples int, seed uint64) (BootstrapCI, error) {
	if !b.keepSegs || int64(len(b.stats.PerSegment)) != b.stats.Segments {
		return BootstrapCI{}, errors.New("bootstrap needs every segment's statistics: call KeepSegmentStats before adding")
	}
	scores, err := sacreResample(b.stats.PerSegment, samples, seed, b.opts.bootstrapScore)
	if err != nil {
		return BootstrapCI{}, err
	}
	mean, ci := estimateCI(scores)
	return BootstrapCI{Mean: mean, CI: ci, Samples: samples, Seed: seed,
		Signature: withBootstrap(b.opts.signature(b.stats.NRefs()), samples, seed)}, nil
}

// Bootstrap is corpus_score(..., n_bootstrap=samples) for chrF.
func (c *CHRF) Bootstrap(samples int, seed uint64) (BootstrapCI, error) {
	if !c.keepSegs || int64(len(c.stats.PerSegment)) != c.stats.Segments {
		return BootstrapCI{}, errors.New("bootstrap needs every segment's statistics: call KeepSegmentStats before adding")
	}
	scores, err := sacreResample(c.stats.PerSegment, samples, seed, c.opts.bootstrapScore)
	if err != nil {
		return BootstrapCI{}, err
	}
	mean, ci := estimateCI(scores)
	return BootstrapCI{Mean: mean, CI: ci, Samples: samples, Seed: seed,
		Signature: withBootstrap(c.opts.signature(nrefsField(c.stats.MinRefs, c.stats.MaxRefs)), samples, seed)}, nil
}

// withBootstrap inserts sacrebleu's bs and seed fields after nrefs.
func withBootstrap(sig string, samples int, seed uint64) string {
	for i := 0; i < len(sig); i++ {
		if sig[i] == '|' {
			return sig[:i] + fmt.Sprintf("|bs:%d|seed:%d", samples, seed) + sig[i:]
		}
	}
	return sig
}
