package tokenize

import (
	"math"
)

// unigram is a SentencePiece Unigram language model segmenter (Viterbi over
// the pieces), written to reproduce Hugging Face tokenizers' Unigram model
// (float64 scores, every vocabulary entry matchable) or SentencePiece's own
// (float32 scores, only normal pieces matchable) exactly.
type unigram struct {
	pieces   []string
	scores   []float64
	ids      map[string]int
	trie     *byteTrie
	unkID    int
	hasUnk   bool
	unkScore float64
	float32  bool // accumulate in float32 as SentencePiece does
	fuseUnk  bool
}

// newUnigram builds the model. matchable says which ids take part in
// segmentation; minScore is taken over the same ids.
func newUnigram(pieces []string, scores []float64, unkID int, hasUnk bool, matchable func(id int) bool, f32 bool) *unigram {
	u := &unigram{pieces: pieces, scores: scores, ids: make(map[string]int, len(pieces)), trie: newByteTrie(),
		unkID: unkID, hasUnk: hasUnk, float32: f32, fuseUnk: true}
	minScore := math.Inf(1)
	for id, p := range pieces {
		if _, dup := u.ids[p]; !dup {
			u.ids[p] = id
		}
		if matchable(id) {
			u.trie.insert(p, id)
			minScore = math.Min(minScore, scores[id])
		}
	}
	u.trie.freeze()
	if math.IsInf(minScore, 1) {
		minScore = 0
	}
	const unkPenalty = 10.0
	u.unkScore = minScore - unkPenalty
	if f32 {
		u.unkScore = float64(float32(minScore) - float32(unkPenalty))
	}
	return u
}

type latticeNode struct {
	id      int // -1: unknown
	start   int // -1: not reached
	score   float64
	reached bool
}

// segment returns the pieces of s on the best path, consecutive unknown
// characters fused into one piece; unk reports which pieces are unknown.
func (u *unigram) segment(s string) (pieces []string, unk []bool) {
	if s == "" {
		return nil, nil
	}
	n := len(s)
	best := make([]latticeNode, n+1)
	best[0].reached = true
	for start := 0; start < n; start++ {
		if !best[start].reached {
			continue
		}
		base := best[start].score
		charLen := utf8Len(s[start:])
		single := false
		u.trie.prefixes(s[start:], func(length, id int) {
			var cand float64
			if u.float32 {
				cand = float64(float32(u.scores[id]) + float32(base))
			} else {
				cand = u.scores[id] + base
			}
			t := &best[start+length]
			if !t.reached || cand > t.score {
				*t = latticeNode{id: id, start: start, score: cand, reached: true}
			}
			if length == charLen {
				single = true
			}
		})
		if !single {
			var cand float64
			if u.float32 {
				cand = float64(float32(u.unkScore) + float32(base))
			} else {
				cand = u.unkScore + base
			}
			t := &best[start+charLen]
			if !t.reached || cand > t.score {
				*t = latticeNode{id: -1, start: start, score: cand, reached: true}
			}
		}
	}
	// Walk back from the end.
	var rev []string
	var revUnk []bool
	pendingUnkEnd := -1
	for end := n; end > 0; {
		node := best[end]
		isUnk := node.id < 0 || (u.hasUnk && node.id == u.unkID)
		if u.fuseUnk && isUnk {
			if pendingUnkEnd < 0 {
				pendingUnkEnd = end
			}
		} else {
			if pendingUnkEnd >= 0 {
				rev = append(rev, s[end:pendingUnkEnd])
				revUnk = append(revUnk, true)
				pendingUnkEnd = -1
			}
			rev = append(rev, s[node.start:end])
			revUnk = append(revUnk, isUnk)
		}
		end = node.start
	}
	if pendingUnkEnd >= 0 {
		rev = append(rev, s[:pendingUnkEnd])
		revUnk = append(revUnk, true)
	}
	for i, j := 0, len(rev)-1; i < j; i, j = i+1, j-1 {
		rev[i], rev[j] = rev[j], rev[i]
		revUnk[i], revUnk[j] = revUnk[j], revUnk[i]
	}
	return rev, revUnk
}

