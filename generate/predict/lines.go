package predict

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/ortrain/ortrain/internal/fault"
)

// ParseShard parses the "i/N" form of a shard (0 <= i < N); "" is the whole
// input, shard 0 of 1.
func ParseShard(s string) (shard, shards int, err error) {
	if s == "" {
		return 0, 1, nil
	}
	a, b, ok := strings.Cut(s, "/")
	i, err1 := strconv.Atoi(a)
	n, err2 := strconv.Atoi(b)
	if !ok || err1 != nil || err2 != nil || n < 1 || i < 0 || i >= n {
		return 0, 0, fault.Settingsf("--shard %q: want i/N with 0 <= i < N (e.g. 0/4 ... 3/4)", s)
	}
	return i, n, nil
}

// ShardRange is shard i's slice [lo, hi) of n lines: contiguous, in order,
// sizes differing by at most one, so the shards' outputs concatenate to the
// whole run's.
func ShardRange(n, i, shards int) (lo, hi int) { return i * n / shards, (i + 1) * n / shards }

func readFileLines(path string) ([]string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fault.Mark(fault.Input, err)
	}
	if !utf8.Valid(data) {
		return nil, fault.Inputf("%s is not valid UTF-8", path)
	}
	text := strings.TrimSuffix(string(data), "\n")
	if text == "" {
		return nil, nil
	}
	lines := strings.Split(text, "\n")
	for i, l := range lines {
		lines[i] = strings.TrimSuffix(l, "\r")
	}
	return lines, nil
}

func readSourceLines(path string) ([]string, error) {
	lines, err := readFileLines(path)
	if err != nil {
		return nil, err
	}
	if len(lines) == 0 {
		return nil, fault.Inputf("%s has no lines to predict", path)
	}
	for i, l := range lines {
		if strings.TrimSpace(l) == "" {
			return nil, fault.Inputf("%s:%d: empty line; every line must hold one source text (remove empty lines, keeping the references aligned)", path, i+1)
		}
	}
	return lines, nil
}

func readRefLines(path string, want int) ([]string, error) {
	lines, err := readFileLines(path)
	if err != nil {
		return nil, err
	}
	if len(lines) != want {
		return nil, fault.Inputf("%s has %d lines, the input has %d: references must be aligned line by line", path, len(lines), want)
	}
	return lines, nil
}

// writeLines writes one prediction per line; a newline inside a prediction
// would break the line alignment with the input, so it becomes a space.
func writeLines(path string, lines []string) error {
	var b bytes.Buffer
	for _, l := range lines {
		b.WriteString(strings.ReplaceAll(l, "\n", " "))
		b.WriteByte('\n')
	}
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		return fmt.Errorf("writing predictions: %w", err)
	}
	return nil
}
