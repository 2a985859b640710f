package ortrain

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/ortrain/ortrain/internal/pyjson"
)

// Output files of Run, as HF's example scripts name them.
const (
	AllResultsName    = "all_results.json"
	PredictionsName   = "generated_predictions.txt"
	PlotName          = "training_curves.png"
	LogHistoryJSONL   = "log_history.jsonl"
	TrainResultsName  = "train_results.json"
	EvalResultsName   = "eval_results.json"
	PredictResultName = "predict_results.json"
)

// RunOptions are the parts of an HF example script (run_translation.py)
// around the Trainer.
type RunOptions struct {
	TestData EvalData
	// Decode turns generated ids into text (special tokens skipped) for
	// generated_predictions.txt.
	Decode func(ids []int) string
	// Out receives the "***** train metrics *****" blocks (nil: none).
	Out io.Writer
}

// RunOutput collects what Run produced.
type RunOutput struct {
	Train   *TrainOutput
	Eval    Logs
	Predict *Prediction
}

// Run does what run_translation.py does with the trainer: train (if
// do_train) and save the final model, train metrics and trainer_state.json
// into output_dir; evaluate (do_eval); predict on the test set
// (do_predict) writing generated_predictions.txt; then plot the curves.
func (t *Trainer) Run(ctx context.Context, o RunOptions) (*RunOutput, error) {
	a := &t.Args
	out := &RunOutput{}
	unlock, err := t.lockOutput()
	if err != nil {
		return nil, err
	}
	defer unlock()
	main := t.isMain()
	if main {
		if err := t.fs().MkdirAll(a.OutputDir); err != nil {
			return nil, err
		}
	}
	if a.DoTrain {
		res, err := t.Train(ctx)
		if err != nil {
			return nil, err
		}
		out.Train = res
		if main {
			if err := t.saveTrainOutput(res, o); err != nil {
				return nil, err
			}
		}
	}
	if a.DoEval && t.EvalData != nil {
		m, err := t.Evaluate(ctx, t.EvalData, "eval")
		if err != nil {
			return nil, err
		}
		m = append(Logs(nil), m...)
		m.Set("eval_samples", float64(t.EvalData.NumExamples()))
		out.Eval = m
		if main {
			if err := t.saveMetrics("eval", m, o.Out); err != nil {
				return nil, err
			}
		}
	}
	if a.DoPredict && o.TestData != nil {
		p, err := t.Predict(ctx, o.TestData, "predict")
		if err != nil {
			return nil, err
		}
		p.Metrics.Set("predict_samples", float64(o.TestData.NumExamples()))
		out.Predict = p
		if !main {
			return out, nil
		}
		if err := t.saveMetrics("predict", p.Metrics, o.Out); err != nil {
			return nil, err
		}
		if a.PredictWithGenerate && o.Decode != nil {
			preds := p.Predictions
			if n := o.TestData.NumExamples(); len(preds) > n {
				// Several processes: the filler rows of the last batches
				// follow the dataset's rows; the file has one line per
				// test example (HF would write the fillers too).
				preds = preds[:n]
			}
			lines := make([]string, len(preds))
			for i, ids := range preds {
				lines[i] = strings.TrimSpace(o.Decode(replaceIgnored(ids, 0)))
			}
			if err := t.fs().WriteFile(filepath.Join(a.OutputDir, PredictionsName), []byte(strings.Join(lines, "\n"))); err != nil {
				return nil, err
			}
		}
	}
	if main && t.state != nil && len(t.state.LogHistory) > 0 {
		if err := WritePlot(t.state.LogHistory, filepath.Join(a.OutputDir, PlotName)); err != nil {
			return nil, fmt.Errorf("plot: %w", err)
		}
	}
	for _, r := range t.reporters {
		if f, ok := r.(interface{ Finish(outputDir string) }); ok {
			f.Finish(a.OutputDir)
		}
	}
	return out, nil
}

// saveTrainOutput writes the final model, the train metrics and
// trainer_state.json into output_dir.
func (t *Trainer) saveTrainOutput(res *TrainOutput, o RunOptions) error {
	a := &t.Args
	if err := t.SaveModel(a.OutputDir); err != nil {
		return err
	}
	m := append(Logs(nil), res.Metrics...)
	m.Set("train_samples", float64(t.TrainData.NumExamples()))
	if err := t.saveMetrics("train", m, o.Out); err != nil {
		return err
	}
	st, err := t.state.MarshalHF()
	if err != nil {
		return err
	}
	return t.fs().WriteFile(filepath.Join(a.OutputDir, TrainerStateName), st)
}

