package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/urfave/cli/v2"

	"github.com/ortrain/ortrain/internal/fault"
	"github.com/ortrain/ortrain/internal/lines"
	"github.com/ortrain/ortrain/tokenize"
)

func newTokenizeCommand() *cli.Command {
	return &cli.Command{
		Name:      "tokenize",
		Usage:     "encode text lines to token ids (or decode ids to text) with a model's tokenizer, to debug data",
		ArgsUsage: "[FILE]  (default: standard input)",
		Description: `Encoding reads one text per line and writes its ids separated by spaces, or with
--json one JSON object per line: {"ids": [...], "tokens": [...]}.
Decoding (--decode) reads one sequence of ids per line, as a JSON array, a JSON
object with "ids" (the --json output), or ids separated by spaces, and writes
the text (with --json: {"text": ...}).
--tokenizer takes a model folder (tokenizer.json, or Marian source.spm/target.spm/vocab.json)
or a tokenizer.json file; ids are those of the model's Hugging Face tokenizer.
Multilingual tokenizers (mBART, mBART-50, M2M100, NLLB) use the languages of
--source-lang and --target-lang (default: their tokenizer_config.json's, else
the class's default source language), as src_lang and tgt_lang.`,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "tokenizer", Usage: "model folder or tokenizer.json (required)"},
			&cli.BoolFlag{Name: "decode", Usage: "decode ids to text"},
			&cli.BoolFlag{Name: "json", Usage: "JSON lines in and out"},
			&cli.BoolFlag{Name: "target", Usage: "use the target-side tokenizer (labels; differs for Marian and multilingual tokenizers)"},
			&cli.StringFlag{Name: "source-lang", Aliases: []string{"source_lang"}, Usage: "source language code of a multilingual tokenizer"},
			&cli.StringFlag{Name: "target-lang", Aliases: []string{"target_lang"}, Usage: "target language code of a multilingual tokenizer"},
			&cli.BoolFlag{Name: "no-special", Usage: "encode without the special tokens the model adds"},
			&cli.IntFlag{Name: "max-length", Usage: "truncate to this many ids, special tokens included (0: no limit)"},
			&cli.BoolFlag{Name: "skip-special", Usage: "drop special tokens when decoding"},
		},
		Action: runTokenize,
	}
}

func runTokenize(c *cli.Context) error {
	if c.NArg() > 1 {
		return fault.Settingsf("tokenize takes at most one input file, got %d arguments", c.NArg())
	}
	if c.String("tokenizer") == "" {
		return fault.Settingsf("tokenize needs --tokenizer: a model folder or a tokenizer.json")
	}
	if c.Int("max-length") < 0 {
		return fault.Settingsf("--max-length %d: must be 0 or positive", c.Int("max-length"))
	}
	pair, err := tokenize.Load(c.String("tokenizer"))
	if err != nil {
		return fault.Mark(fault.Input, err)
	}
	if src, tgt := c.String("source-lang"), c.String("target-lang"); src != "" || tgt != "" {
		if l := pair.Languages(); l != nil {
			if src == "" {
				src = l.Source
			}
			if tgt == "" {
				tgt = l.Target
			}
		}
		if pair, err = pair.WithLanguages(src, tgt); err != nil {
			return err
		}
	}
	tok := pair.Source
	if c.Bool("target") {
		tok = pair.Target
	}
	in, name := c.App.Reader, "<stdin>"
	if c.NArg() == 1 {
		f, err := os.Open(c.Args().First())
		if err != nil {
			return fault.Mark(fault.Input, err)
		}
		defer f.Close()
		in, name = f, c.Args().First()
	}
	w := bufio.NewWriter(c.App.Writer)
	defer w.Flush()
	opt := tokenize.EncodeOptions{NoSpecialTokens: c.Bool("no-special"), MaxLength: c.Int("max-length")}
	// With --max-length a line is read only as far as the kept tokens can
	// come from: a huge line costs what a short one does.
	limit := 0
	if opt.MaxLength > 0 && !c.Bool("decode") {
		limit = tokenize.TextBound(opt.MaxLength) + 1
	}
	lr := lines.NewReader(in, name)
	for line := 1; ; line++ {
		if err := c.Context.Err(); err != nil {
			return err
		}
		raw, longer, ok, err := lr.Next(limit, nil)
		if err != nil {
			return fault.Mark(fault.Input, err)
		}
		if !ok {
			break
		}
		if longer { // the cut may split the last character
			for i := len(raw) - 1; i >= 0 && i >= len(raw)-utf8.UTFMax; i-- {
				if utf8.RuneStart(raw[i]) {
					if !utf8.FullRune(raw[i:]) {
						raw = raw[:i]
					}
					break
				}
			}
		}
		text := string(raw)
		if c.Bool("decode") {
			ids, err := parseIDs(text)
			if err != nil {
				return fault.Inputf("%s:%d: %v", name, line, err)
			}
			out := tok.Decode(ids, c.Bool("skip-special"))
			if c.Bool("json") {
				writeJSON(w, map[string]string{"text": out})
			} else {
				fmt.Fprintln(w, out)
			}
			continue
		}
		if !utf8.ValidString(text) {
			return fault.Inputf("%s:%d: not valid UTF-8; convert the input to UTF-8", name, line)
		}
		ids, err := tok.EncodeWith(text, opt)
		if err != nil {
			return fault.Inputf("%s:%d: %w", name, line, err)
		}
		if c.Bool("json") {
			writeJSON(w, map[string]any{"ids": ids, "tokens": tok.Tokens(ids)})
			continue
		}
		for i, id := range ids {
			if i > 0 {
				w.WriteByte(' ')
			}
			w.WriteString(strconv.Itoa(id))
		}
		w.WriteByte('\n')
	}
	return w.Flush()
}

func writeJSON(w io.Writer, v any) {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	enc.Encode(v)
}

// parseIDs reads "[1, 2]", {"ids": [1, 2]} or "1 2".
func parseIDs(s string) ([]int, error) {
	s = strings.TrimSpace(s)
	var ids []int
	switch {
	case s == "":
		return nil, nil
	case strings.HasPrefix(s, "["):
		if err := json.Unmarshal([]byte(s), &ids); err != nil {
			return nil, fmt.Errorf("not a JSON array of ids: %v", err)
		}
	case strings.HasPrefix(s, "{"):
		var obj struct {
			IDs *[]int `json:"ids"`
		}
		if err := json.Unmarshal([]byte(s), &obj); err != nil {
			return nil, fmt.Errorf("malformed JSON: %v", err)
		}
		if obj.IDs == nil {
			return nil, errors.New(`field "ids": missing`)
		}
		ids = *obj.IDs
	default:
		for _, f := range strings.Fields(s) {
			id, err := strconv.Atoi(f)
			if err != nil {
				return nil, fmt.Errorf("%q is not a token id", f)
			}
			ids = append(ids, id)
		}
	}
	// Ids past the vocabulary decode to nothing, as in HF (models often
	// have more logits than tokens); a negative id is never valid.
	for _, id := range ids {
		if id < 0 {
			return nil, fmt.Errorf("token id %d is negative; ids start at 0", id)
		}
	}
	return ids, nil
}
