// Package mpi runs the collective operations of internal/collective on the
// system's MPI library, loaded at run time (internal/onnxrt binds it), so
// that one ortrain binary runs with or without MPI.
//
// MPI itself never gives up on a peer: a rank that hangs stalls the others
// for ever. So every operation here is non-blocking and polled; when one
// has waited Timeout, this rank probes the others over point-to-point
// messages that a background poller on every rank answers. A rank that does
// not answer within Grace is named in the error and the operation fails; a
// rank that answers is alive but still busy (at an earlier operation), so
// the wait goes on; a rank that answers from the same operation number but
// a different operation runs different work, which is an error too.
package mpi

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/ortrain/ortrain/internal/collective"
	"github.com/ortrain/ortrain/internal/fault"
	"github.com/ortrain/ortrain/internal/onnxrt"
)

// DefaultTimeout is how long an operation waits before probing the others.
const DefaultTimeout = 5 * time.Minute

// TimeoutEnvVar overrides DefaultTimeout (a Go duration such as 90s).
const TimeoutEnvVar = "ORTRAIN_COLLECTIVE_TIMEOUT"

// Message tags of the probe protocol (MPI guarantees tags up to 32767;
// collective operations never match point-to-point tags).
const (
	probeTag = 31001
	ackTag   = 31002
)

// pollEvery is how often the background poller answers probes.
const pollEvery = 20 * time.Millisecond

// Options configure Open.
type Options struct {
	// Library is the MPI library to load; empty means $ORTRAIN_MPI_LIB,
	// then the usual sonames.
	Library string
	// Timeout is how long an operation waits before probing the other
	// ranks; 0 means $ORTRAIN_COLLECTIVE_TIMEOUT, else DefaultTimeout.
	Timeout time.Duration
	// Grace is how long probed ranks have to answer; 0 means
	// min(Timeout, 10s).
	Grace time.Duration
}

// Launched returns the number of processes a launcher says this job has
// (Open MPI's mpirun, MPICH's and Intel MPI's mpiexec, Slurm's srun with
// PMI-2 or PMIx), or 0 when the process was not started by one.
func Launched() int {
	for _, name := range []string{"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE"} {
		if n, err := strconv.Atoi(os.Getenv(name)); err == nil && n > 0 {
			return n
		}
	}
	if os.Getenv("PMIX_RANK") != "" {
		if n, err := strconv.Atoi(os.Getenv("SLURM_NTASKS")); err == nil && n > 0 {
			return n
		}
	}
	return 0
}

// operation kinds, exchanged in probe answers.
const (
	opAllReduce = iota + 1
	opBroadcast
	opAllGather
	opBarrier
)

var opNames = map[uint32]string{opAllReduce: "all-reduce", opBroadcast: "broadcast", opAllGather: "all-gather", opBarrier: "barrier"}

// Comm is this process's part in MPI_COMM_WORLD. Its methods may be called
// from one goroutine at a time.
type Comm struct {
	m              *onnxrt.MPI
	timeout, grace time.Duration

	seq    atomic.Uint64 // operations started
	kind   atomic.Uint32 // kind of the latest one
	closed bool

	probeMu  sync.Mutex // the standing probe receive and the answers in flight
	probeBuf *onnxrt.MPIBuffer
	probeReq *onnxrt.MPIRequest
	answers  []sent
	round    uint32
	stop     chan struct{}
	stopped  chan struct{}
}

type sent struct {
	req *onnxrt.MPIRequest
	buf *onnxrt.MPIBuffer
}

// Open loads and initialises MPI and starts answering probes.
func Open(opts Options) (*Comm, error) {
	if opts.Timeout == 0 {
		opts.Timeout = DefaultTimeout
		if v := os.Getenv(TimeoutEnvVar); v != "" {
			d, err := time.ParseDuration(v)
			if err != nil || d <= 0 {
				return nil, fault.Settingsf("$%s = %q: want a positive duration such as 90s or 10m", TimeoutEnvVar, v)
			}
			opts.Timeout = d
		}
	}
	if opts.Grace == 0 {
		opts.Grace = min(opts.Timeout, 10*time.Second)
	}
	m, err := onnxrt.LoadMPI(opts.Library)
	if err != nil {
		return nil, err
	}
	c := &Comm{m: m, timeout: opts.Timeout, grace: opts.Grace, stop: make(chan struct{}), stopped: make(chan struct{})}
	if c.probeBuf, err = onnxrt.NewMPIBuffer(messageSize); err != nil {
		return nil, err
	}
	if c.probeReq, err = m.StartReceive(c.probeBuf, messageSize, probeTag); err != nil {
		return nil, fault.Runtimef("MPI: %w", err)
	}
	go c.poll()
	return c, nil
}

