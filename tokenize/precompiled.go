package tokenize

import (
	"encoding/binary"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/rivo/uniseg"
)

// charsmap is SentencePiece's precompiled normalization table: a darts-clone
// double-array trie over UTF-8 bytes whose values are offsets of
// NUL-terminated replacement strings. Blob layout: uint32 LE trie size in
// bytes, the trie units (uint32 LE), then the replacement strings.
type charsmap struct {
	units      []uint32
	normalized []byte
}

func parseCharsmap(blob []byte) (*charsmap, error) {
	if len(blob) < 4 {
		return nil, fmt.Errorf("precompiled_charsmap: %d bytes, want at least 4", len(blob))
	}
	size := binary.LittleEndian.Uint32(blob)
	if size%4 != 0 || uint64(size) > uint64(len(blob)-4) {
		return nil, fmt.Errorf("precompiled_charsmap: trie size %d does not fit the %d-byte blob", size, len(blob))
	}
	units := make([]uint32, size/4)
	for i := range units {
		units[i] = binary.LittleEndian.Uint32(blob[4+4*i:])
	}
	if len(units) == 0 {
		return nil, fmt.Errorf("precompiled_charsmap: empty trie")
	}
	return &charsmap{units: units, normalized: blob[4+size:]}, nil
}

func dartsOffset(u uint32) uint32 { return (u >> 10) << ((u & (1 << 9)) >> 6) }
func dartsLabel(u uint32) uint32  { return u & ((1 << 31) | 0xFF) }
func dartsHasLeaf(u uint32) bool  { return (u>>8)&1 == 1 }
func dartsValue(u uint32) uint32  { return u & ((1 << 31) - 1) }

// prefixes calls fn(length, value) for every key of the trie that is a
// prefix of s, shortest first; fn returns false to stop.
func (c *charsmap) prefixes(s string, fn func(length int, value uint32) bool) {
	pos := dartsOffset(c.units[0])
	for i := 0; i < len(s); i++ {
		b := s[i]
		if b == 0 {
			return
		}
		pos ^= uint32(b)
		if int(pos) >= len(c.units) {
			return
		}
		u := c.units[pos]
		if dartsLabel(u) != uint32(b) {
			return
		}
		pos ^= dartsOffset(u)
		if dartsHasLeaf(u) {
			if int(pos) >= len(c.units) {
				return
			}
			if !fn(i+1, dartsValue(c.units[pos])) {
				return
			}
		}
	}
}

func (c *charsmap) replacement(value uint32) string {
	if int(value) >= len(c.normalized) {
		return ""
	}
	rest := c.normalized[value:]
	if end := indexByte(rest, 0); end >= 0 {
		rest = rest[:end]
	}
	return string(rest)
}

func indexByte(b []byte, c byte) int {
	for i, x := range b {
		if x == c {
			return i
		}
	}
	return -1
}

// normalizeHF applies the table as Hugging Face tokenizers' Precompiled
// normalizer does: per extended grapheme cluster, the first (shortest) rule
// that is a prefix of a cluster shorter than 6 bytes replaces the whole
// cluster; otherwise each character is looked up the same way. This differs
// from SentencePiece (longest match over the byte stream) on purpose: ids
// must match what HF produces from tokenizer.json.
func (c *charsmap) normalizeHF(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	g := uniseg.NewGraphemes(s)
	for g.Next() {
		cluster := g.Str()
		if len(cluster) < 6 {
			if r, ok := c.firstRule(cluster); ok {
				b.WriteString(r)
				continue
			}
		}
		for i := 0; i < len(cluster); {
			_, n := utf8.DecodeRuneInString(cluster[i:])
			part := cluster[i : i+n]
			i += n
			if rep, ok := c.firstRule(part); ok {
				b.WriteString(rep)
			} else {
				b.WriteString(part)
			}
		}
	}
	return b.String()
}

func (c *charsmap) firstRule(s string) (string, bool) {
	var rep string
	found := false
	c.prefixes(s, func(_ int, v uint32) bool {
		rep, found = c.replacement(v), true
		return false
	})
	return rep, found
}

// normalizePrefix is SentencePiece's Normalizer::NormalizePrefix: the
// longest rule matching a prefix of s, else the first character unchanged
// (an invalid UTF-8 byte becomes U+FFFD and consumes one byte). It returns
// the replacement and the number of input bytes consumed.
func (c *charsmap) normalizePrefix(s string) (string, int) {
	longest, value := 0, uint32(0)
	if c != nil {
		c.prefixes(s, func(n int, v uint32) bool {
			if n > longest {
				longest, value = n, v
			}
			return true
		})
	}
	if longest > 0 {
		return c.replacement(value), longest
	}
	r, n := utf8.DecodeRuneInString(s)
	if r == utf8.RuneError && n <= 1 {
		return "\uFFFD", 1
	}
	return s[:n], n
}
