package progress

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// clock returns a clock that advances by step at every reading.
func clock(step time.Duration) func() time.Time {
	t := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	return func() time.Time { t = t.Add(step); return t }
}

// Both forms, byte for byte as ortrain train (tqdm's) and ortrain predict
// (a count, its redraws thinned) draw them.
func TestBarForms(t *testing.T) {
	for name, tc := range map[string]struct {
		bar  Bar
		draw func(b *Bar, out *bytes.Buffer)
		want string
	}{
		"steps": {
			Bar{Total: 10, Clock: clock(time.Second)},
			func(b *Bar, out *bytes.Buffer) {
				b.Draw(0)
				b.Draw(4)
				b.Clear()
				out.WriteString("log line\n")
				b.Draw(12) // more than Total shows as Total
			},
			"\r  0%|                              | 0/10 [1s]" +
				"\r 40%|████████████                  | 4/10 [2s 2.00 it/s, eta 3s]" +
				"\r\033[Klog line\n" +
				"\r100%|██████████████████████████████| 10/10 [3s 3.33 it/s, eta 0s]\n",
		},
		"count": {
			Bar{Total: 8, Unit: "sentences", Every: 100 * time.Millisecond, Clock: clock(30 * time.Millisecond)},
			// A reading every 30 ms: 1 is drawn, 5 is the first 100 ms
			// after it, 8 is drawn because it reaches Total.
			func(b *Bar, _ *bytes.Buffer) {
				for done := 1; done <= 8; done++ {
					b.Draw(done)
				}
			},
			"\r[###...........................] 1/8 sentences, 33.3/s" +
				"\r[##################............] 5/8 sentences, 33.3/s" +
				"\r[##############################] 8/8 sentences, 33.3/s\n",
		},
	} {
		var out bytes.Buffer
		b := tc.bar
		b.Out = &out
		b.Start()
		tc.draw(&b, &out)
		b.Finish()
		if out.String() != tc.want {
			t.Errorf("%s: drew\n%q\nwant\n%q", name, out.String(), tc.want)
		}
	}
}

// Nothing is written for an empty total, and Clear and Finish write nothing
// when no bar is shown.
func TestNothingToDraw(t *testing.T) {
	var out bytes.Buffer
	b := &Bar{Out: &out}
	b.Start()
	b.Draw(3)
	b.Clear()
	b.Finish()
	if out.Len() != 0 {
		t.Errorf("wrote %q", out.String())
	}
}

func TestIsTerminal(t *testing.T) {
	f, err := os.Create(filepath.Join(t.TempDir(), "log"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if IsTerminal(f) || IsTerminal(&strings.Builder{}) || IsTerminal(nil) {
		t.Error("a file, a buffer or nil taken for a terminal")
	}
	if tty, err := os.OpenFile("/dev/tty", os.O_WRONLY, 0); err == nil {
		defer tty.Close()
		if !IsTerminal(tty) {
			t.Error("/dev/tty is not a terminal")
		}
	}
}