func (c *Comm) Rank() int { return c.m.Rank() }
func (c *Comm) Size() int { return c.m.Size() }

// Library describes the MPI loaded.
func (c *Comm) Library() string {
	return fmt.Sprintf("%s (%s, %s)", c.m.Path(), c.m.Family(), c.m.Version())
}

// message is the probe protocol's payload: sender rank, probe round, and
// (in answers) the sender's operation number and kind.
const messageSize = 24

type message struct {
	rank, round, kind uint32
	seq               uint64
}

func (msg message) put(b []byte) {
	binary.LittleEndian.PutUint32(b[0:], msg.rank)
	binary.LittleEndian.PutUint32(b[4:], msg.round)
	binary.LittleEndian.PutUint32(b[8:], msg.kind)
	binary.LittleEndian.PutUint64(b[16:], msg.seq)
}

func readMessage(b []byte) message {
	return message{rank: binary.LittleEndian.Uint32(b[0:]), round: binary.LittleEndian.Uint32(b[4:]),
		kind: binary.LittleEndian.Uint32(b[8:]), seq: binary.LittleEndian.Uint64(b[16:])}
}

// poll answers probes until Close.
func (c *Comm) poll() {
	defer close(c.stopped)
	t := time.NewTicker(pollEvery)
	defer t.Stop()
	for {
		select {
		case <-c.stop:
			return
		case <-t.C:
			c.answerProbes()
		}
	}
}

// answerProbes answers every probe received so far with this rank's
// operation number and kind.
func (c *Comm) answerProbes() {
	c.probeMu.Lock()
	defer c.probeMu.Unlock()
	for c.probeReq != nil {
		done, err := c.m.Test(c.probeReq)
		if err != nil || !done {
			break
		}
		p := readMessage(c.probeBuf.Bytes())
		if b, err := onnxrt.NewMPIBuffer(messageSize); err == nil {
			message{rank: uint32(c.Rank()), round: p.round, kind: c.kind.Load(), seq: c.seq.Load()}.put(b.Bytes())
			if req, err := c.m.StartSend(b, messageSize, int(p.rank), ackTag); err == nil {
				c.answers = append(c.answers, sent{req, b})
			} else {
				b.Free()
			}
		}
		if c.probeReq, err = c.m.StartReceive(c.probeBuf, messageSize, probeTag); err != nil {
			c.probeReq = nil
		}
	}
	c.answers = slices.DeleteFunc(c.answers, func(s sent) bool {
		done, err := c.m.Test(s.req)
		if done || err != nil {
			s.buf.Free()
			return true
		}
		return false
	})
}

// begin numbers a new operation.
func (c *Comm) begin(kind uint32) (uint64, error) {
	if c.closed {
		return 0, errors.New("MPI communicator used after Close")
	}
	c.kind.Store(kind)
	return c.seq.Add(1), nil
}

// wait polls req until it completes, probing the other ranks each time it
// has waited c.timeout.
func (c *Comm) wait(req *onnxrt.MPIRequest, kind uint32, seq uint64) error {
	start := time.Now()
	deadline := start.Add(c.timeout)
	pause := time.Microsecond
	for {
		done, err := c.m.Test(req)
		if err != nil {
			return fault.Runtimef("rank %d: MPI %s #%d: %w", c.Rank(), opNames[kind], seq, err)
		}
		if done {
			return nil
		}
		if now := time.Now(); now.After(deadline) {
			if err := c.probe(kind, seq, now.Sub(start)); err != nil {
				return err
			}
			deadline = time.Now().Add(c.timeout)
		}
		time.Sleep(pause)
		pause = min(2*pause, time.Millisecond)
	}
}

