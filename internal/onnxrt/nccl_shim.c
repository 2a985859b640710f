#include "nccl_shim.h"
#include <dlfcn.h>
#include <stdlib.h>

struct ortrain_nccl {
  void *nccl, *cuda;
  // NCCL
  int (*GetVersion)(int *);
  const char *(*GetErrorString)(int);
  const char *(*GetLastError)(void *); // optional (NCCL 2.13+)
  int (*GetUniqueId)(ortrain_nccl_id *);
  int (*CommInitRank)(void **, int, ortrain_nccl_id, int);
  int (*CommDestroy)(void *);
  int (*CommAbort)(void *);
  int (*CommGetAsyncError)(void *, int *);
  int (*AllReduce)(const void *, void *, size_t, int, int, void *, void *);
  int (*GroupStart)(void);
  int (*GroupEnd)(void);
  // CUDA driver; the names are those cuda.h maps the calls to.
  int (*Init)(unsigned);
  int (*GetErrorName)(int, const char **);
  int (*DeviceGet)(int *, int);
  int (*PrimaryCtxRetain)(void **, int);
  int (*PrimaryCtxRelease)(int);
  int (*CtxSetCurrent)(void *);
  int (*StreamCreate)(void **, unsigned);
  int (*StreamQuery)(void *);
  int (*StreamDestroy)(void *);
};

static void *need(void *h, const char *name, int code, int *err, const char **dlerr) {
  void *p = dlsym(h, name);
  if (!p && !*err) {
    *err = code;
    *dlerr = name;
  }
  return p;
}

ortrain_nccl *ortrain_nccl_load(const char *nccl_path, int *err, const char **dlerr) {
  *err = 0;
  *dlerr = NULL;
  void *h = dlopen(nccl_path, RTLD_NOW | RTLD_LOCAL);
  if (!h) {
    *err = 1;
    *dlerr = dlerror();
    return NULL;
  }
  ortrain_nccl *n = calloc(1, sizeof *n);
  if (!n) {
    *err = 1;
    *dlerr = "out of memory";
    return NULL;
  }
  n->nccl = h;
#define NCCL(f) *(void **)&n->f = need(h, "nccl" #f, 2, err, dlerr)
  NCCL(GetVersion); NCCL(GetErrorString); NCCL(GetUniqueId); NCCL(CommInitRank); NCCL(CommDestroy);
  NCCL(CommAbort); NCCL(CommGetAsyncError); NCCL(AllReduce); NCCL(GroupStart); NCCL(GroupEnd);
#undef NCCL
  *(void **)&n->GetLastError = dlsym(h, "ncclGetLastError");
  if (*err) {
    free(n);
    return NULL;
  }
  return n;
}

int ortrain_nccl_load_driver(ortrain_nccl *n, const char *cuda_path, const char **dlerr) {
  *dlerr = NULL;
  if (n->cuda) return 0;
  // The handles stay open for the life of the process, as ONNX Runtime's.
  void *c = dlopen(cuda_path, RTLD_NOW | RTLD_LOCAL);
  if (!c) {
    *dlerr = dlerror();
    return 1;
  }
  int err = 0;
#define CU(f, name) *(void **)&n->f = need(c, name, 2, &err, dlerr)
  CU(Init, "cuInit"); CU(GetErrorName, "cuGetErrorName"); CU(DeviceGet, "cuDeviceGet");
  CU(PrimaryCtxRetain, "cuDevicePrimaryCtxRetain"); CU(PrimaryCtxRelease, "cuDevicePrimaryCtxRelease_v2");
  CU(CtxSetCurrent, "cuCtxSetCurrent"); CU(StreamCreate, "cuStreamCreate"); CU(StreamQuery, "cuStreamQuery");
  CU(StreamDestroy, "cuStreamDestroy_v2");
#undef CU
  if (!err) n->cuda = c;
  return err;
}

int ortrain_nccl_version(ortrain_nccl *n, int *version) { return n->GetVersion(version); }

const char *ortrain_nccl_error_string(ortrain_nccl *n, int result) {
  const char *s = n->GetErrorString(result);
  return s ? s : "";
}

const char *ortrain_nccl_last_error(ortrain_nccl *n, void *comm) {
  const char *s = n->GetLastError ? n->GetLastError(comm) : NULL;
  return s ? s : "";
}

int ortrain_nccl_unique_id(ortrain_nccl *n, ortrain_nccl_id *id) { return n->GetUniqueId(id); }

int ortrain_nccl_comm_init(ortrain_nccl *n, void **comm, int nranks, const ortrain_nccl_id *id, int rank) {
  return n->CommInitRank(comm, nranks, *id, rank);
}

int ortrain_nccl_comm_destroy(ortrain_nccl *n, void *comm) { return n->CommDestroy(comm); }
int ortrain_nccl_comm_abort(ortrain_nccl *n, void *comm) { return n->CommAbort(comm); }
int ortrain_nccl_async_error(ortrain_nccl *n, void *comm, int *result) { return n->CommGetAsyncError(comm, result); }

int ortrain_nccl_all_reduce(ortrain_nccl *n, void *comm, void *const *bufs, const size_t *counts, int nbufs,
                            int dtype, int op, void *stream) {
  int rc = n->GroupStart();
  if (rc) return rc;
  int first = 0;
  for (int i = 0; i < nbufs && !first; i++)
    first = n->AllReduce(bufs[i], bufs[i], counts[i], dtype, op, comm, stream);
  // The group is closed whatever happened, so NCCL's group state stays sane.
  rc = n->GroupEnd();
  return first ? first : rc;
}

const char *ortrain_cu_error_string(ortrain_nccl *n, int result) {
  const char *s = NULL;
  if (n->GetErrorName(result, &s) != 0 || !s) return "";
  return s;
}

int ortrain_cu_use_device(ortrain_nccl *n, int device, void **ctx) {
  int rc = n->Init(0);
  int dev = 0;
  if (!rc) rc = n->DeviceGet(&dev, device);
  if (!rc) rc = n->PrimaryCtxRetain(ctx, dev);
  if (!rc) rc = n->CtxSetCurrent(*ctx);
  return rc;
}

int ortrain_cu_release_device(ortrain_nccl *n, int device) {
  int dev = 0;
  int rc = n->DeviceGet(&dev, device);
  return rc ? rc : n->PrimaryCtxRelease(dev);
}

// CU_STREAM_NON_BLOCKING: no implicit ordering with the legacy default stream.
int ortrain_cu_stream_create(ortrain_nccl *n, void **stream) { return n->StreamCreate(stream, 1); }
int ortrain_cu_stream_query(ortrain_nccl *n, void *stream) { return n->StreamQuery(stream); }
int ortrain_cu_stream_destroy(ortrain_nccl *n, void *stream) { return n->StreamDestroy(stream); }
