package main

import (
	"fmt"
	"os"
	"strconv"

	"github.com/ortrain/ortrain/internal/collective"
	"github.com/ortrain/ortrain/internal/collective/mpi"
)

// openWorld joins the job's other processes when an MPI launcher (mpirun,
// mpiexec, srun --mpi=pmix) started this one for several; otherwise the
// world is this process alone. A launcher's job whose MPI cannot be loaded
// is an error: the processes would otherwise each do the whole work.
func openWorld() (collective.Comm, error) {
	n := mpi.Launched()
	if n <= 1 {
		return collective.Single{}, nil
	}
	c, err := mpi.Open(mpi.Options{})
	if err != nil {
		return nil, fmt.Errorf("started by an MPI launcher as one of %d processes: %w", n, err)
	}
	return c, nil
}

// inWorld names the rank in an error of a multi-process job.
func inWorld(world collective.Comm, err error) error {
	if err == nil || world.Size() == 1 {
		return err
	}
	return fmt.Errorf("rank %d of %d: %w", world.Rank(), world.Size(), err)
}

// localDevice gives each rank of a host its own GPU: --device cuda (no
// index) becomes cuda:<local rank> in a multi-process job.
func localDevice(device string, world collective.Comm) string {
	if device != "cuda" || world.Size() == 1 {
		return device
	}
	for _, name := range []string{"OMPI_COMM_WORLD_LOCAL_RANK", "MPI_LOCALRANKID", "SLURM_LOCALID"} {
		if r, err := strconv.Atoi(os.Getenv(name)); err == nil && r >= 0 {
			return fmt.Sprintf("cuda:%d", r)
		}
	}
	return device
}
