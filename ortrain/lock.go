package ortrain

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/ortrain/ortrain/internal/fault"
)

// LockName is the lock file a run holds in its output_dir.
const LockName = ".ortrain.lock"

// ErrOutputDirInUse marks an output_dir another run holds (a bad setting:
// choose another folder or wait).
var ErrOutputDirInUse = fault.New(fault.Settings, "output_dir is in use by another run")

// OutputLock is an exclusive lock on an output_dir for the life of a run:
// two runs writing one folder destroy each other's checkpoints. The lock is
// an flock(2) on output_dir/.ortrain.lock, which the kernel releases when
// the process ends however it ends, so a lock left by a dead process is
// never in force; the file records the holder's pid and host for the
// message a second run gets. Where the file system has no flock (some
// network mounts), the file is created exclusively instead and a stale one
// is recognised by its pid no longer running on this host.
type OutputLock struct {
	f    *os.File
	path string
}

// LockOutputDir creates dir if needed and takes its lock, or fails at once
// with ErrOutputDirInUse naming the holder.
func LockOutputDir(dir string) (*OutputLock, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	path := filepath.Join(dir, LockName)
	for attempt := 0; ; attempt++ {
		f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
		if err != nil {
			return nil, err
		}
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		switch {
		case err == nil:
			// The holder may have removed the file between our open and
			// our lock: then we hold a lock on a file nobody sees.
			if !samePath(f, path) {
				f.Close()
				continue
			}
			l := &OutputLock{f: f, path: path}
			l.writeHolder()
			return l, nil
		case errors.Is(err, syscall.EWOULDBLOCK):
			holder := readHolder(f)
			f.Close()
			return nil, fmt.Errorf("%w: %s is held by %s; wait for that run to end or choose another --output_dir", ErrOutputDirInUse, dir, holder)
		case errors.Is(err, syscall.ENOLCK) || errors.Is(err, syscall.EOPNOTSUPP) || errors.Is(err, syscall.ENOSYS):
			f.Close()
			return lockByPidFile(dir, path)
		default:
			f.Close()
			return nil, fmt.Errorf("locking %s: %w", path, err)
		}
	}
}

// samePath reports whether the open file is still the one at path.
func samePath(f *os.File, path string) bool {
	a, err1 := f.Stat()
	b, err2 := os.Stat(path)
	return err1 == nil && err2 == nil && os.SameFile(a, b)
}

func holderLine() string {
	host, _ := os.Hostname()
	return fmt.Sprintf("%d %s %s\n", os.Getpid(), host, time.Now().UTC().Format(time.RFC3339))
}

func (l *OutputLock) writeHolder() {
	_ = l.f.Truncate(0)
	_, _ = l.f.WriteAt([]byte(holderLine()), 0)
}

// readHolder describes the process named in a lock file.
func readHolder(f *os.File) string {
	b := make([]byte, 256)
	n, _ := f.ReadAt(b, 0)
	fields := strings.Fields(string(b[:n]))
	if len(fields) < 3 {
		return "another ortrain run"
	}
	return fmt.Sprintf("ortrain process %s on %s (since %s)", fields[0], fields[1], fields[2])
}

// lockByPidFile is the lock without flock: the file is created
// exclusively; one whose pid is dead on this host is stale and replaced.
func lockByPidFile(dir, path string) (*OutputLock, error) {
	for attempt := 0; attempt < 2; attempt++ {
		f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
		if err == nil {
			l := &OutputLock{f: f, path: path}
			l.writeHolder()
			return l, nil
		}
		if !errors.Is(err, os.ErrExist) {
			return nil, err
		}
		old, err := os.Open(path)
		if err != nil {
			continue
		}
		holder := readHolder(old)
		b := make([]byte, 256)
		n, _ := old.ReadAt(b, 0)
		old.Close()
		fields := strings.Fields(string(b[:n]))
		host, _ := os.Hostname()
		if len(fields) >= 2 && fields[1] == host {
			if pid, err := strconv.Atoi(fields[0]); err == nil && !processAlive(pid) {
				os.Remove(path) // stale: its process is gone
				continue
			}
		}
		return nil, fmt.Errorf("%w: %s is held by %s; wait for that run to end or choose another --output_dir (delete %s if no such run exists)", ErrOutputDirInUse, dir, holder, path)
	}
	return nil, fmt.Errorf("%w: %s", ErrOutputDirInUse, dir)
}

func processAlive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

// Release removes the lock file and releases the lock; nil-safe and
// idempotent.
func (l *OutputLock) Release() error {
	if l == nil || l.f == nil {
		return nil
	}
	// Remove while still holding the lock, so no run can lock the file
	// between our unlock and the removal (LockOutputDir checks for that).
	err := os.Remove(l.path)
	if cerr := l.f.Close(); err == nil {
		err = cerr
	}
	l.f = nil
	return err
}
