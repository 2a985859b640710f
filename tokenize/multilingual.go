package tokenize

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"github.com/ortrain/ortrain/internal/fault"
)

// Multilingual tokenizer classes reproduced here (transformers 5.24).
const (
	classM2M100  = "M2M100Tokenizer"
	classMBart   = "MBartTokenizer"
	classMBart50 = "MBart50Tokenizer"
	classNllb    = "NllbTokenizer"
)

// langTemplate lists the special tokens a multilingual tokenizer's template
// puts before and after the text: "lang" (the language code) or "eos".
type langTemplate struct{ before, after []string }

// languageClass is what languages_gen.go records of a tokenizer class.
type languageClass struct {
	defaultSource  string
	source, target langTemplate
	codes          []string
	tokens         []string // the token of each code; nil: the code itself
}

// Languages tells what a multilingual tokenizer (mBART, mBART-50, M2M100,
// NLLB) does with language codes, as its Hugging Face class does.
type Languages struct {
	// Class is the Hugging Face tokenizer class reproduced, e.g. "MBart50Tokenizer".
	Class string
	// Codes are the language codes it knows, in its order.
	Codes []string
	// Source and Target are the codes in use (the class's src_lang and
	// tgt_lang); SourceID and TargetID the ids of their tokens.
	Source, Target     string
	SourceID, TargetID int
	// TargetCodeFirst says labels start with the target language code
	// ("<code> text </s>": mBART-50, M2M100, NLLB); otherwise the code
	// follows the end of sequence token ("text </s> <code>": mBART, NLLB
	// with legacy_behaviour).
	TargetCodeFirst bool
}

// multilingual is a Pair's language state.
type multilingual struct {
	class    string
	spec     languageClass
	codes    []string       // codes whose token the tokenizer has, in class order
	ids      map[string]int // code -> token id
	eos      int
	src, tgt string
}

// isMultilingualClass reports the classes whose templates depend on languages.
func isMultilingualClass(class string) bool {
	switch class {
	case classM2M100, classMBart, classMBart50, classNllb:
		return true
	}
	return false
}

// multilingualClass is the multilingual tokenizer class of a folder, as
// AutoTokenizer picks it: tokenizer_config.json's tokenizer_class, else
// config.json's tokenizer_class, else the class of config.json's
// model_type. "" when the folder's tokenizer is none of these.
func multilingualClass(dir string) (string, error) {
	tc, err := readConfig(filepath.Join(dir, "tokenizer_config.json"))
	if err != nil {
		return "", err
	}
	class := tc.TokenizerClass
	if class == "" {
		mc, err := readConfig(filepath.Join(dir, "config.json"))
		if err != nil {
			return "", err
		}
		class = mc.TokenizerClass
		if class == "" {
			class = tokenizerOfModelType[mc.ModelType]
		}
	}
	class = strings.TrimSuffix(class, "Fast")
	if !isMultilingualClass(class) {
		return "", nil
	}
	return class, nil
}

