// A small shim over an MPI library loaded at run time (dlopen), so that one
// ortrain binary runs with or without MPI and with whichever MPI a cluster
// provides. Handles (communicators, datatypes, operations, requests) are
// implementation-defined: Open MPI passes pointers to global objects,
// MPICH and its derivatives (Intel MPI, MVAPICH, Cray MPICH) pass ints. The
// shim detects the family from the library's symbols and calls each entry
// with the right handle types, so no MPI header is needed at build time.
#ifndef ORTRAIN_MPI_SHIM_H
#define ORTRAIN_MPI_SHIM_H

#include <stddef.h>
#include <stdint.h>

enum { ORTRAIN_MPI_OPENMPI = 1, ORTRAIN_MPI_MPICH = 2 };
enum { ORTRAIN_MPI_BYTE = 0, ORTRAIN_MPI_FLOAT = 1, ORTRAIN_MPI_DOUBLE = 2 };
enum { ORTRAIN_MPI_SUM = 0, ORTRAIN_MPI_MAX = 1 };

typedef struct ortrain_mpi ortrain_mpi;

// A request handle of either family (a pointer or an int).
typedef union {
  void *p;
  int i;
} ortrain_mpi_request;

// ortrain_mpi_load opens the library. On failure it returns NULL and sets
// *err to 1 (dlopen failed; *dlerr says why), 2 (not an MPI library, or a
// symbol missing: *dlerr names it) or 3 (an MPI whose handle types this
// shim does not know).
ortrain_mpi *ortrain_mpi_load(const char *path, int *err, const char **dlerr);
int ortrain_mpi_family(const ortrain_mpi *m);

// All functions below return an MPI error code (0 is MPI_SUCCESS).
int ortrain_mpi_initialized(ortrain_mpi *m, int *flag);
int ortrain_mpi_finalized(ortrain_mpi *m, int *flag);
// ortrain_mpi_init initialises MPI with thread level MPI_THREAD_FUNNELED
// and sets MPI_ERRORS_RETURN on MPI_COMM_WORLD; *provided receives the
// level the library grants.
int ortrain_mpi_init(ortrain_mpi *m, int *provided);
int ortrain_mpi_finalize(ortrain_mpi *m);
int ortrain_mpi_abort(ortrain_mpi *m, int code);
int ortrain_mpi_rank(ortrain_mpi *m, int *rank);
int ortrain_mpi_size(ortrain_mpi *m, int *size);
// ortrain_mpi_error_string writes at most n-1 bytes and a NUL.
void ortrain_mpi_error_string(ortrain_mpi *m, int code, char *buf, int n);
void ortrain_mpi_library_version(ortrain_mpi *m, char *buf, int n);

// Non-blocking operations on MPI_COMM_WORLD; buffers must stay valid until
// ortrain_mpi_test reports the request complete.
int ortrain_mpi_iallreduce(ortrain_mpi *m, void *buf, int count, int dtype, int op, ortrain_mpi_request *req);
int ortrain_mpi_ibcast(ortrain_mpi *m, void *buf, int bytes, int root, ortrain_mpi_request *req);
int ortrain_mpi_iallgatherv(ortrain_mpi *m, const void *send, int bytes, void *recv, const int *counts, const int *displs, ortrain_mpi_request *req);
int ortrain_mpi_ibarrier(ortrain_mpi *m, ortrain_mpi_request *req);
int ortrain_mpi_isend(ortrain_mpi *m, const void *buf, int bytes, int dest, int tag, ortrain_mpi_request *req);
// ortrain_mpi_irecv_any receives from any source.
int ortrain_mpi_irecv_any(ortrain_mpi *m, void *buf, int bytes, int tag, ortrain_mpi_request *req);
int ortrain_mpi_test(ortrain_mpi *m, ortrain_mpi_request *req, int *done);
int ortrain_mpi_cancel(ortrain_mpi *m, ortrain_mpi_request *req);
int ortrain_mpi_request_free(ortrain_mpi *m, ortrain_mpi_request *req);

#endif
