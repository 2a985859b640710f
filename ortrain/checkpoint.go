package ortrain

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// CheckpointPrefix is trainer_utils.PREFIX_CHECKPOINT_DIR.
const CheckpointPrefix = "checkpoint"

// Files in a checkpoint folder besides the engine's own (model.safetensors,
// optimizer state).
const (
	TrainerStateName = "trainer_state.json"
	TrainingArgsName = "training_args.json"
	SchedulerName    = "scheduler.json"
	RNGStateName     = "rng_state.json"
	DataStateName    = "data_state.json"
	tmpPrefix        = ".tmp-"
)

var reCheckpoint = regexp.MustCompile(`^` + CheckpointPrefix + `\-(\d+)$`)

// FileSystem is the file operations checkpointing uses; tests inject
// failures (a full disk) through it.
type FileSystem interface {
	MkdirAll(path string) error
	// WriteFile creates path, writes data and fsyncs it.
	WriteFile(path string, data []byte) error
	// SyncTree fsyncs every regular file under dir and dir itself.
	SyncTree(dir string) error
	Rename(oldpath, newpath string) error
	RemoveAll(path string) error
	// SyncDir fsyncs a directory so a rename in it is durable.
	SyncDir(dir string) error
}

// OSFileSystem is the real file system.
type OSFileSystem struct{}

var _ FileSystem = OSFileSystem{}

func (OSFileSystem) MkdirAll(p string) error { return os.MkdirAll(p, 0o755) }

func (OSFileSystem) WriteFile(p string, data []byte) error {
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func (OSFileSystem) SyncTree(dir string) error {
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		return f.Sync()
	})
	return err
}

func (OSFileSystem) Rename(o, n string) error { return os.Rename(o, n) }
func (OSFileSystem) RemoveAll(p string) error { return os.RemoveAll(p) }
func (OSFileSystem) SyncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}

// pyJoin is os.path.join(dir, name) for the string stored in
// best_model_checkpoint (HF stores it unnormalised).
func pyJoin(dir, name string) string {
	if dir == "" || strings.HasSuffix(dir, "/") {
		return dir + name
	}
	return dir + "/" + name
}

// LastCheckpoint is trainer_utils.get_last_checkpoint: the checkpoint-N
// folder with the largest N, or "" if there is none.
func LastCheckpoint(dir string) (string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return "", err
	}
	best, bestN := "", -1
	for _, e := range entries {
		m := reCheckpoint.FindStringSubmatch(e.Name())
		if m == nil || !e.IsDir() {
			continue
		}
		n, err := strconv.Atoi(m[1])
		if err == nil && n > bestN {
			best, bestN = e.Name(), n
		}
	}
	if best == "" {
		return "", nil
	}
	return pyJoin(dir, best), nil
}

var reCheckpointAny = regexp.MustCompile(`.*` + CheckpointPrefix + `-([0-9]+)`)

// sortCheckpoints is trainer_utils.sort_checkpoints (5.24): checkpoint-*
// folders oldest first, by mtime when useMtime and the mtimes spread over at
// least a second, else by step; best (if given and not last) moved to the
// second-to-last place.
func sortCheckpoints(outputDir string, useMtime bool, best string) ([]string, error) {
	entries, err := os.ReadDir(outputDir)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, nil
		}
		return nil, err
	}
	type item struct {
		key  float64
		path string
	}
	var items []item
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), CheckpointPrefix+"-") || !e.IsDir() {
			continue
		}
		p := filepath.Join(outputDir, e.Name())
		if useMtime {
			info, err := e.Info()
			if err != nil {
				return nil, err
			}
			items = append(items, item{float64(info.ModTime().UnixNano()) / 1e9, p})
		} else if m := reCheckpointAny.FindStringSubmatch(p); m != nil {
			n, _ := strconv.Atoi(m[1])
			items = append(items, item{float64(n), p})
		}
	}
	// Python sorts (key, path) tuples.
	sort.Slice(items, func(i, j int) bool {
		if items[i].key != items[j].key {
			return items[i].key < items[j].key
		}
		return items[i].path < items[j].path
	})
	if useMtime && len(items) > 1 && items[len(items)-1].key-items[0].key < 1.0 {
		return sortCheckpoints(outputDir, false, best)
	}
	out := make([]string, len(items))
	for i, it := range items {
		out[i] = it.path
	}
	if best != "" {
		b := filepath.Clean(best)
		idx := -1
		for i, p := range out {
			if p == b {
				idx = i
			}
		}
		if idx >= 0 && out[len(out)-1] != b {
			last := out[len(out)-1]
			var rest []string
			for _, p := range out {
				if p != b && p != last {
					rest = append(rest, p)
				}
			}
			out = append(rest, b, last)
		}
	}
	return out, nil
}

