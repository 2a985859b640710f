// Package nccl averages gradient buffers that live in GPU memory over the
// processes of a job with NCCL, loaded at run time (internal/onnxrt binds
// it), as Horovod does: MPI (internal/collective/mpi) launches the
// processes and carries the bootstrap — rank 0's NCCL unique id is
// broadcast over it — and NCCL reduces the device buffers in place, with
// no copy through host memory.
//
// Streams: ONNX Runtime returns from a run only after synchronising the
// CUDA stream it ran on, so the gradients are complete when an all-reduce
// is enqueued; NCCL runs on a stream of its own, which is polled until
// idle before the next ONNX Runtime run reads the gradients.
package nccl

import (
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/ortrain/ortrain/internal/collective"
	"github.com/ortrain/ortrain/internal/collective/mpi"
	"github.com/ortrain/ortrain/internal/fault"
	"github.com/ortrain/ortrain/internal/onnxrt"
)

// Off is the value of $ORTRAIN_NCCL_LIB that turns NCCL off: gradients on a
// GPU are then averaged through host memory over MPI.
const Off = "none"

// Disabled reports whether $ORTRAIN_NCCL_LIB is "none".
func Disabled() bool { return os.Getenv(onnxrt.NCCLLibEnvVar) == Off }

// Options configure Open.
type Options struct {
	// Library is libnccl.so.2; empty means $ORTRAIN_NCCL_LIB, then
	// libnccl.so.2 on the loader's path. Driver is the CUDA driver; empty
	// means libcuda.so.1.
	Library, Driver string
	// Timeout is how long an all-reduce may take; 0 means
	// $ORTRAIN_COLLECTIVE_TIMEOUT, else mpi.DefaultTimeout.
	Timeout time.Duration
}

// Comm is this process's rank of an NCCL communicator on one GPU, beside
// the job's host communicator (world).
type Comm struct {
	world   collective.Comm
	lib     *onnxrt.NCCL
	comm    *onnxrt.NCCLComm
	dev     onnxrt.Device
	timeout time.Duration
	failed  error
}

// Open makes every rank of world join one NCCL communicator, each on its
// device dev. Every rank must call it. A rank that cannot load NCCL or the
// CUDA driver makes Open fail on every rank, naming it (no rank is left
// waiting for it in NCCL's initialisation).
func Open(world collective.Comm, dev onnxrt.Device, opts Options) (*Comm, error) {
	if opts.Timeout == 0 {
		opts.Timeout = mpi.DefaultTimeout
		if v := os.Getenv(mpi.TimeoutEnvVar); v != "" {
			d, err := time.ParseDuration(v)
			if err != nil || d <= 0 {
				return nil, fault.Settingsf("$%s = %q: want a positive duration such as 90s or 10m", mpi.TimeoutEnvVar, v)
			}
			opts.Timeout = d
		}
	}
	lib, err := onnxrt.LoadNCCL(opts.Library, opts.Driver)
	if err == nil {
		err = lib.LoadDriver()
	}
	var id onnxrt.NCCLID
	if err == nil && world.Rank() == 0 {
		id, err = lib.UniqueID()
	}
	// Every rank says whether it can go on before any of them blocks in
	// ncclCommInitRank.
	status := ""
	if err != nil {
		status = err.Error()
	}
	all, gerr := world.AllGather([]byte(status))
	if err != nil {
		return nil, err
	}
	if gerr != nil {
		return nil, gerr
	}
	for r, s := range all {
		if len(s) > 0 {
			return nil, fault.Runtimef("rank %d cannot use NCCL: %s", r, s)
		}
	}
	if err := world.Broadcast(id[:], 0); err != nil {
		return nil, err
	}
	c, err := lib.NewComm(id, world.Size(), world.Rank(), dev)
	if err != nil {
		return nil, fault.Mark(fault.Runtime, fmt.Errorf("rank %d: %w", world.Rank(), err))
	}
	return &Comm{world: world, lib: lib, comm: c, dev: dev, timeout: opts.Timeout}, nil
}

// Library describes the NCCL loaded.
func (c *Comm) Library() string { return fmt.Sprintf("%s (NCCL %s)", c.lib.Path(), c.lib.Version()) }

// AverageFloat32 replaces every value (float32 in the device's memory, the
// same shapes in the same order on every rank) by its mean over the ranks,
// in place: NCCL's average, which multiplies each rank's buffer by 1/N and
// sums, as DDP does. It returns once the result is in place. When the
// reduction does not finish within the timeout, the communicator is
// aborted and the host communicator's barrier names a rank that died or
// stopped answering.
func (c *Comm) AverageFloat32(values []*onnxrt.Value) error {
	if c.failed != nil {
		return fmt.Errorf("NCCL communicator failed before: %w", c.failed)
	}
	me := c.world.Rank()
	if err := c.comm.StartAllReduce(values, onnxrt.NCCLAvg); err != nil {
		return c.fail(fault.Runtimef("rank %d: %w", me, err))
	}
	start := time.Now()
	pause := time.Microsecond
	for {
		done, err := c.comm.Done()
		if err != nil {
			return c.fail(fault.Runtimef("rank %d: NCCL all-reduce of %d gradient buffers on %v: %w", me, len(values), c.dev, err))
		}
		if done {
			return nil
		}
		if waited := time.Since(start); waited > c.timeout {
			err := fault.Runtimef("rank %d: the NCCL all-reduce of %d gradient buffers on %v did not finish within %s: another process died or hangs; stopping",
				me, len(values), c.dev, waited.Round(time.Millisecond))
			c.fail(err)
			return c.nameTheSilent(err)
		}
		time.Sleep(pause)
		pause = min(2*pause, time.Millisecond)
	}
}

// nameTheSilent meets the other processes at a barrier of the host
// communicator, whose timeout names a process that no longer answers. A
// process that answers but never arrives (it hangs elsewhere) would keep
// the barrier waiting, so the wait is bounded by one probe round.
func (c *Comm) nameTheSilent(err error) error {
	berr := make(chan error, 1)
	go func() { berr <- c.world.Barrier() }()
	bound := c.timeout + min(c.timeout, 10*time.Second) + min(c.timeout, 5*time.Second)
	select {
	case e := <-berr:
		if e != nil {
			return fmt.Errorf("%w; %w", err, e)
		}
		return err
	case <-time.After(bound):
		return fmt.Errorf("%w (the other processes still answer over MPI: one of them hangs)", err)
	}
}

// fail aborts the communicator (its pending work is dropped, no rank is
// waited for) and keeps err for later calls.
func (c *Comm) fail(err error) error {
	c.failed = err
	if aerr := c.comm.Abort(); aerr != nil {
		return errors.Join(err, aerr)
	}
	return err
}

// Close destroys the communicator (every rank, after its last all-reduce).
func (c *Comm) Close() error {
	if c.failed != nil {
		return nil
	}
	return c.comm.Close()
}
