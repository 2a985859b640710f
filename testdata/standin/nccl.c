// A stand-in for libnccl.so.2, for tests on hosts without a GPU
// (internal/testenv.StandInNCCL builds it with gcc, linked to the
// stand-in driver, cuda.c, whose state it reads). It records every call
// in the file $ORTRAIN_STANDIN_LOG, one line each, and reduces "device"
// buffers that are host memory (the stand-in device) as if every other
// rank held the same buffer: a sum multiplies by the number of ranks, an
// average and a max leave the buffer as it is. With $STANDIN_NCCL_DIR set
// (a fresh folder per job), the ranks of a job on one host reduce for
// real, through files in that folder: ncclAllReduce writes this rank's
// buffer and returns, as NCCL only enqueues; cuStreamQuery reports the
// stream busy until every rank's buffer of that all-reduce is there, then
// reduces them in rank order (an average multiplies each by 1/N first, as
// ncclAvg does) into the buffer.
//
// Faults on request: $STANDIN_NCCL_VERSION (default 23007) is what
// ncclGetVersion reports; $STANDIN_NCCL_ASYNC_ERROR makes
// ncclCommGetAsyncError report that ncclResult_t (6: a remote error);
// $STANDIN_NCCL_STOP=R:K makes rank R stop itself (SIGSTOP) at its
// all-reduce number K (from 0), a process that freezes inside NCCL.
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct { char internal[128]; } ncclUniqueId;
typedef struct { int nranks, rank; long seq; } comm_t;

// All-reduces written but not yet reduced (with $STANDIN_NCCL_DIR).
typedef struct { float *buf; size_t count; int op, nranks; long seq; } pending_t;
static pending_t pending[4096];
static int npending;

// Set by the stand-in driver (cuda.c) when a context is made current.
extern pthread_t standin_current_thread;
extern int standin_current_device;
void standin_enqueued(void);
void standin_set_query_hook(int (*hook)(void));

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
  c->seq = 0;
  *comm = c;
  return 0;
}

int ncclCommDestroy(comm_t *c) { logf_("ncclCommDestroy"); free(c); return 0; }
int ncclCommAbort(comm_t *c) { logf_("ncclCommAbort"); npending = 0; free(c); return 0; }

static void part(char *path, size_t n, long seq, int rank) {
  snprintf(path, n, "%s/%ld.%d", getenv("STANDIN_NCCL_DIR"), seq, rank);
}

// reduce_pending finishes the pending all-reduces whose buffers every rank
// has written: 600 (CUDA_ERROR_NOT_READY) while one is missing.
static int reduce_pending(void) {
  char path[4096];
  while (npending > 0) {
    pending_t *p = &pending[0];
    for (int r = 0; r < p->nranks; r++) {
      part(path, sizeof path, p->seq, r);
      FILE *f = fopen(path, "rb");
      if (!f) return 600;
      fclose(f);
    }
    float *in = malloc(p->count * sizeof(float) + 1);
    if (!in) return 2;
    for (size_t i = 0; i < p->count; i++) p->buf[i] = 0;
    for (int r = 0; r < p->nranks; r++) {
      part(path, sizeof path, p->seq, r);
      FILE *f = fopen(path, "rb");
      size_t got = f ? fread(in, sizeof(float), p->count, f) : 0;
      if (f) fclose(f);
      if (got != p->count) { free(in); return 2; }
      for (size_t i = 0; i < p->count; i++) {
        float x = p->op == 4 ? in[i] * (1.0f / (float)p->nranks) : in[i];
        if (p->op == 2) p->buf[i] = (r == 0 || x > p->buf[i]) ? x : p->buf[i];
        else p->buf[i] += x;
      }
    }
    free(in);
    memmove(pending, pending + 1, (size_t)(npending - 1) * sizeof *pending);
    npending--;
  }
  return 0;
}

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
  if (getenv("STANDIN_NCCL_DIR") && c->nranks > 1) {
    int stop_rank = -1;
    long stop_seq = -1;
    const char *stop = getenv("STANDIN_NCCL_STOP");
    if (stop && sscanf(stop, "%d:%ld", &stop_rank, &stop_seq) == 2 && stop_rank == c->rank && stop_seq == c->seq)
      raise(SIGSTOP);
    if (npending == (int)(sizeof pending / sizeof *pending)) return 3;
    char path[4096], tmp[4200];
    part(path, sizeof path, c->seq, c->rank);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "wb");
    if (!f || fwrite(x, sizeof(float), count, f) != count) {
      if (f) fclose(f);
      return 2;
    }
    fclose(f);
    if (rename(tmp, path)) return 2;
    pending[npending++] = (pending_t){x, count, op, c->nranks, c->seq++};
    standin_set_query_hook(reduce_pending);
    return 0;
  }
  if (op == 0)
    for (size_t i = 0; i < count; i++) x[i] *= (float)c->nranks;
  return 0;
}