// probe asks every other rank where it is and fails naming the ranks that
// do not answer within c.grace, or that run a different operation.
func (c *Comm) probe(kind uint32, seq uint64, waited time.Duration) error {
	c.probeMu.Lock()
	c.round++
	round := c.round
	c.probeMu.Unlock()
	me := c.Rank()
	ackBuf, err := onnxrt.NewMPIBuffer(messageSize)
	if err != nil {
		return err
	}
	ackReq, err := c.m.StartReceive(ackBuf, messageSize, ackTag)
	if err != nil {
		ackBuf.Free()
		return fault.Runtimef("rank %d: MPI probe: %w", me, err)
	}
	var probes []sent
	for r := range c.Size() {
		if r == me {
			continue
		}
		b, err := onnxrt.NewMPIBuffer(messageSize)
		if err != nil {
			return err
		}
		message{rank: uint32(me), round: round}.put(b.Bytes())
		req, err := c.m.StartSend(b, messageSize, r, probeTag)
		if err != nil {
			b.Free()
			return fault.Runtimef("rank %d: MPI probe of rank %d: %w", me, r, err)
		}
		probes = append(probes, sent{req, b})
	}
	heard := map[int]message{}
	until := time.Now().Add(c.grace)
	for len(heard) < c.Size()-1 && time.Now().Before(until) {
		done, err := c.m.Test(ackReq)
		if err != nil {
			break
		}
		if !done {
			time.Sleep(time.Millisecond)
			continue
		}
		if a := readMessage(ackBuf.Bytes()); a.round == round && int(a.rank) < c.Size() {
			heard[int(a.rank)] = a
		}
		if ackReq, err = c.m.StartReceive(ackBuf, messageSize, ackTag); err != nil {
			ackReq = nil
			break
		}
	}
	if ackReq != nil {
		if c.m.Cancel(ackReq) == nil {
			ackBuf.Free()
		}
	}
	// Probes to silent ranks may never complete; their buffers stay
	// allocated (a few bytes, once per fault).
	for _, p := range probes {
		if done, _ := c.m.Test(p.req); done {
			p.buf.Free()
		} else {
			_ = c.m.Release(p.req)
		}
	}
	here := fmt.Sprintf("rank %d waited %s at MPI %s #%d", me, waited.Round(time.Second), opNames[kind], seq)
	var silent []string
	for r := range c.Size() {
		if _, ok := heard[r]; !ok && r != me {
			silent = append(silent, strconv.Itoa(r))
		}
	}
	if len(silent) > 0 {
		which := "rank " + silent[0] + " does"
		if len(silent) > 1 {
			which = "ranks " + strings.Join(silent, ", ") + " do"
		}
		return fault.Runtimef("%s not answer (%s; asked again, no answer within %s): the process died or hangs; stopping", which, here, c.grace)
	}
	for r, a := range heard {
		if a.seq == seq && a.kind != kind {
			return fault.Runtimef("rank %d is at MPI %s #%d while %s: the ranks run different work (different arguments or data?)", r, opNames[a.kind], a.seq, here)
		}
	}
	return nil // everyone is alive; the slow ones are still working
}

// allReduce reduces n elements at p (Go memory) through an MPI buffer.
func (c *Comm) allReduce(p unsafe.Pointer, n int, elem int, dt onnxrt.MPIDType, op collective.Op) error {
	seq, err := c.begin(opAllReduce)
	if err != nil {
		return err
	}
	buf, err := onnxrt.NewMPIBuffer(n * elem)
	if err != nil {
		return err
	}
	defer buf.Free()
	src := unsafe.Slice((*byte)(p), n*elem)
	copy(buf.Bytes(), src)
	mop := onnxrt.MPISum
	if op == collective.Max {
		mop = onnxrt.MPIMax
	}
	// MPI counts are C ints: reduce in chunks.
	const chunk = 1 << 28
	for off := 0; off < n; off += chunk {
		k := min(chunk, n-off)
		view := onnxrt.MPIBufferView(buf, off*elem, k*elem)
		req, err := c.m.StartAllReduce(view, k, dt, mop)
		if err != nil {
			return fault.Runtimef("rank %d: %w", c.Rank(), err)
		}
		if err := c.wait(req, opAllReduce, seq); err != nil {
			return err
		}
	}
	copy(src, buf.Bytes())
	return nil
}

func (c *Comm) AllReduceFloat32(b []float32, op collective.Op) error {
	if len(b) == 0 {
		_, err := c.begin(opAllReduce)
		return err
	}
	return c.allReduce(unsafe.Pointer(&b[0]), len(b), 4, onnxrt.MPIFloat32, op)
}

func (c *Comm) AllReduceFloat64(b []float64, op collective.Op) error {
	if len(b) == 0 {
		_, err := c.begin(opAllReduce)
		return err
	}
	return c.allReduce(unsafe.Pointer(&b[0]), len(b), 8, onnxrt.MPIFloat64, op)
}

