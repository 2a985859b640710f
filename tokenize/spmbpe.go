package tokenize

import (
	"container/heap"
	"unicode/utf8"
)

// spmBPE is SentencePiece's BPE model (bpe_model.cc): the normalized text
// starts as characters, and the adjacent pair whose concatenation is the
// highest-scoring piece is merged first (ties: the leftmost), until no pair
// is a piece. A merge into an UNUSED piece is undone at the end
// (resegmented into the pieces it was merged from). Characters that are no
// piece are unknown; consecutive unknown pieces are fused into one, as
// SentencePieceProcessor::Encode does for every model type.
type spmBPE struct {
	m *spmModel
	// mergeable maps the pieces a merge may produce (NORMAL, USER_DEFINED
	// and UNUSED pieces: SentencePiece's pieces_) to their ids.
	mergeable map[string]int
}

func newSPMBPE(m *spmModel) *spmBPE {
	b := &spmBPE{m: m, mergeable: make(map[string]int, len(m.pieces))}
	for id, p := range m.pieces {
		switch m.types[id] {
		case spmNormal, spmUserDefined, spmUnused:
			if _, dup := b.mergeable[p]; !dup {
				b.mergeable[p] = id
			}
		}
	}
	return b
}

type bpeSymbol struct {
	start, end int // bytes of the normalized text; start == end: merged away
	prev, next int
}

type bpePair struct {
	left, right int
	score       float32
	size        int
}

// bpeAgenda is a max-heap of candidate merges by score, then leftmost.
type bpeAgenda []bpePair

func (a bpeAgenda) Len() int { return len(a) }
func (a bpeAgenda) Less(i, j int) bool {
	if a[i].score != a[j].score {
		return a[i].score > a[j].score
	}
	return a[i].left < a[j].left
}
func (a bpeAgenda) Swap(i, j int) { a[i], a[j] = a[j], a[i] }
func (a *bpeAgenda) Push(x any)   { *a = append(*a, x.(bpePair)) }
func (a *bpeAgenda) Pop() any {
	old := *a
	x := old[len(old)-1]
	*a = old[:len(old)-1]
	return x
}

// segment returns the pieces of normalized text s.
func (b *spmBPE) segment(s string) []string {
	if s == "" {
		return nil
	}
	var syms []bpeSymbol
	for i := 0; i < len(s); {
		_, n := utf8.DecodeRuneInString(s[i:])
		syms = append(syms, bpeSymbol{start: i, end: i + n, prev: len(syms) - 1, next: len(syms) + 1})
		i += n
	}
	syms[len(syms)-1].next = -1
	agenda := &bpeAgenda{}
	revMerge := map[string][2]string{}
	add := func(l, r int) {
		if l < 0 || r < 0 {
			return
		}
		piece := s[syms[l].start:syms[r].end]
		id, ok := b.mergeable[piece]
		if !ok {
			return
		}
		heap.Push(agenda, bpePair{left: l, right: r, score: float32(b.m.scores[id]), size: len(piece)})
		if b.m.types[id] == spmUnused {
			revMerge[piece] = [2]string{s[syms[l].start:syms[l].end], s[syms[r].start:syms[r].end]}
		}
	}
	for i := 1; i < len(syms); i++ {
		add(i-1, i)
	}
	for agenda.Len() > 0 {
		top := heap.Pop(agenda).(bpePair)
		l, r := &syms[top.left], &syms[top.right]
		if l.start == l.end || r.start == r.end || (l.end-l.start)+(r.end-r.start) != top.size {
			continue // stale: one side was merged into something else
		}
		l.end = r.end
		l.next = r.next
		if r.next >= 0 {
			syms[r.next].prev = top.left
		}
		r.start, r.end = 0, 0
		add(l.prev, top.left)
		add(top.left, l.next)
	}
	var out []string
	var resegment func(w string)
	resegment = func(w string) {
		if id, ok := b.mergeable[w]; ok && b.m.types[id] == spmUnused {
			if p, ok := revMerge[w]; ok {
				resegment(p[0])
				resegment(p[1])
				return
			}
		}
		out = append(out, w)
	}
	for i := 0; i >= 0; i = syms[i].next {
		resegment(s[syms[i].start:syms[i].end])
	}
	// Fuse runs of unknown pieces.
	fused := out[:0]
	prevUnk := false
	for _, p := range out {
		unk := b.unknown(p)
		if unk && prevUnk {
			fused[len(fused)-1] += p
			continue
		}
		fused = append(fused, p)
		prevUnk = unk
	}
	return fused
}

// unknown says SentencePiece's PieceToId gives the unknown id for p.
func (b *spmBPE) unknown(p string) bool {
	if _, ok := b.mergeable[p]; ok {
		return false
	}
	id, ok := b.m.ids[p]
	return !ok || b.m.types[id] == spmUnknown
}