// loadMultilingual builds the tokenizer of a multilingual class with its
// default languages (tokenizer_config.json's src_lang and tgt_lang, else
// the class's default source language for both sides).
func loadMultilingual(dir, class string) (*Pair, error) {
	cfgPath := filepath.Join(dir, "tokenizer_config.json")
	tc, err := readConfig(cfgPath)
	if err != nil {
		return nil, err
	}
	key := class
	var t *Tokenizer
	var files []string
	switch class {
	case classM2M100:
		lc := "m2m100"
		if tc.LanguageCodes != "" {
			lc = tc.LanguageCodes
		}
		key = classM2M100 + " language_codes=" + lc
		if _, ok := classLanguages[key]; !ok {
			return nil, &FieldError{File: cfgPath, Field: "language_codes", Msg: fmt.Sprintf("%q is not a language code set of M2M100Tokenizer (m2m100, wmt21)", lc)}
		}
		t, files, err = loadM2M100(dir, tc, classLanguages[key])
	default:
		if class == classNllb && tc.LegacyBehaviour {
			key = classNllb + " legacy_behaviour"
		}
		t, files, err = loadFairseq(dir, class, tc, classLanguages[key])
	}
	if err != nil {
		return nil, err
	}
	ml := &multilingual{class: class, spec: classLanguages[key], ids: map[string]int{}, eos: t.tokens.EOS}
	if ml.eos < 0 {
		return nil, fmt.Errorf("%s: the %s tokenizer has no end of sequence token", dir, class)
	}
	for i, code := range ml.spec.codes {
		tok := code
		if ml.spec.tokens != nil {
			tok = ml.spec.tokens[i]
		}
		if id, ok := t.TokenToID(tok); ok {
			ml.codes = append(ml.codes, code)
			ml.ids[code] = id
		}
	}
	if len(ml.codes) == 0 {
		return nil, fmt.Errorf("%s: the tokenizer has none of %s's language codes (%s, ...); it does not look like a %s tokenizer", dir, class, ml.spec.codes[0], class)
	}
	src, tgt := ml.spec.defaultSource, ""
	if tc.SrcLang != nil {
		src = *tc.SrcLang
	}
	if tc.TgtLang != nil {
		tgt = *tc.TgtLang
	}
	if tgt == "" {
		tgt = src // the classes' target mode falls back to the source language
	}
	family := strings.ToLower(strings.TrimSuffix(class, "Tokenizer"))
	fp, err := fingerprint(family, append(files, cfgPath, filepath.Join(dir, "config.json"))...)
	if err != nil {
		return nil, err
	}
	p := &Pair{Source: t, Target: t, Family: family, fingerprint: fp, langs: ml}
	for _, code := range []string{src, tgt} {
		if _, ok := ml.ids[code]; !ok {
			return nil, &FieldError{File: cfgPath, Field: "src_lang/tgt_lang", Msg: ml.unknownCode(code)}
		}
	}
	p.setLanguages(src, tgt)
	return p, nil
}

func (ml *multilingual) unknownCode(code string) string {
	var near []string
	for _, c := range ml.codes {
		if len(code) >= 2 && strings.HasPrefix(strings.ToLower(c), strings.ToLower(code[:2])) {
			near = append(near, c)
		}
	}
	msg := fmt.Sprintf("%q is not a language code of this %s", code, ml.class)
	if len(near) > 0 {
		msg += fmt.Sprintf(" (did you mean %s?)", strings.Join(near, ", "))
	}
	if len(ml.codes) <= 60 {
		return msg + "; its codes: " + strings.Join(ml.codes, " ")
	}
	return msg + fmt.Sprintf("; it knows %d codes, such as %s", len(ml.codes), strings.Join(ml.codes[:8], " "))
}

// Languages describes the tokenizer's language codes; nil when it is not
// multilingual.
func (p *Pair) Languages() *Languages {
	ml := p.langs
	if ml == nil {
		return nil
	}
	return &Languages{Class: ml.class, Codes: slices.Clone(ml.codes), Source: ml.src, Target: ml.tgt,
		SourceID: ml.ids[ml.src], TargetID: ml.ids[ml.tgt],
		TargetCodeFirst: slices.Contains(ml.spec.target.before, "lang")}
}

// WithLanguages returns the tokenizer with source and target language codes
// set, as the HF class's src_lang and tgt_lang: Source encodes inputs with
// the source template, Target labels with the target template (HF's
// text_target). An unknown code is a settings error (fault.Settings)
// that lists the codes the tokenizer knows.
func (p *Pair) WithLanguages(source, target string) (*Pair, error) {
	ml := p.langs
	if ml == nil {
		return nil, fault.Settingsf("the tokenizer (%s) has no language codes; source and target languages only select the texts of translation records", p.Family)
	}
	for _, code := range []string{source, target} {
		if code == "" {
			codes := strings.Join(ml.codes, " ")
			if len(ml.codes) > 8 {
				codes = strings.Join(ml.codes[:8], " ") + " ..."
			}
			return nil, fault.Settingsf("%s is a multilingual tokenizer: it needs both a source and a target language code (for example %s and %s; its %d codes: %s)",
				ml.class, ml.codes[0], ml.codes[min(1, len(ml.codes)-1)], len(ml.codes), codes)
		}
		if _, ok := ml.ids[code]; !ok {
			return nil, fault.Settingsf("%s", ml.unknownCode(code))
		}
	}
	q := *p
	cp := *ml
	q.langs = &cp
	h := sha256.Sum256([]byte(p.fingerprint + "\x00" + source + "\x00" + target))
	q.fingerprint = hex.EncodeToString(h[:])
	q.setLanguages(source, target)
	return &q, nil
}

