package lora

import (
	"hash/fnv"
	"math"
	"math/rand/v2"
)

// InitA draws a module's lora_A weight ([r, in], PyTorch layout) as PEFT's
// reset_lora_parameters does with init_lora_weights=True:
// nn.init.kaiming_uniform_(A, a=sqrt(5)), i.e. uniform on
// [-1/sqrt(in), 1/sqrt(in)) (gain sqrt(2/(1+5)), bound gain*sqrt(3/fan_in)).
// The numbers come from a generator seeded by (seed, module name), so a
// seed gives the same adapter whatever the order of the modules; torch's
// generator cannot be reproduced outside torch, so they are not PEFT's.
func InitA(seed uint64, module string, r int, in int64) []float32 {
	h := fnv.New64a()
	h.Write([]byte(module))
	rng := rand.New(rand.NewPCG(seed, h.Sum64()))
	bound := 1 / math.Sqrt(float64(in))
	out := make([]float32, int64(r)*in)
	for i := range out {
		out[i] = float32((2*rng.Float64() - 1) * bound)
	}
	return out
}

// InitB is lora_B's initial value: zeros ([out, r]), so that the adapted
// model starts as the base model.
func InitB(r int, out int64) []float32 { return make([]float32, int64(r)*out) }

// Merge returns W + scaling * B·A (PyTorch layouts: W [out, in], A [r, in],
// B [out, r]), PEFT's merge of a layer: its delta weight is
// (B @ A) * scaling, added to the base weight. Products accumulate in
// float64 and round once.
func Merge(w, a, b []float32, r int, in, out int64, scaling float64) []float32 {
	merged := make([]float32, len(w))
	for o := int64(0); o < out; o++ {
		for i := int64(0); i < in; i++ {
			var d float64
			for k := 0; k < r; k++ {
				d += float64(b[o*int64(r)+int64(k)]) * float64(a[int64(k)*in+i])
			}
			merged[o*in+i] = float32(float64(w[o*in+i]) + float64(float32(d))*scaling)
		}
	}
	return merged
}
