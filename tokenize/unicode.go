package tokenize

import (
	"strings"

	"golang.org/x/text/unicode/norm"
)

func normNFC(s string) string   { return norm.NFC.String(s) }
func normNFD(s string) string   { return norm.NFD.String(s) }
func normNFKC(s string) string  { return norm.NFKC.String(s) }
func normNFKD(s string) string  { return norm.NFKD.String(s) }
func lowercase(s string) string { return strings.ToLower(s) }