// rotateCheckpoints is trainer_utils.rotate_checkpoints (5.24): delete the
// oldest checkpoints that are neither the newest nor the best until at most
// max(limit, number protected) remain. limit <= 0 keeps everything.
func rotateCheckpoints(fsys FileSystem, outputDir string, limit int, best string) ([]string, error) {
	if limit <= 0 {
		return nil, nil
	}
	cps, err := sortCheckpoints(outputDir, true, "")
	if err != nil || len(cps) <= limit {
		return nil, err
	}
	protected := map[string]bool{cps[len(cps)-1]: true}
	if best != "" {
		protected[filepath.Clean(best)] = true
	}
	keep := max(limit, len(protected))
	remaining := len(cps)
	var deleted []string
	for _, cp := range cps {
		if remaining <= keep {
			break
		}
		if !protected[cp] {
			if err := removeDir(fsys, cp); err != nil {
				return deleted, fmt.Errorf("deleting old checkpoint %s: %w", cp, err)
			}
			deleted = append(deleted, cp)
			remaining--
		}
	}
	return deleted, nil
}

// removeDir deletes a checkpoint folder as atomically as saving one: the
// folder is first renamed out of the checkpoint-N name (and the rename made
// durable), then deleted, so a kill half-way through a deletion never
// leaves a half-deleted folder named checkpoint-N; the next run deletes
// what is left.
func removeDir(fsys FileSystem, dir string) error {
	parent := filepath.Dir(dir)
	doomed := filepath.Join(parent, tmpPrefix+"del-"+filepath.Base(dir))
	if err := fsys.RemoveAll(doomed); err != nil {
		return err
	}
	if err := fsys.Rename(dir, doomed); err != nil {
		return err
	}
	if err := fsys.SyncDir(parent); err != nil {
		return err
	}
	return fsys.RemoveAll(doomed)
}

// cleanStaleTemporaries removes checkpoint folders a killed run left half
// written (they never carry the checkpoint-N name, so nothing reads them).
func cleanStaleTemporaries(fsys FileSystem, outputDir string) error {
	entries, err := os.ReadDir(outputDir)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return err
	}
	for _, e := range entries {
		if name, ok := strings.CutPrefix(e.Name(), tmpPrefix+"old-"); ok && e.IsDir() {
			// Killed between moving the old copy aside and renaming the new
			// one in: the old copy is the good one.
			final := filepath.Join(outputDir, name)
			if _, err := os.Stat(final); errors.Is(err, fs.ErrNotExist) {
				if err := fsys.Rename(filepath.Join(outputDir, e.Name()), final); err != nil {
					return err
				}
				continue
			}
			if err := fsys.RemoveAll(filepath.Join(outputDir, e.Name())); err != nil {
				return err
			}
			continue
		}
		if e.IsDir() && (strings.HasPrefix(e.Name(), tmpPrefix+CheckpointPrefix+"-") || strings.HasPrefix(e.Name(), tmpPrefix+"del-")) {
			if err := fsys.RemoveAll(filepath.Join(outputDir, e.Name())); err != nil {
				return err
			}
		}
	}
	return nil
}

// commitDir atomically replaces final by the fully written tmp folder:
// fsync the files and tmp, move any existing final aside, rename, fsync
// the parent, then delete the old copy.
func commitDir(fsys FileSystem, tmp, final string) error {
	if err := fsys.SyncTree(tmp); err != nil {
		return err
	}
	parent := filepath.Dir(final)
	old := ""
	if _, err := os.Stat(final); err == nil {
		old = filepath.Join(parent, tmpPrefix+"old-"+filepath.Base(final))
		if err := fsys.RemoveAll(old); err != nil {
			return err
		}
		if err := fsys.Rename(final, old); err != nil {
			return err
		}
	}
	if err := fsys.Rename(tmp, final); err != nil {
		return err
	}
	if err := fsys.SyncDir(parent); err != nil {
		return err
	}
	if old != "" {
		return fsys.RemoveAll(old)
	}
	return nil
}