// setLanguages gives Source and Target the templates of the codes.
func (p *Pair) setLanguages(src, tgt string) {
	ml := p.langs
	ml.src, ml.tgt = src, tgt
	side := func(tp langTemplate, code string) template {
		var items [][]int
		sym := func(s string) []int {
			if s == "lang" {
				return []int{ml.ids[code]}
			}
			return []int{ml.eos}
		}
		for _, s := range tp.before {
			items = append(items, sym(s))
		}
		items = append(items, nil)
		for _, s := range tp.after {
			items = append(items, sym(s))
		}
		return template{items: items}
	}
	s, t := *p.Source, *p.Target
	s.post, t.post = side(ml.spec.source, src), side(ml.spec.target, tgt)
	p.Source, p.Target = &s, &t
}

// specialNames are the special tokens of tokenizer_config.json with the
// classes' defaults, in the order HF adds them.
func specialNames(tc hfConfig, withMask bool) []struct{ name, token string } {
	out := []struct{ name, token string }{
		{"bos", "<s>"}, {"eos", "</s>"}, {"unk", "<unk>"}, {"sep", "</s>"}, {"pad", "<pad>"}, {"cls", "<s>"},
	}
	if withMask {
		out = append(out, struct{ name, token string }{"mask", "<mask>"})
	}
	for i := range out {
		var raw json.RawMessage
		switch out[i].name {
		case "bos":
			raw = tc.BOSToken
		case "eos":
			raw = tc.EOSToken
		case "unk":
			raw = tc.UNKToken
		case "sep":
			raw = tc.SepToken
		case "pad":
			raw = tc.PadToken
		case "cls":
			raw = tc.ClsToken
		case "mask":
			raw = tc.MaskToken
		}
		if n := tokenName(raw); n != "" {
			out[i].token = n
		}
	}
	return out
}

// extraSpecial lists tokenizer_config.json's additional_special_tokens and
// extra_special_tokens (strings or {"content": ...} objects).
func extraSpecial(tc hfConfig) []string {
	var out []string
	for _, raw := range []json.RawMessage{tc.AdditionalSpecialTokens, tc.ExtraSpecialTokens} {
		var list []json.RawMessage
		if json.Unmarshal(raw, &list) != nil {
			continue
		}
		for _, r := range list {
			if n := tokenName(r); n != "" {
				out = append(out, n)
			}
		}
	}
	return out
}

// addSpecial makes each token an added special token (matched in raw text,
// skipped by decode(skip_special_tokens=True)) as HF's add_tokens does: with
// its vocabulary id, or a new id after the vocabulary.
func addSpecial(t *Tokenizer, tokens []addedToken) {
	all := slices.Clone(t.added.tokens)
	have := map[string]bool{}
	for _, a := range all {
		have[a.content] = true
	}
	for _, a := range tokens {
		if have[a.content] || a.content == "" {
			continue
		}
		have[a.content] = true
		if id, ok := t.model.tokenToID(a.content); ok {
			a.id = id
		} else {
			a.id = t.VocabSize()
		}
		a.special = true
		all = append(all, a)
		t.added = newAddedVocab(all)
	}
	t.added = newAddedVocab(all)
	for _, a := range all {
		if a.special {
			t.special[a.content] = true
		}
	}
}

