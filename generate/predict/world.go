package predict

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/ortrain/ortrain/internal/collective"
	"github.com/ortrain/ortrain/internal/fault"
)

// RunWorld runs the job over the processes of comm (an MPI job): rank r
// predicts shard r of N (ShardRange, as --shard r/N) into its own output,
// OUTPUT.rank<r>-of-<N>, which resumes like any output; the predictions are
// then gathered and rank 0 writes OUTPUT in input order, scores it against
// the references and writes the report, as one process would. The ranks'
// files are removed once OUTPUT is written. Every rank must be given the
// same options (checked first, with the input's content); only the device
// index may differ (one GPU per rank). In a world of one it is Run.
//
// Only rank 0's Result carries the report; every rank's Lines is the whole
// input, Resumed the lines resumed by all ranks and Elapsed the slowest
// rank's time.
func RunWorld(ctx context.Context, opts Options, comm collective.Comm, progress func(done, total int)) (*Result, error) {
	if comm.Size() == 1 {
		return Run(ctx, opts, progress)
	}
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	if opts.Shards > 1 {
		return nil, fault.Settingsf("--shard %d/%d under an MPI launcher: the launcher's %d processes already split the input; give one or the other", opts.Shard, opts.Shards, comm.Size())
	}
	if err := checkSameJob(comm, opts); err != nil {
		return nil, err
	}
	rank, size := comm.Rank(), comm.Size()
	sub := opts
	sub.Shard, sub.Shards = rank, size
	sub.Output = fmt.Sprintf("%s.rank%d-of-%d", opts.Output, rank, size)
	sub.Report = ""
	res, err := Run(ctx, sub, progress)
	if err != nil {
		return nil, err
	}
	preds, err := os.ReadFile(sub.Output)
	if err != nil {
		return nil, err
	}
	payload := make([]byte, 16, 16+len(preds))
	binary.LittleEndian.PutUint64(payload, uint64(res.Elapsed))
	binary.LittleEndian.PutUint64(payload[8:], uint64(res.Resumed))
	all, err := comm.AllGather(append(payload, preds...))
	if err != nil {
		return nil, err
	}
	total := &Result{Lines: [2]int{0, 0}}
	var joined []byte
	for _, p := range all {
		total.Elapsed = max(total.Elapsed, time.Duration(binary.LittleEndian.Uint64(p)))
		total.Resumed += int(binary.LittleEndian.Uint64(p[8:]))
		joined = append(joined, p[16:]...)
	}
	total.Lines[1] = bytes.Count(joined, []byte("\n"))
	if rank == 0 {
		if err := writeWhole(opts.Output, joined); err != nil {
			return nil, err
		}
		if res.Report != nil {
			if total.Report, total.ReportPath, err = scoreWhole(opts, res.Report, total); err != nil {
				return nil, err
			}
		}
	}
	// OUTPUT is whole before any rank's part goes.
	if err := comm.Barrier(); err != nil {
		return nil, err
	}
	for _, p := range []string{sub.Output, sub.Output + ".metrics.json", sub.Output + ".bleu-stats.json", sub.Output + ".rouge-stats.json"} {
		os.Remove(p)
	}
	return total, nil
}

// checkSameJob fails when the ranks were given different options or input
// files: each would predict its shard of a different job.
func checkSameJob(comm collective.Comm, opts Options) error {
	desc := opts
	desc.Device, _, _ = strings.Cut(desc.Device, ":")
	b, err := json.Marshal(struct {
		Options
		Warn bool // hides the function, which JSON cannot encode
	}{Options: desc})
	if err != nil {
		return err
	}
	if err := collective.CheckSame(comm, "predict options", b); err != nil {
		return err
	}
	scan, err := scanLines(opts.Input, true)
	if err != nil {
		return err
	}
	return collective.CheckSame(comm, "input file "+opts.Input, scan.hash[:])
}

// writeWhole writes path through a temporary file renamed into place.
func writeWhole(path string, b []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".tmp*")
	if err != nil {
		return fault.Inputf("cannot write the predictions: %w", err)
	}
	_, err = tmp.Write(b)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(tmp.Name(), 0o644)
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("writing predictions to %s: %w", path, err)
	}
	return nil
}

// scoreWhole scores the gathered OUTPUT against the references and writes
// the report one process would (rank's is rank 0's own shard report, for
// the settings it names).
func scoreWhole(opts Options, rank *Report, total *Result) (*Report, string, error) {
	sc, err := newScorer()
	if err != nil {
		return nil, "", err
	}
	var refs []*lineReader
	for _, p := range opts.Refs {
		r, err := openLines(p)
		if err != nil {
			return nil, "", err
		}
		defer r.Close()
		refs = append(refs, r)
	}
	out := &output{partial: opts.Output, done: total.Lines[1]}
	if err := out.readDone(func(i int, pred string) error {
		var rs []string
		for _, r := range refs {
			s, ok, err := r.text()
			if err != nil {
				return err
			}
			if !ok {
				return errLinesChanged(r.path)
			}
			rs = append(rs, s)
		}
		return sc.add(i+1, pred, rs)
	}); err != nil {
		return nil, "", err
	}
	path := opts.Report
	if path == "" {
		path = opts.Output + ".metrics.json"
	}
	rep, err := sc.writeReport(reportRun{
		model: rank.Model, decoder: rank.Decoder, numBeams: rank.NumBeams, maxNewTokens: rank.MaxNewTokens,
		shards: 1, lo: 0, hi: total.Lines[1], elapsed: total.Elapsed, decoded: total.Lines[1] - total.Resumed,
		out: opts.Output, reportPath: path,
	})
	return rep, path, err
}
