// A stand-in for libnccl.so.2, for tests on hosts without a GPU
// (internal/testenv.StandInNCCL builds it with gcc, linked to the
// stand-in driver, cuda.c, whose state it reads). It records every call
// in the file $ORTRAIN_STANDIN_LOG, one line each, and reduces "device"
// buffers that are host memory (the stand-in device) as if every other
// rank held the same buffer: a sum multiplies by the number of ranks, an
// average and a max leave the buffer as it is.
//
// Faults on request: $STANDIN_NCCL_VERSION (default 23007) is what
// ncclGetVersion reports; $STANDIN_NCCL_ASYNC_ERROR makes
// ncclCommGetAsyncError report that ncclResult_t (6: a remote error).
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct { char internal[128]; } ncclUniqueId;
typedef struct { int nranks, rank; } comm_t;

// Set by the stand-in driver (cuda.c) when a context is made current.
extern pthread_t standin_current_thread;
extern int standin_current_device;
void standin_enqueued(void);

static void logf_(const char *fmt, ...) {
  const char *path = getenv("ORTRAIN_STANDIN_LOG");
  if (!path) return;
  FILE *f = fopen(path, "a");
  if (!f) return;
  va_list ap;
  va_start(ap, fmt);
  vfprintf(f, fmt, ap);
  va_end(ap);
  fputc('\n', f);
  fclose(f);
}

static const char *thread(void) {
  return pthread_equal(pthread_self(), standin_current_thread) ? "context-thread" : "other-thread";
}

int ncclGetVersion(int *v) {
  const char *s = getenv("STANDIN_NCCL_VERSION");
  *v = s ? atoi(s) : 23007;
  logf_("ncclGetVersion");
  return 0;
}

const char *ncclGetErrorString(int r) {
  switch (r) {
  case 0: return "no error";
  case 4: return "invalid argument";
  case 6: return "remote process exited or there was a network error";
  }
  return "unknown result code";
}

const char *ncclGetLastError(void *comm) { (void)comm; return ""; }

int ncclGetUniqueId(ncclUniqueId *id) {
  for (int i = 0; i < 128; i++) id->internal[i] = (char)(i * 7 + 3);
  logf_("ncclGetUniqueId");
  return 0;
}

int ncclCommInitRank(comm_t **comm, int nranks, ncclUniqueId id, int rank) {
  unsigned char *b = (unsigned char *)id.internal;
  logf_("ncclCommInitRank nranks=%d rank=%d id=%02x%02x%02x%02x device=%d %s", nranks, rank, b[0], b[1], b[2], b[127],
        standin_current_device, thread());
  comm_t *c = malloc(sizeof *c);
  if (!c) return 2;
  c->nranks = nranks;
  c->rank = rank;
  *comm = c;
  return 0;
}

int ncclCommDestroy(comm_t *c) { logf_("ncclCommDestroy"); free(c); return 0; }
int ncclCommAbort(comm_t *c) { logf_("ncclCommAbort"); free(c); return 0; }

int ncclCommGetAsyncError(comm_t *c, int *r) {
  (void)c;
  const char *s = getenv("STANDIN_NCCL_ASYNC_ERROR");
  *r = s ? atoi(s) : 0;
  return 0;
}

int ncclGroupStart(void) { logf_("ncclGroupStart"); return 0; }
int ncclGroupEnd(void) { logf_("ncclGroupEnd"); return 0; }

int ncclAllReduce(const void *send, void *recv, size_t count, int dtype, int op, comm_t *c, void *stream) {
  if (dtype != 7) return 4; // the stand-in reduces float32 only
  float *x = recv;
  double sum = 0;
  for (size_t i = 0; i < count; i++) sum += x[i];
  logf_("ncclAllReduce count=%zu dtype=%d op=%d in-place=%d stream=%p sum=%g %s", count, dtype, op, send == recv,
        stream, sum, thread());
  standin_enqueued();
  if (op == 0)
    for (size_t i = 0; i < count; i++) x[i] *= (float)c->nranks;
  return 0;
}