// loadFairseq builds MBartTokenizer, MBart50Tokenizer or NllbTokenizer as
// transformers 5 does: the vocabulary (and BPE merges) from tokenizer.json,
// or for mBART from the SentencePiece model converted as the class's
// converter does (<s> <pad> </s> <unk>, the pieces after the model's first
// three, the language codes, <mask>), under the class's own pipeline — the
// pipeline written in tokenizer.json is not used:
//   - MBartTokenizer: no normalizer; WhitespaceSplit + Metaspace;
//   - MBart50Tokenizer, NllbTokenizer: the SentencePiece charsmap
//     (Precompiled) if any, then runs of spaces to one; Metaspace.
func loadFairseq(dir, class string, tc hfConfig, spec languageClass) (*Tokenizer, []string, error) {
	jsonPath := filepath.Join(dir, "tokenizer.json")
	spmPath := filepath.Join(dir, "sentencepiece.bpe.model")
	names := specialNames(tc, true)
	token := func(name string) string {
		for _, n := range names {
			if n.name == name {
				return n.token
			}
		}
		return ""
	}
	var t *Tokenizer
	var cm *charsmap
	var files []string
	switch {
	case exists(jsonPath):
		var err error
		if t, err = LoadFile(jsonPath); err != nil {
			return nil, nil, err
		}
		files = []string{jsonPath}
		switch m := t.model.(type) {
		case *unigram:
			if class == classNllb {
				return nil, nil, &FieldError{File: jsonPath, Field: "model.type", Msg: "Unigram, but NllbTokenizer is a BPE tokenizer"}
			}
			if len(m.pieces) <= 3 {
				return nil, nil, &FieldError{File: jsonPath, Field: "model.vocab", Msg: "fewer than 4 pieces"}
			}
			m.unkID, m.hasUnk = 3, true // the class's Unigram(vocab, unk_id=3)
		case *bpeModel:
			if class != classNllb {
				return nil, nil, &FieldError{File: jsonPath, Field: "model.type", Msg: fmt.Sprintf("BPE, but %s is a Unigram tokenizer", class)}
			}
			unk, ok := m.vocab[token("unk")]
			if !ok {
				return nil, nil, &FieldError{File: jsonPath, Field: "model.vocab", Msg: fmt.Sprintf("no unk token %q", token("unk"))}
			}
			m.unkID, m.fuseUnk = unk, true
		default:
			return nil, nil, &FieldError{File: jsonPath, Field: "model.type", Msg: fmt.Sprintf("%s needs a Unigram or BPE model", class)}
		}
		cm = charsmapOf(t.norm)
	case exists(spmPath) && class != classNllb:
		sp, err := loadSPM(spmPath)
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %w", class, err)
		}
		files = []string{spmPath}
		pieces := []string{token("bos"), token("pad"), token("eos"), token("unk")}
		scores := []float64{0, 0, 0, 0}
		if len(sp.pieces) > 3 {
			pieces = append(pieces, sp.pieces[3:]...)
			scores = append(scores, sp.scores[3:]...)
		}
		for _, c := range spec.codes {
			pieces, scores = append(pieces, c), append(scores, 0)
		}
		pieces, scores = append(pieces, token("mask")), append(scores, 0)
		u := newUnigram(pieces, scores, 3, true, func(int) bool { return true }, false)
		t = &Tokenizer{source: spmPath, model: u, special: map[string]bool{}}
		cm = sp.charsmap
	case class == classNllb:
		return nil, nil, fmt.Errorf("%s has no tokenizer.json: transformers 5 does not give NllbTokenizer its language codes when it converts sentencepiece.bpe.model alone; save the tokenizer with save_pretrained (which writes tokenizer.json) and point ortrain at that folder", dir)
	default:
		return nil, nil, fmt.Errorf("%s: %s needs tokenizer.json or sentencepiece.bpe.model, and the folder has neither", dir, class)
	}
	t.source = dir
	var norm normalizer
	if class != classMBart {
		spaces := replaceNorm{re: mustHFRegex(" {2,}"), content: " "}
		switch {
		case cm != nil:
			norm = normSequence{precompiledNorm{cm}, spaces}
		case class == classMBart50:
			norm = spaces
		}
	}
	t.norm = norm
	ms := metaspace{repl: "\u2581", prepend: prependAlways, split: true}
	if class == classMBart {
		t.pre = pipeline{whitespaceSplit{}, ms}
	} else {
		t.pre = pipeline{ms}
	}
	t.dec = metaspaceDecoder{repl: '\u2581', prepend: prependAlways}
	t.post = nil

	var add []addedToken
	for _, n := range names {
		add = append(add, addedToken{content: n.token, lstrip: n.name == "mask", normalized: n.name == "mask" && class == classNllb})
	}
	var extra []string
	if class != classNllb || (tc.AdditionalSpecialTokens == nil && tc.ExtraSpecialTokens == nil) {
		extra = spec.codes // the class adds its codes as special tokens
	}
	extra = append(extra, extraSpecial(tc)...)
	for _, e := range extra {
		add = append(add, addedToken{content: e})
	}
	addSpecial(t, add)
	t.tokens = guessSpecial(t)
	if err := applyConfig(dir, t); err != nil {
		return nil, nil, err
	}
	return t, files, nil
}

// charsmapOf finds a Precompiled normalizer's charsmap.
func charsmapOf(n normalizer) *charsmap {
	switch x := n.(type) {
	case precompiledNorm:
		return x.cm
	case normSequence:
		for _, y := range x {
			if cm := charsmapOf(y); cm != nil {
				return cm
			}
		}
	}
	return nil
}

func mustHFRegex(pattern string) *regexp.Regexp {
	re, err := compileHFRegex(pattern)
	if err != nil {
		panic(err) // constant patterns only
	}
	return re
}

