// Package collective is the small set of collective operations that
// data-parallel training and prediction need: all-reduce in place,
// broadcast, all-gather of variable-length byte payloads and barrier, over
// the processes of one job. Backends implement Comm; Single is the
// one-process world, and internal/collective/mpi runs on the system's MPI.
//
// Every rank must make the same calls in the same order (as with MPI): a
// rank that calls a different operation, or none, stalls the others until
// the backend's timeout names it.
package collective

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"fmt"

	"github.com/ortrain/ortrain/internal/fault"
)

// Op is a reduction.
type Op int

const (
	Sum Op = iota
	Max
)

func (o Op) String() string {
	if o == Max {
		return "max"
	}
	return "sum"
}

// Comm is one process's view of a job's processes.
type Comm interface {
	// Rank is this process's rank, 0 <= Rank < Size.
	Rank() int
	// Size is the number of processes.
	Size() int
	// AllReduceFloat32 and AllReduceFloat64 replace buf on every rank by
	// the element-wise reduction over the ranks' bufs (same length on all).
	AllReduceFloat32(buf []float32, op Op) error
	AllReduceFloat64(buf []float64, op Op) error
	// Broadcast copies root's buf into every rank's buf (same length on all).
	Broadcast(buf []byte, root int) error
	// AllGather returns every rank's payload, indexed by rank; payloads may
	// differ in length.
	AllGather(payload []byte) ([][]byte, error)
	// Barrier returns once every rank has called it.
	Barrier() error
	// Close ends this process's part in the job; later calls fail.
	Close() error
}

// Single is the world of one process: every operation is the identity.
type Single struct{}

func (Single) Rank() int                                  { return 0 }
func (Single) Size() int                                  { return 1 }
func (Single) AllReduceFloat32([]float32, Op) error       { return nil }
func (Single) AllReduceFloat64([]float64, Op) error       { return nil }
func (Single) Barrier() error                             { return nil }
func (Single) Close() error                               { return nil }
func (Single) AllGather(payload []byte) ([][]byte, error) { return [][]byte{bytes.Clone(payload)}, nil }
func (Single) Broadcast(buf []byte, root int) error {
	if root != 0 {
		return fmt.Errorf("broadcast from rank %d in a world of 1", root)
	}
	return nil
}

// AverageFloat32 replaces buf by its mean over the ranks as DDP takes it:
// each rank multiplies its buf by 1/N (in float32), then the bufs are
// summed. PyTorch's Reducer multiplies every gradient by 1/world_size as it
// copies it into the bucket it all-reduces (copy_grad_to_bucket), and
// NCCL's ncclAvg, which averages gradients in GPU memory
// (internal/collective/nccl), does the same; with N a power of two this
// equals the sum divided by N.
func AverageFloat32(c Comm, buf []float32) error {
	if n := c.Size(); n != 1 {
		scale := 1 / float32(n)
		for i := range buf {
			buf[i] *= scale
		}
	}
	return c.AllReduceFloat32(buf, Sum)
}

// CheckSame fails on every rank, naming the first rank that differs from
// rank 0 and what, when the ranks' values of what differ (arguments, model,
// data): ranks that disagree would otherwise compute different things
// silently. value is hashed, so it may be large.
func CheckSame(c Comm, what string, value []byte) error {
	sum := sha256.Sum256(value)
	all, err := c.AllGather(sum[:])
	if err != nil {
		return err
	}
	for r := 1; r < len(all); r++ {
		if !bytes.Equal(all[r], all[0]) {
			return fault.Settingsf("rank %d's %s differs from rank 0's: every process of the job must be started with the same arguments and files", r, what)
		}
	}
	return nil
}

// BroadcastInt64 sends root's v to every rank and returns it.
func BroadcastInt64(c Comm, v int64, root int) (int64, error) {
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], uint64(v))
	if err := c.Broadcast(b[:], root); err != nil {
		return 0, err
	}
	return int64(binary.LittleEndian.Uint64(b[:])), nil
}
