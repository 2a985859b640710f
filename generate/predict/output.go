package predict

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/ortrain/ortrain/internal/fault"
)

// output writes predictions as they come to OUTPUT.partial, flushed after
// every batch, beside OUTPUT.partial.json naming the job (a fingerprint of
// its input, model, tokenizer and settings). A finished job renames the
// partial file to OUTPUT. A job interrupted (a signal, a crash, a full
// disk) leaves the lines it finished in OUTPUT.partial; the same job run
// again continues after them, and any other job starts afresh.
type output struct {
	path, partial, meta string
	f                   *os.File
	w                   *bufio.Writer
	// done is the number of predictions in the partial file.
	done int
}

type outputMeta struct {
	Fingerprint string `json:"fingerprint"`
}

// openOutput opens the job's partial output, resuming it when it belongs
// to the same job (fingerprint); opening fails at once when the output
// cannot be written, before any decoding.
func openOutput(path, fingerprint string) (*output, error) {
	o := &output{path: path, partial: path + ".partial", meta: path + ".partial.json"}
	resume := false
	if b, err := os.ReadFile(o.meta); err == nil {
		var m outputMeta
		resume = json.Unmarshal(b, &m) == nil && m.Fingerprint == fingerprint
	}
	if resume {
		f, err := os.OpenFile(o.partial, os.O_RDWR, 0o644)
		if err == nil {
			n, end, err := completeLines(f)
			if err == nil {
				err = f.Truncate(end) // a line cut short by the interruption is done again
			}
			if err == nil {
				_, err = f.Seek(end, io.SeekStart)
			}
			if err != nil {
				f.Close()
				return nil, fmt.Errorf("resuming %s: %w", o.partial, err)
			}
			o.f, o.done = f, n
		}
	}
	if o.f == nil {
		f, err := os.OpenFile(o.partial, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
		if err != nil {
			return nil, fault.Inputf("cannot write the predictions: %w", err)
		}
		b, _ := json.Marshal(outputMeta{Fingerprint: fingerprint})
		if err := os.WriteFile(o.meta, b, 0o644); err != nil {
			f.Close()
			return nil, fault.Inputf("cannot write the predictions: %w", err)
		}
		o.f = f
	}
	o.w = bufio.NewWriterSize(o.f, 1<<16)
	return o, nil
}

// completeLines counts the lines ended by "\n" and where the last ends.
func completeLines(f *os.File) (n int, end int64, err error) {
	br := bufio.NewReaderSize(f, 1<<16)
	var at int64
	for {
		chunk, err := br.ReadSlice('\n')
		at += int64(len(chunk))
		if err == nil {
			n++
			end = at
			continue
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		if errors.Is(err, io.EOF) {
			return n, end, nil
		}
		return 0, 0, err
	}
}

// write appends predictions and flushes them to the file, so a kill loses
// at most the batch in progress.
func (o *output) write(preds []string) error {
	for _, p := range preds {
		o.w.WriteString(oneLine(p))
		o.w.WriteByte('\n')
	}
	if err := o.w.Flush(); err != nil {
		return fmt.Errorf("writing predictions to %s: %w", o.partial, err)
	}
	o.done += len(preds)
	return nil
}

// finish makes the output whole: synced, renamed to OUTPUT.
func (o *output) finish() error {
	if err := o.w.Flush(); err != nil {
		return fmt.Errorf("writing predictions to %s: %w", o.partial, err)
	}
	if err := o.f.Sync(); err != nil {
		return fmt.Errorf("writing predictions to %s: %w", o.partial, err)
	}
	if err := o.f.Close(); err != nil {
		return err
	}
	o.f = nil
	if err := os.Rename(o.partial, o.path); err != nil {
		return fmt.Errorf("writing predictions: %w", err)
	}
	os.Remove(o.meta)
	return nil
}

// close leaves the partial output for a later resume (flushed).
func (o *output) close() {
	if o.f != nil {
		o.w.Flush()
		o.f.Close()
		o.f = nil
	}
}

// readDone reads back the predictions already in the partial file (for
// scoring a resumed job), calling fn with each.
func (o *output) readDone(fn func(i int, pred string) error) error {
	f, err := os.Open(o.partial)
	if err != nil {
		return err
	}
	defer f.Close()
	br := bufio.NewReaderSize(f, 1<<16)
	for i := 0; i < o.done; i++ {
		line, err := br.ReadBytes('\n')
		if err != nil {
			return fmt.Errorf("reading back %s: %w", o.partial, err)
		}
		if err := fn(i, string(bytes.TrimSuffix(line, []byte("\n")))); err != nil {
			return err
		}
	}
	return nil
}
