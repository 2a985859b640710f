package tokenize

import (
	"fmt"
	"math"
	"strings"

	"google.golang.org/protobuf/encoding/protowire"
)

// SentencePiece piece types (sentencepiece_model.proto, ModelProto.SentencePiece.Type).
const (
	spmNormal      = 1
	spmUnknown     = 2
	spmControl     = 3
	spmUserDefined = 4
	spmUnused      = 5
	spmByte        = 6
)

// SentencePiece model types (TrainerSpec.ModelType).
const (
	spmTypeUnigram = 1
	spmTypeBPE     = 2
)

// spmModel is the part of a SentencePiece ModelProto that encoding and
// decoding need. The Unigram and BPE model types are supported.
type spmModel struct {
	path                   string
	pieces                 []string
	scores                 []float64
	types                  []int
	unkID                  int
	unkSurface             string
	charsmap               *charsmap // nil: identity
	addDummyPrefix         bool
	removeExtraWhitespaces bool
	escapeWhitespaces      bool
	ids                    map[string]int
	modelType              int64
	model                  *unigram // Unigram models
	bpe                    *spmBPE  // BPE models
}

// loadSPM reads a SentencePiece .model / .spm file. The wire format is
// parsed by hand for the few fields used (field numbers from
// sentencepiece_model.proto); unknown fields are skipped.
func loadSPM(path string) (*spmModel, error) {
	data, err := readFile(path)
	if err != nil {
		return nil, err
	}
	m, err := parseSPM(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	m.path = path
	return m, nil
}

func parseSPM(data []byte) (*spmModel, error) {
	m := &spmModel{unkSurface: " \u2047 ", addDummyPrefix: true, removeExtraWhitespaces: true, escapeWhitespaces: true}
	modelType := int64(1)
	var charsmapBlob []byte
	byteFallback, wsSuffix := false, false
	err := walkFields(data, "ModelProto", func(num protowire.Number, typ protowire.Type, v []byte, x uint64) error {
		switch num {
		case 1: // pieces
			return m.addPiece(v)
		case 2: // trainer_spec
			return walkFields(v, "TrainerSpec", func(num protowire.Number, typ protowire.Type, v []byte, x uint64) error {
				switch num {
				case 3:
					modelType = int64(x)
				case 24:
					wsSuffix = x != 0
				case 35:
					byteFallback = x != 0
				case 44:
					m.unkSurface = string(v)
				}
				return nil
			})
		case 3: // normalizer_spec
			return walkFields(v, "NormalizerSpec", func(num protowire.Number, typ protowire.Type, v []byte, x uint64) error {
				switch num {
				case 2:
					charsmapBlob = v
				case 3:
					m.addDummyPrefix = x != 0
				case 4:
					m.removeExtraWhitespaces = x != 0
				case 5:
					m.escapeWhitespaces = x != 0
				}
				return nil
			})
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if modelType != spmTypeUnigram && modelType != spmTypeBPE {
		return nil, fmt.Errorf("trainer_spec.model_type %d: only Unigram (1) and BPE (2) SentencePiece models are supported", modelType)
	}
	m.modelType = modelType
	if byteFallback {
		return nil, fmt.Errorf("trainer_spec.byte_fallback: byte-fallback SentencePiece models are not supported")
	}
	if wsSuffix {
		return nil, fmt.Errorf("trainer_spec.treat_whitespace_as_suffix: not supported")
	}
	if len(m.pieces) == 0 {
		return nil, fmt.Errorf("no pieces: not a SentencePiece model")
	}
	if len(charsmapBlob) > 0 {
		if m.charsmap, err = parseCharsmap(charsmapBlob); err != nil {
			return nil, fmt.Errorf("normalizer_spec.%w", err)
		}
	}
	m.unkID = -1
	m.ids = make(map[string]int, len(m.pieces))
	for id, p := range m.pieces {
		if _, dup := m.ids[p]; !dup {
			m.ids[p] = id
		}
		if m.types[id] == spmUnknown && m.unkID < 0 {
			m.unkID = id
		}
		if m.types[id] == spmUserDefined {
			return nil, fmt.Errorf("piece %d %q is user-defined: user-defined SentencePiece pieces are not supported", id, p)
		}
	}
	if m.unkID < 0 {
		return nil, fmt.Errorf("no piece of type UNKNOWN")
	}
	if modelType == spmTypeBPE {
		m.bpe = newSPMBPE(m)
		return m, nil
	}
	m.model = newUnigram(m.pieces, m.scores, m.unkID, true, func(id int) bool { return m.types[id] == spmNormal }, true)
	return m, nil
}

func (m *spmModel) addPiece(b []byte) error {
	piece, score, typ := "", 0.0, int64(spmNormal)
	err := walkFields(b, "SentencePiece", func(num protowire.Number, t protowire.Type, v []byte, x uint64) error {
		switch num {
		case 1:
			piece = string(v)
		case 2:
			score = float64(math.Float32frombits(uint32(x)))
		case 3:
			typ = int64(x)
		}
		return nil
	})
	if err != nil {
		return err
	}
	m.pieces = append(m.pieces, piece)
	m.scores = append(m.scores, score)
	m.types = append(m.types, int(typ))
	return nil
}

// walkFields calls fn for each field of a protobuf message: v holds the
// bytes of length-delimited fields, x the value of varint and fixed fields.
func walkFields(b []byte, msg string, fn func(num protowire.Number, typ protowire.Type, v []byte, x uint64) error) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return fmt.Errorf("%s: malformed protobuf tag: %v", msg, protowire.ParseError(n))
		}
		b = b[n:]
		var v []byte
		var x uint64
		switch typ {
		case protowire.VarintType:
			x, n = protowire.ConsumeVarint(b)
		case protowire.Fixed32Type:
			var y uint32
			y, n = protowire.ConsumeFixed32(b)
			x = uint64(y)
		case protowire.Fixed64Type:
			x, n = protowire.ConsumeFixed64(b)
		case protowire.BytesType:
			v, n = protowire.ConsumeBytes(b)
		default:
			n = protowire.ConsumeFieldValue(num, typ, b)
		}
		if n < 0 {
			return fmt.Errorf("%s field %d: malformed protobuf: %v", msg, num, protowire.ParseError(n))
		}
		b = b[n:]
		if err := fn(num, typ, v, x); err != nil {
			return err
		}
	}
	return nil
}

// normalize is SentencePiece's Normalizer::Normalize for the default
// (whitespace as prefix) mode: rules from the charsmap, heading, trailing
// and repeated spaces removed, a dummy "▁" prefix, spaces escaped as "▁".
func (m *spmModel) normalize(s string) string {
	if s == "" {
		return ""
	}
	if m.removeExtraWhitespaces {
		for s != "" {
			rep, n := m.charsmap.normalizePrefix(s)
			if rep != " " {
				break
			}
			s = s[n:]
		}
	}
	var b strings.Builder
	b.Grow(len(s) + 8)
	space := " "
	if m.escapeWhitespaces {
		space = "\u2581"
	}
	if m.addDummyPrefix {
		b.WriteString(space)
	}
	prevSpace := m.removeExtraWhitespaces
	for s != "" {
		rep, n := m.charsmap.normalizePrefix(s)
		s = s[n:]
		if m.removeExtraWhitespaces && prevSpace {
			rep = strings.TrimLeft(rep, " ")
		}
		if rep == "" {
			continue
		}
		if m.escapeWhitespaces {
			b.WriteString(strings.ReplaceAll(rep, " ", space))
		} else {
			b.WriteString(rep)
		}
		prevSpace = strings.HasSuffix(rep, " ")
	}
	out := b.String()
	if m.removeExtraWhitespaces {
		for strings.HasSuffix(out, space) {
			out = out[:len(out)-len(space)]
		}
	}
	return out
}

// encodePieces is SentencePieceProcessor::Encode(text, out_type=str).
func (m *spmModel) encodePieces(s string) []string {
	if m.bpe != nil {
		return m.bpe.segment(m.normalize(s))
	}
	pieces, _ := m.model.segment(m.normalize(s))
	return pieces
}

// decodePieces is SentencePieceProcessor::DecodePieces: pieces are looked
// up in this model; unknown pieces are copied verbatim, the <unk> piece
// itself becomes the unk surface, control pieces vanish, "▁" becomes a space
// and the leading one of each piece is dropped until a piece shows text.
func (m *spmModel) decodePieces(pieces []string) string {
	var b strings.Builder
	bos := true
	for _, p := range pieces {
		id, ok := m.ids[p]
		if !ok {
			id = m.unkID
		}
		switch m.types[id] {
		case spmControl:
			continue
		case spmUnknown:
			if p == m.pieces[id] {
				b.WriteString(m.unkSurface)
			} else {
				b.WriteString(p)
			}
			bos = false
			continue
		}
		if bos {
			p = strings.TrimPrefix(p, "\u2581")
		}
		surface := strings.ReplaceAll(p, "\u2581", " ")
		if surface != "" {
			bos = false // SentencePiece drops the leading "▁" of every piece until one shows text
		}
		b.WriteString(surface)
	}
	return b.String()
}