// loadM2M100 builds M2M100Tokenizer (transformers 5, slow, SentencePiece):
// sentencepiece.bpe.model segments text, pieces map to ids through
// vocab.json (pieces not in it become <unk>), the language tokens
// ("__en__") follow the vocabulary in the class's order, and decoding
// joins runs of pieces (language tokens included) with SentencePiece,
// copies the special tokens (<s> </s> <unk> <pad>) and strips the ends.
func loadM2M100(dir string, tc hfConfig, spec languageClass) (*Tokenizer, []string, error) {
	vocabPath := filepath.Join(dir, "vocab.json")
	spmPath := filepath.Join(dir, "sentencepiece.bpe.model")
	data, err := readFile(vocabPath)
	if err != nil {
		return nil, nil, fmt.Errorf("M2M100Tokenizer needs vocab.json and sentencepiece.bpe.model: %w", err)
	}
	var vocab map[string]int
	if err := json.Unmarshal(data, &vocab); err != nil {
		return nil, nil, &FieldError{File: vocabPath, Field: "(file)", Msg: fmt.Sprintf("want an object of piece: id: %v", err)}
	}
	rev, err := reverseVocab(vocabPath, vocab)
	if err != nil {
		return nil, nil, err
	}
	sp, err := loadSPM(spmPath)
	if err != nil {
		return nil, nil, fmt.Errorf("M2M100Tokenizer: %w", err)
	}
	names := specialNames(tc, false)
	var unk = -1
	var add []addedToken
	for _, n := range names {
		if n.name == "cls" {
			continue // M2M100Tokenizer has no cls token
		}
		id, ok := vocab[n.token]
		if !ok {
			return nil, nil, &FieldError{File: vocabPath, Field: fmt.Sprintf("%q", n.token), Msg: fmt.Sprintf("the %s token is missing from the vocabulary", n.name)}
		}
		if n.name == "unk" {
			unk = id
		}
		add = append(add, addedToken{content: n.token, id: id, special: true})
	}
	// The language tokens follow the vocabulary. In transformers 5 they are
	// neither added nor special tokens: text never matches them, and
	// decode(skip_special_tokens=True) keeps them.
	n := len(vocab)
	for i, tok := range spec.tokens {
		if _, dup := vocab[tok]; !dup {
			vocab[tok] = n + i
		}
	}
	if rev, err = reverseVocab(vocabPath, vocab); err != nil {
		return nil, nil, err
	}
	special := map[string]bool{}
	for _, a := range add {
		special[a.content] = true
	}
	t := &Tokenizer{
		source:  dir,
		added:   newAddedVocab(add),
		pre:     pipeline{},
		model:   &marianModel{spm: sp, vocab: vocab, rev: rev, unkID: unk},
		dec:     spmJoinDecoder{spm: sp, special: special},
		special: special,
	}
	t.tokens = guessSpecial(t)
	if err := applyConfig(dir, t); err != nil {
		return nil, nil, err
	}
	return t, []string{vocabPath, spmPath}, nil
}

func reverseVocab(path string, vocab map[string]int) ([]string, error) {
	maxID := -1
	for p, id := range vocab {
		if id < 0 {
			return nil, &FieldError{File: path, Field: fmt.Sprintf("%q", p), Msg: "negative id"}
		}
		if id > 10*len(vocab)+1000 {
			return nil, &FieldError{File: path, Field: fmt.Sprintf("%q", p), Msg: fmt.Sprintf("id %d is far beyond the %d entries", id, len(vocab))}
		}
		maxID = max(maxID, id)
	}
	rev := make([]string, maxID+1)
	for p, id := range vocab {
		rev[id] = p
	}
	return rev, nil
}

// spmJoinDecoder is M2M100Tokenizer.convert_tokens_to_string: runs of
// ordinary pieces are decoded with SentencePiece, special tokens are copied
// as they are, and the ends are stripped.
type spmJoinDecoder struct {
	spm     *spmModel
	special map[string]bool
}

func (d spmJoinDecoder) decode(toks []string) []string {
	var b strings.Builder
	start := 0
	for i, t := range toks {
		if d.special[t] {
			b.WriteString(d.spm.decodePieces(toks[start:i]))
			b.WriteString(t)
			start = i + 1
		}
	}
	b.WriteString(d.spm.decodePieces(toks[start:]))
	return []string{pyStrip(b.String())}
}
