package tokenize

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/ortrain/ortrain/internal/arch"
	"github.com/ortrain/ortrain/internal/fault"
)

// Pair is the tokenizer of a seq2seq model as its Hugging Face tokenizer
// class builds it: Source encodes inputs, Target encodes labels (HF's
// text_target=); both decode as the HF tokenizer's decode does. For T5 and
// BART, Source and Target are the same tokenizer.
type Pair struct {
	Source, Target *Tokenizer
	// Family names the tokenizer class reproduced: "t5", "marian",
	// "m2m100", "mbart", "mbart50", "nllb" or "tokenizer.json" (the file's
	// own pipeline).
	Family string

	fingerprint string
	langs       *multilingual // nil: not a multilingual tokenizer
}

// Load loads the tokenizer of a model from a folder (or a tokenizer.json
// path) the way transformers 5 builds the model's tokenizer class:
//   - a folder with source.spm, target.spm and vocab.json is a Marian model
//     (MarianTokenizer: SentencePiece per side, shared vocab.json);
//   - a folder whose tokenizer class (tokenizer_config.json, else
//     config.json) is M2M100Tokenizer, MBartTokenizer, MBart50Tokenizer or
//     NllbTokenizer gets that class (see Languages and WithLanguages);
//   - a T5 tokenizer.json (found by tokenizer_config.json, config.json or
//     its <extra_id_N> sentinels) gets T5Tokenizer's pipeline: the file's
//     Precompiled normalizer, WhitespaceSplit + Metaspace(prepend always),
//     "</s>" appended;
//   - any other tokenizer.json is used as written (BART, ...).
//
// LoadFile reads a tokenizer.json exactly as written instead.
//
// Every error it returns is of kind ortrain.ErrInput (the user's files).
func Load(path string) (*Pair, error) {
	p, err := load(path)
	return p, fault.Mark(fault.Input, err)
}

func load(path string) (*Pair, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("tokenizer: %w", err)
	}
	dir, file := path, filepath.Join(path, "tokenizer.json")
	if err := checkFolder(path, st.IsDir()); err != nil {
		return nil, err
	}
	if !st.IsDir() {
		dir, file = filepath.Dir(path), path
	}
	if class, err := multilingualClass(dir); err != nil {
		return nil, err
	} else if class != "" && (st.IsDir() || filepath.Base(path) == "tokenizer.json") {
		return loadMultilingual(dir, class)
	}
	if st.IsDir() && exists(filepath.Join(dir, "source.spm")) {
		p, err := loadMarian(dir)
		if err != nil {
			return nil, err
		}
		p.fingerprint, err = fingerprint(p.Family, filepath.Join(dir, "source.spm"), filepath.Join(dir, "target.spm"),
			filepath.Join(dir, "vocab.json"), filepath.Join(dir, "tokenizer_config.json"))
		return p, err
	}
	if !exists(file) {
		return nil, fmt.Errorf("tokenizer: %s has neither tokenizer.json nor a Marian source.spm/target.spm/vocab.json; point --tokenizer at a model folder or a tokenizer.json", dir)
	}
	t, err := LoadFile(file)
	if err != nil {
		return nil, err
	}
	family := "tokenizer.json"
	if isT5(dir, t) {
		t5Pipeline(t)
		family = "t5"
	}
	if err := applyConfig(dir, t); err != nil {
		return nil, err
	}
	fp, err := fingerprint(family, file, filepath.Join(dir, "tokenizer_config.json"), filepath.Join(dir, "config.json"))
	if err != nil {
		return nil, err
	}
	return &Pair{Source: t, Target: t, Family: family, fingerprint: fp}, nil
}

