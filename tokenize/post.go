package tokenize

// postProcessor adds the model's special tokens to one sequence.
type postProcessor interface {
	process(ids []int) []int
	added() int // how many ids process adds
}

// template is HF's TemplateProcessing (single-sequence template):
// each item is a special token's ids or the sequence itself (nil).
type template struct {
	items [][]int
}

func (t template) process(ids []int) []int {
	out := make([]int, 0, len(ids)+t.added())
	for _, it := range t.items {
		if it == nil {
			out = append(out, ids...)
		} else {
			out = append(out, it...)
		}
	}
	return out
}

func (t template) added() int {
	n := 0
	for _, it := range t.items {
		n += len(it)
	}
	return n
}

// wrapProcessor is RobertaProcessing / BertProcessing: cls A sep.
func wrapProcessor(cls, sep int) template {
	return template{items: [][]int{{cls}, nil, {sep}}}
}

type postSequence []postProcessor

func (q postSequence) process(ids []int) []int {
	for _, p := range q {
		ids = p.process(ids)
	}
	return ids
}

func (q postSequence) added() int {
	n := 0
	for _, p := range q {
		n += p.added()
	}
	return n
}
