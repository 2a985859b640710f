// A small shim over NCCL (libnccl.so.2) and the CUDA driver (libcuda.so.1),
// both loaded at run time (dlopen) so that one ortrain binary runs without
// them. NCCL reduces gradient buffers in device memory; the driver gives
// the calling thread the device's primary context (the one ONNX Runtime's
// CUDA provider uses through the runtime API, so device pointers of its
// values are valid here) and the stream NCCL runs on. No NCCL or CUDA
// header is needed at build time: the few types are declared below with
// the values of nccl.h (NCCL 2.10 and later) and cuda.h.
#ifndef ORTRAIN_NCCL_SHIM_H
#define ORTRAIN_NCCL_SHIM_H

#include <stddef.h>
#include <stdint.h>

// ncclUniqueId: 128 opaque bytes, passed by value to ncclCommInitRank.
#define ORTRAIN_NCCL_ID_BYTES 128
typedef struct {
  char internal[ORTRAIN_NCCL_ID_BYTES];
} ortrain_nccl_id;

// nccl.h values.
enum { ORTRAIN_NCCL_FLOAT32 = 7, ORTRAIN_NCCL_FLOAT64 = 8 };
enum { ORTRAIN_NCCL_SUM = 0, ORTRAIN_NCCL_MAX = 2, ORTRAIN_NCCL_AVG = 4 };
enum { ORTRAIN_NCCL_IN_PROGRESS = 7 };
// cuda.h: CUDA_ERROR_NOT_READY from cuStreamQuery.
enum { ORTRAIN_CU_NOT_READY = 600 };

typedef struct ortrain_nccl ortrain_nccl;

// ortrain_nccl_load opens NCCL at nccl_path. On failure it returns NULL and
// sets *err to 1 (dlopen failed; *dlerr says why) or 2 (not NCCL: *dlerr
// names the missing symbol).
ortrain_nccl *ortrain_nccl_load(const char *nccl_path, int *err, const char **dlerr);
// ortrain_nccl_load_driver opens the CUDA driver at cuda_path once (NCCL
// itself loads without a GPU). It returns 1 when dlopen fails (*dlerr says
// why), 2 when a symbol is missing (*dlerr names it).
int ortrain_nccl_load_driver(ortrain_nccl *n, const char *cuda_path, const char **dlerr);

// NCCL calls return an ncclResult_t (0 is ncclSuccess).
int ortrain_nccl_version(ortrain_nccl *n, int *version);
const char *ortrain_nccl_error_string(ortrain_nccl *n, int result);
// ortrain_nccl_last_error is NCCL's last error message ("" before 2.13).
const char *ortrain_nccl_last_error(ortrain_nccl *n, void *comm);
int ortrain_nccl_unique_id(ortrain_nccl *n, ortrain_nccl_id *id);
int ortrain_nccl_comm_init(ortrain_nccl *n, void **comm, int nranks, const ortrain_nccl_id *id, int rank);
int ortrain_nccl_comm_destroy(ortrain_nccl *n, void *comm);
int ortrain_nccl_comm_abort(ortrain_nccl *n, void *comm);
int ortrain_nccl_async_error(ortrain_nccl *n, void *comm, int *result);
// ortrain_nccl_all_reduce reduces count elements of every buffer in place
// on stream, as one NCCL group (one launch for all of them).
int ortrain_nccl_all_reduce(ortrain_nccl *n, void *comm, void *const *bufs, const size_t *counts, int nbufs,
                            int dtype, int op, void *stream);

// CUDA driver calls return a CUresult (0 is CUDA_SUCCESS).
const char *ortrain_cu_error_string(ortrain_nccl *n, int result);
// ortrain_cu_use_device initialises the driver, retains the primary
// context of device and makes it current on the calling thread.
int ortrain_cu_use_device(ortrain_nccl *n, int device, void **ctx);
int ortrain_cu_release_device(ortrain_nccl *n, int device);
int ortrain_cu_stream_create(ortrain_nccl *n, void **stream);
int ortrain_cu_stream_query(ortrain_nccl *n, void *stream);
int ortrain_cu_stream_destroy(ortrain_nccl *n, void *stream);

#endif
