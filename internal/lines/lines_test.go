package lines

import (
	"strings"
	"testing"
)

// Lines are read up to a limit: the rest of a longer line is passed over
// without being kept, and line endings are dropped.
func TestReaderLimit(t *testing.T) {
	long := strings.Repeat("x", 200<<10)
	r := NewReader(strings.NewReader("abc\r\n"+long+"\nabcd\nlast\r"), "in")
	for _, want := range []struct {
		line   string
		longer bool
	}{{"abc", false}, {"xxxx", true}, {"abcd", false}, {"last", false}} {
		line, longer, ok, err := r.Next(4, nil)
		if string(line) != want.line || longer != want.longer || !ok || err != nil {
			t.Errorf("got %q %v %v %v, want %q %v", line, longer, ok, err, want.line, want.longer)
		}
	}
	if cap(r.buf) > 1<<10 {
		t.Errorf("reading a 200 KiB line with limit 4 grew the buffer to %d bytes", cap(r.buf))
	}
	if _, _, ok, _ := r.Next(4, nil); ok {
		t.Error("a line after the end")
	}
	r = NewReader(strings.NewReader("a\n\nb"), "in")
	var got []string
	for {
		line, _, ok, err := r.Next(0, nil)
		if err != nil || !ok {
			break
		}
		got = append(got, string(line))
	}
	if strings.Join(got, "|") != "a||b" || r.N != 3 {
		t.Errorf("lines %q (%d)", got, r.N)
	}
}
