package demo

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"sort"
	"strings"
)

// Pair is one source/target example.
type Pair struct{ Source, Target string }

// Task is a synthetic translation task: English-like SVO sentences into an
// invented SOV language whose adjectives follow their nouns and whose
// subject and object carry the particles "ta" and "ko". Learning it needs
// word translation, reordering and agreement, so BLEU starts near zero and
// rises as the model learns.
type Task struct {
	Vocab       []string // token strings by id; 0 <pad>, 1 </s>, 2 <unk>
	Train       []Pair
	Dev         []Pair
	Test        []Pair
	Dictionary  map[string]string
	nouns, adjs []string
	verbs       []string
}

var (
	taskNouns = []string{"cat", "dog", "bird", "fish", "horse", "child", "teacher", "farmer", "king", "queen", "girl", "boy",
		"apple", "bread", "book", "letter", "house", "river", "tree", "stone", "song", "ship", "door", "window"}
	taskAdjs  = []string{"red", "big", "small", "old", "young", "happy", "quiet", "green", "dark", "bright", "cold", "warm"}
	taskVerbs = []string{"sees", "eats", "finds", "likes", "reads", "carries", "paints", "hears"}
)

// NewTask makes the task's vocabulary and data sets, deterministically from
// the seed.
func NewTask(seed uint64, train, dev, test int) *Task {
	r := rand.New(rand.NewPCG(seed, 0x7461736b)) // "task"
	t := &Task{Dictionary: map[string]string{}, nouns: taskNouns, adjs: taskAdjs, verbs: taskVerbs}
	used := map[string]bool{"ta": true, "ko": true}
	syll := []string{"ka", "lo", "mi", "nu", "pe", "ra", "si", "to", "vu", "ze", "ba", "do", "fi", "gu", "he", "jo"}
	word := func() string {
		for {
			n := 2 + r.IntN(2)
			var b strings.Builder
			for i := 0; i < n; i++ {
				b.WriteString(syll[r.IntN(len(syll))])
			}
			if w := b.String(); !used[w] {
				used[w] = true
				return w
			}
		}
	}
	for _, list := range [][]string{taskNouns, taskAdjs, taskVerbs} {
		for _, w := range list {
			t.Dictionary[w] = word()
		}
	}
	t.Vocab = []string{"<pad>", "</s>", "<unk>", "the", "ta", "ko"}
	var words []string
	for src, tgt := range t.Dictionary {
		words = append(words, src, tgt)
	}
	sort.Strings(words)
	t.Vocab = append(t.Vocab, words...)

	seen := map[string]bool{}
	gen := func(n int) []Pair {
		var out []Pair
		for len(out) < n {
			p := t.sentence(r)
			if seen[p.Source] {
				continue
			}
			seen[p.Source] = true
			out = append(out, p)
		}
		return out
	}
	// Held-out sets first, so that every dev/test sentence is unseen in training.
	t.Dev = gen(dev)
	t.Test = gen(test)
	t.Train = gen(train)
	return t
}

func (t *Task) sentence(r *rand.Rand) Pair {
	phrase := func() ([]string, []string) {
		noun := t.nouns[r.IntN(len(t.nouns))]
		src, tgt := []string{"the"}, []string{t.Dictionary[noun]}
		if r.IntN(2) == 0 {
			adj := t.adjs[r.IntN(len(t.adjs))]
			src = append(src, adj)
			tgt = append(tgt, t.Dictionary[adj])
		}
		return append(src, noun), tgt
	}
	verb := t.verbs[r.IntN(len(t.verbs))]
	ss, st := phrase()
	os, ot := phrase()
	src := append(append(ss, verb), os...)
	tgt := append(append(append(append(st, "ta"), ot...), "ko"), t.Dictionary[verb])
	return Pair{Source: strings.Join(src, " "), Target: strings.Join(tgt, " ")}
}

// TokenizerJSON is a Hugging Face tokenizer.json for the task: word level,
// split on whitespace, "</s>" appended as T5 does.
func (t *Task) TokenizerJSON() ([]byte, error) {
	vocab := map[string]int{}
	for i, w := range t.Vocab {
		vocab[w] = i
	}
	special := func(id int, s string) map[string]any {
		return map[string]any{"id": id, "content": s, "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true}
	}
	seq := func(id string) map[string]any {
		return map[string]any{"Sequence": map[string]any{"id": id, "type_id": 0}}
	}
	eos := map[string]any{"SpecialToken": map[string]any{"id": "</s>", "type_id": 0}}
	doc := map[string]any{
		"version":       "1.0",
		"truncation":    nil,
		"padding":       nil,
		"added_tokens":  []any{special(0, "<pad>"), special(1, "</s>"), special(2, "<unk>")},
		"normalizer":    nil,
		"pre_tokenizer": map[string]any{"type": "WhitespaceSplit"},
		"post_processor": map[string]any{
			"type":           "TemplateProcessing",
			"single":         []any{seq("A"), eos},
			"pair":           []any{seq("A"), eos, seq("B"), eos},
			"special_tokens": map[string]any{"</s>": map[string]any{"id": "</s>", "ids": []int{1}, "tokens": []string{"</s>"}}},
		},
		"decoder": nil,
		"model":   map[string]any{"type": "WordLevel", "vocab": vocab, "unk_token": "<unk>"},
	}
	return json.MarshalIndent(doc, "", "  ")
}

// JSONL renders pairs in Hugging Face datasets' translation layout.
func JSONL(pairs []Pair, srcLang, tgtLang string) ([]byte, error) {
	var b strings.Builder
	for _, p := range pairs {
		line, err := json.Marshal(map[string]any{"translation": map[string]string{srcLang: p.Source, tgtLang: p.Target}})
		if err != nil {
			return nil, fmt.Errorf("encoding a demo example: %w", err)
		}
		b.Write(line)
		b.WriteByte('\n')
	}
	return []byte(b.String()), nil
}