func (c *Comm) Broadcast(b []byte, root int) error {
	seq, err := c.begin(opBroadcast)
	if err != nil {
		return err
	}
	if root < 0 || root >= c.Size() {
		return fmt.Errorf("broadcast from rank %d in a world of %d", root, c.Size())
	}
	buf, err := onnxrt.NewMPIBuffer(len(b))
	if err != nil {
		return err
	}
	defer buf.Free()
	copy(buf.Bytes(), b)
	const chunk = 1 << 30
	for off := 0; off < len(b) || off == 0; off += chunk {
		k := min(chunk, len(b)-off)
		req, err := c.m.StartBroadcast(onnxrt.MPIBufferView(buf, off, k), k, root)
		if err != nil {
			return fault.Runtimef("rank %d: %w", c.Rank(), err)
		}
		if err := c.wait(req, opBroadcast, seq); err != nil {
			return err
		}
		if len(b) == 0 {
			break
		}
	}
	copy(b, buf.Bytes())
	return nil
}

// AllGather exchanges the payload lengths first (an all-reduce would need
// the sizes anyway), then the payloads in one all-gather.
func (c *Comm) AllGather(payload []byte) ([][]byte, error) {
	seq, err := c.begin(opAllGather)
	if err != nil {
		return nil, err
	}
	n := c.Size()
	lens, err := onnxrt.NewMPIBuffer(8 * n)
	if err != nil {
		return nil, err
	}
	defer lens.Free()
	mine := onnxrt.MPIBufferView(lens, 8*c.Rank(), 8)
	binary.LittleEndian.PutUint64(mine.Bytes(), uint64(len(payload)))
	counts, displs := make([]int, n), make([]int, n)
	for r := range n {
		counts[r], displs[r] = 8, 8*r
	}
	if err := c.gather(mine, 8, lens, counts, displs, seq); err != nil {
		return nil, err
	}
	total := 0
	for r := range n {
		k := binary.LittleEndian.Uint64(lens.Bytes()[8*r:])
		if k > 1<<31-1 || total+int(k) > 1<<31-1 {
			return nil, fmt.Errorf("all-gather: rank %d sends %d bytes; MPI's int offsets hold 2 GiB in all (gather in parts)", r, k)
		}
		counts[r], displs[r] = int(k), total
		total += int(k)
	}
	send, err := onnxrt.NewMPIBuffer(len(payload))
	if err != nil {
		return nil, err
	}
	defer send.Free()
	copy(send.Bytes(), payload)
	recv, err := onnxrt.NewMPIBuffer(total)
	if err != nil {
		return nil, err
	}
	defer recv.Free()
	if err := c.gather(send, len(payload), recv, counts, displs, seq); err != nil {
		return nil, err
	}
	out := make([][]byte, n)
	all := slices.Clone(recv.Bytes())
	for r := range n {
		out[r] = all[displs[r] : displs[r]+counts[r] : displs[r]+counts[r]]
	}
	return out, nil
}

func (c *Comm) gather(send *onnxrt.MPIBuffer, n int, recv *onnxrt.MPIBuffer, counts, displs []int, seq uint64) error {
	req, err := c.m.StartAllGather(send, n, recv, counts, displs)
	if err != nil {
		return fault.Runtimef("rank %d: %w", c.Rank(), err)
	}
	return c.wait(req, opAllGather, seq)
}

func (c *Comm) Barrier() error {
	seq, err := c.begin(opBarrier)
	if err != nil {
		return err
	}
	req, err := c.m.StartBarrier()
	if err != nil {
		return fault.Runtimef("rank %d: %w", c.Rank(), err)
	}
	return c.wait(req, opBarrier, seq)
}

// Close waits for every rank (a barrier, so that no rank finalises while
// another may still probe it), stops answering probes and finalises MPI.
// After a failed operation, do not Close: exit with an error instead, and
// the launcher stops the other ranks.
func (c *Comm) Close() error {
	if c.closed {
		return nil
	}
	if err := c.Barrier(); err != nil {
		return err
	}
	c.closed = true
	close(c.stop)
	<-c.stopped
	c.probeMu.Lock()
	defer c.probeMu.Unlock()
	if c.probeReq != nil {
		_ = c.m.Cancel(c.probeReq)
	}
	c.probeBuf.Free()
	for _, s := range c.answers {
		for {
			done, err := c.m.Test(s.req)
			if done || err != nil {
				break
			}
			time.Sleep(time.Millisecond)
		}
		s.buf.Free()
	}
	c.answers = nil
	return c.m.Finalize()
}
