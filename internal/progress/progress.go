// Package progress draws a progress bar on the last line of a terminal,
// redrawn in place, and tells whether a writer is a terminal at all (a bar
// in a log file or a pipe is noise).
package progress

import (
	"fmt"
	"io"
	"os"
	"strings"
	"time"
)

// IsTerminal reports whether w is a character device (a terminal).
func IsTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// width is the bar's length in characters.
const width = 30

// Bar is a progress bar of Total items. Start it, Draw it as items get done,
// Clear it before printing other lines, Finish it at the end.
//
// With Unit empty it is drawn like tqdm:
//
//	40%|████████████                  | 4/10 [3s 1.33 it/s, eta 5s]
//
// with a Unit, as a count of those units with their rate:
//
//	[############..................] 4/10 sentences, 1.3/s
type Bar struct {
	Out   io.Writer
	Total int
	Unit  string
	// Every is the least time between two draws; the one that reaches Total
	// is always drawn.
	Every time.Duration
	// Clock replaces time.Now (tests).
	Clock func() time.Time

	start, last time.Time
	shown       bool
}

func (b *Bar) now() time.Time {
	if b.Clock != nil {
		return b.Clock()
	}
	return time.Now()
}

// Start starts the clock that elapsed time and rates are measured from.
func (b *Bar) Start() { b.start = b.now() }

// Draw redraws the bar with done of Total items done (at most Total are
// shown). Nothing is drawn while Total is not positive, nor sooner than
// Every after the last draw.
func (b *Bar) Draw(done int) {
	if b.Total <= 0 {
		return
	}
	done = min(done, b.Total)
	now := b.now()
	if b.Every > 0 && done < b.Total && now.Sub(b.last) < b.Every {
		return
	}
	b.last = now
	fill := width * done / b.Total
	el := now.Sub(b.start).Seconds()
	if b.Unit != "" {
		rate := float64(done) / max(el, 1e-9)
		fmt.Fprintf(b.Out, "\r[%s%s] %d/%d %s, %.1f/s", strings.Repeat("#", fill), strings.Repeat(".", width-fill), done, b.Total, b.Unit, rate)
	} else {
		rate := ""
		if el > 0 && done > 0 {
			eta := time.Duration(float64(b.Total-done) / (float64(done) / el) * float64(time.Second)).Round(time.Second)
			rate = fmt.Sprintf(" %.2f it/s, eta %s", float64(done)/el, eta)
		}
		fmt.Fprintf(b.Out, "\r%3d%%|%s%s| %d/%d [%s%s]", 100*done/b.Total, strings.Repeat("█", fill), strings.Repeat(" ", width-fill), done, b.Total, time.Duration(el*float64(time.Second)).Round(time.Second), rate)
	}
	b.shown = true
}

// Clear erases the bar, if drawn, so that a line can be printed in its
// place; the next Draw shows it again below.
func (b *Bar) Clear() {
	if b.shown {
		fmt.Fprint(b.Out, "\r\033[K")
		b.shown = false
	}
}

// Finish ends the bar's line, if drawn, leaving the bar on screen.
func (b *Bar) Finish() {
	if b.shown {
		fmt.Fprintln(b.Out)
		b.shown = false
	}
}