// SaveModel is Trainer.save_model: the weights (model.safetensors under the
// model's own names), ONNX inference graphs when the engine can export
// them, and training_args.json.
func (t *Trainer) SaveModel(dir string) error {
	if err := t.fs().MkdirAll(dir); err != nil {
		return err
	}
	if err := t.Engine.SaveModel(dir); err != nil {
		return err
	}
	if ex, ok := t.Engine.(InferenceExporter); ok {
		if err := ex.ExportInference(dir); err != nil {
			return fmt.Errorf("exporting the inference graphs: %w", err)
		}
	}
	return writeJSON(t.fs(), filepath.Join(dir, TrainingArgsName), t.Args.ToMap(), 2)
}

// saveMetrics is Trainer.log_metrics + save_metrics(split, combined=True):
// <split>_results.json and all_results.json (json.dump indent 4, sorted).
func (t *Trainer) saveMetrics(split string, m Logs, w io.Writer) error {
	if w != nil {
		fmt.Fprint(w, FormatMetrics(split, m))
	}
	dir := t.Args.OutputDir
	b, err := pyjson.Marshal(metricsMap(m), 4)
	if err != nil {
		return err
	}
	if err := t.fs().WriteFile(filepath.Join(dir, split+"_results.json"), b); err != nil {
		return err
	}
	all := map[string]any{}
	allPath := filepath.Join(dir, AllResultsName)
	if data, err := os.ReadFile(allPath); err == nil {
		dec := json.NewDecoder(strings.NewReader(string(data)))
		dec.UseNumber()
		var raw map[string]any
		if err := dec.Decode(&raw); err != nil {
			return fmt.Errorf("%s: %v", allPath, err)
		}
		for k, v := range raw {
			if f, err := jsonFloat(v); err == nil {
				if n, ok := v.(json.Number); ok && !strings.ContainsAny(n.String(), ".eE") {
					all[k] = int(f)
				} else {
					all[k] = f
				}
			}
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return err
	}
	for k, v := range metricsMap(m) {
		all[k] = v
	}
	if b, err = pyjson.Marshal(all, 4); err != nil {
		return err
	}
	return t.fs().WriteFile(allPath, b)
}

// metricsMap keeps *_samples counts integers, as the example scripts
// store len(dataset).
func metricsMap(m Logs) map[string]any {
	out := map[string]any{}
	for _, e := range m {
		if strings.HasSuffix(e.Key, "_samples") && e.Value == math.Trunc(e.Value) {
			out[e.Key] = int(e.Value)
		} else {
			out[e.Key] = e.Value
		}
	}
	return out
}

// FormatMetrics is Trainer.log_metrics' block: sorted keys, runtimes as
// h:mm:ss.cc, total_flos in GF, floats rounded to 4 decimals.
func FormatMetrics(split string, m Logs) string {
	keys := make([]string, 0, len(m))
	vals := map[string]string{}
	for _, e := range m {
		keys = append(keys, e.Key)
		v := e.Value
		switch {
		case e.Key == "total_flos":
			vals[e.Key] = fmt.Sprintf("%dGF", int64(v)>>30)
		case strings.HasSuffix(e.Key, "_runtime"):
			secs := int64(v)
			msec := int(math.Abs(v-float64(secs)) * 100)
			vals[e.Key] = fmt.Sprintf("%d:%02d:%02d.%02d", secs/3600, secs/60%60, secs%60, msec)
		case strings.HasSuffix(e.Key, "_samples") && v == math.Trunc(v):
			vals[e.Key] = fmt.Sprintf("%d", int64(v))
		default:
			vals[e.Key] = pyjson.FormatFloat(pyRound(v, 4))
		}
	}
	sort.Strings(keys)
	kw, vw := 0, 0
	for _, k := range keys {
		kw = max(kw, len(k))
		vw = max(vw, len(vals[k]))
	}
	var b strings.Builder
	fmt.Fprintf(&b, "***** %s metrics *****\n", split)
	for _, k := range keys {
		fmt.Fprintf(&b, "  %-*s = %*s\n", kw, k, vw, vals[k])
	}
	return b.String()
}