// tokenize implements model for tokenizer.json Unigram models.
func (u *unigram) tokenize(s string, out []int) ([]int, error) {
	pieces, _ := u.segment(s)
	for _, p := range pieces {
		if id, ok := u.ids[p]; ok {
			out = append(out, id)
		} else if u.hasUnk {
			out = append(out, u.unkID)
		} else {
			return out, errNoUnk(p)
		}
	}
	return out, nil
}

func (u *unigram) idToToken(id int) (string, bool) {
	if id < 0 || id >= len(u.pieces) {
		return "", false
	}
	return u.pieces[id], true
}

func (u *unigram) tokenToID(tok string) (int, bool) {
	id, ok := u.ids[tok]
	return id, ok
}

func (u *unigram) vocabSize() int { return len(u.pieces) }

func utf8Len(s string) int {
	if s == "" {
		return 0
	}
	c := s[0]
	switch {
	case c < 0x80:
		return 1
	case c>>5 == 0x6:
		return min(2, len(s))
	case c>>4 == 0xE:
		return min(3, len(s))
	case c>>3 == 0x1E:
		return min(4, len(s))
	}
	return 1
}

// byteTrie is a byte-wise trie for common-prefix search over pieces. It is
// built with maps, then frozen into flat arrays (children of a node are
// contiguous and sorted) because map lookups dominated encoding time.
type byteTrie struct {
	build []trieNode
	// frozen form
	root       [256]int32 // child of the root by byte; 0: none
	childStart []int32    // per node: first child in labels/targets
	childEnd   []int32
	labels     []byte
	targets    []int32
	ids        []int32 // per node: piece id ending here, -1: none
}

type trieNode struct {
	next map[byte]int32
	id   int32
}

func newByteTrie() *byteTrie {
	return &byteTrie{build: []trieNode{{id: -1}}}
}

func (t *byteTrie) insert(s string, id int) {
	cur := 0
	for i := 0; i < len(s); i++ {
		nx, ok := t.build[cur].next[s[i]]
		if !ok {
			if t.build[cur].next == nil {
				t.build[cur].next = make(map[byte]int32, 2)
			}
			t.build = append(t.build, trieNode{id: -1})
			nx = int32(len(t.build) - 1)
			t.build[cur].next[s[i]] = nx
		}
		cur = int(nx)
	}
	if t.build[cur].id < 0 {
		t.build[cur].id = int32(id)
	}
}

func (t *byteTrie) freeze() {
	n := len(t.build)
	t.childStart = make([]int32, n)
	t.childEnd = make([]int32, n)
	t.ids = make([]int32, n)
	for i, nd := range t.build {
		t.ids[i] = nd.id
		t.childStart[i] = int32(len(t.labels))
		for b := 0; b < 256; b++ {
			if nx, ok := nd.next[byte(b)]; ok {
				t.labels = append(t.labels, byte(b))
				t.targets = append(t.targets, nx)
				if i == 0 {
					t.root[b] = nx
				}
			}
		}
		t.childEnd[i] = int32(len(t.labels))
	}
	t.build = nil
}

// prefixes calls fn for every inserted string that is a prefix of s.
func (t *byteTrie) prefixes(s string, fn func(length, id int)) {
	if len(s) == 0 {
		return
	}
	cur := t.root[s[0]]
	if cur == 0 {
		return
	}
	for i := 0; ; {
		if id := t.ids[cur]; id >= 0 {
			fn(i+1, int(id))
		}
		i++
		if i >= len(s) {
			return
		}
		b, next := s[i], int32(0)
		for k := t.childStart[cur]; k < t.childEnd[cur]; k++ {
			if l := t.labels[k]; l >= b {
				if l == b {
					next = t.targets[k]
				}
				break
			}
		}
		if next == 0 {
			return
		}
		cur = next
	}
}