func exists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// hfConfig reads the fields we use from tokenizer_config.json and config.json.
type hfConfig struct {
	TokenizerClass string          `json:"tokenizer_class"`
	ModelType      string          `json:"model_type"`
	PadToken       json.RawMessage `json:"pad_token"`
	EOSToken       json.RawMessage `json:"eos_token"`
	BOSToken       json.RawMessage `json:"bos_token"`
	UNKToken       json.RawMessage `json:"unk_token"`
	SepToken       json.RawMessage `json:"sep_token"`
	ClsToken       json.RawMessage `json:"cls_token"`
	MaskToken      json.RawMessage `json:"mask_token"`
	// Multilingual classes.
	SrcLang                 *string         `json:"src_lang"`
	TgtLang                 *string         `json:"tgt_lang"`
	LanguageCodes           string          `json:"language_codes"`
	LegacyBehaviour         bool            `json:"legacy_behaviour"`
	AdditionalSpecialTokens json.RawMessage `json:"additional_special_tokens"`
	ExtraSpecialTokens      json.RawMessage `json:"extra_special_tokens"`
}

func readConfig(path string) (hfConfig, error) {
	var c hfConfig
	data, err := readFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return c, nil
	}
	if err != nil {
		return c, err
	}
	if err := json.Unmarshal(data, &c); err != nil {
		return c, fmt.Errorf("%s: malformed JSON: %v", path, err)
	}
	return c, nil
}

func isT5(dir string, t *Tokenizer) bool {
	tc, _ := readConfig(filepath.Join(dir, "tokenizer_config.json"))
	if tc.TokenizerClass != "" {
		return strings.HasPrefix(tc.TokenizerClass, "T5")
	}
	mc, _ := readConfig(filepath.Join(dir, "config.json"))
	if mc.ModelType != "" {
		// the tokenizer class transformers maps the model type to
		a, _ := arch.Lookup(mc.ModelType)
		return strings.HasPrefix(a.Tokenizer, "T5")
	}
	_, isUni := t.model.(*unigram)
	_, sentinel := t.TokenToID("<extra_id_0>")
	_, eos := t.TokenToID("</s>")
	return isUni && sentinel && eos
}

// t5Pipeline rebuilds the pipeline as transformers 5's T5Tokenizer does,
// keeping only the Precompiled normalizer of the file (so a Replace
// normalizer and the Metaspace settings of the file do not apply).
func t5Pipeline(t *Tokenizer) {
	var pre normalizer
	switch n := t.norm.(type) {
	case precompiledNorm:
		pre = n
	case normSequence:
		for _, x := range n {
			if p, ok := x.(precompiledNorm); ok {
				pre = p
			}
		}
	}
	t.norm = pre
	t.pre = pipeline{whitespaceSplit{}, metaspace{repl: "\u2581", prepend: prependAlways, split: true}}
	t.dec = metaspaceDecoder{repl: '\u2581', prepend: prependAlways}
	if eos, ok := t.TokenToID("</s>"); ok {
		t.post = template{items: [][]int{nil, {eos}}}
	}
}

// applyConfig takes the special tokens named in tokenizer_config.json.
func applyConfig(dir string, t *Tokenizer) error {
	tc, err := readConfig(filepath.Join(dir, "tokenizer_config.json"))
	if err != nil {
		return err
	}
	set := func(raw json.RawMessage, dst *int) {
		name := tokenName(raw)
		if name == "" {
			return
		}
		if id, ok := t.TokenToID(name); ok {
			*dst = id
		}
	}
	set(tc.PadToken, &t.tokens.Pad)
	set(tc.EOSToken, &t.tokens.EOS)
	set(tc.BOSToken, &t.tokens.BOS)
	set(tc.UNKToken, &t.tokens.UNK)
	return nil
}

// tokenName reads a token given as "x" or {"content": "x", ...}.
func tokenName(raw json.RawMessage) string {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	var obj struct {
		Content string `json:"content"`
	}
	if json.Unmarshal(raw, &obj) == nil {
		return obj.Content
	}
	return ""
}

// Fingerprint identifies the tokenizer's behaviour for caches: a SHA-256
// over the family and the bytes of every file it was built from.
func (p *Pair) Fingerprint() string { return p.fingerprint }

func fingerprint(family string, files ...string) (string, error) {
	h := sha256.New()
	h.Write([]byte(family))
	for _, f := range files {
		data, err := readFile(f)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return "", err
		}
		fmt.Fprintf(h, "\x00%s\x00%d\x00", filepath.Base(f), len(data))
		h.Write(data)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
