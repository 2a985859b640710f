// A stand-in for the CUDA driver (libcuda.so.1) that goes with nccl.c:
// device 0 exists, contexts and streams are tokens, and calls are
// recorded in $ORTRAIN_STANDIN_LOG. $STANDIN_CUDA_BUSY makes cuStreamQuery
// report CUDA_ERROR_NOT_READY that many times after each all-reduce (-1:
// for ever, a peer that never joins).
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

pthread_t standin_current_thread;
int standin_current_device = -1;
static int busy_left;
static int (*query_hook)(void);

// standin_set_query_hook: the stand-in NCCL's pending work, finished or
// reported busy by cuStreamQuery.
void standin_set_query_hook(int (*hook)(void)) { query_hook = hook; }

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

int cuInit(unsigned flags) { logf_("cuInit %u", flags); return 0; }

int cuGetErrorName(int r, const char **s) {
  *s = r == 100 ? "CUDA_ERROR_NO_DEVICE" : r == 101 ? "CUDA_ERROR_INVALID_DEVICE" : "CUDA_ERROR_UNKNOWN";
  return 0;
}

int cuDeviceGet(int *dev, int ordinal) {
  if (ordinal != 0) return 101;
  *dev = ordinal;
  return 0;
}

static int ctx_token;
int cuDevicePrimaryCtxRetain(void **ctx, int dev) { logf_("cuDevicePrimaryCtxRetain %d", dev); *ctx = &ctx_token; return 0; }
int cuDevicePrimaryCtxRelease_v2(int dev) { logf_("cuDevicePrimaryCtxRelease %d", dev); return 0; }

int cuCtxSetCurrent(void *ctx) {
  (void)ctx;
  standin_current_thread = pthread_self();
  standin_current_device = 0;
  logf_("cuCtxSetCurrent");
  return 0;
}

static int stream_token;
int cuStreamCreate(void **s, unsigned flags) {
  logf_("cuStreamCreate flags=%u stream=%p", flags, (void *)&stream_token);
  *s = &stream_token;
  return 0;
}

// standin_enqueued is called by the stand-in NCCL for every all-reduce.
void standin_enqueued(void) {
  const char *b = getenv("STANDIN_CUDA_BUSY");
  busy_left = b ? atoi(b) : 0;
}

int cuStreamQuery(void *s) {
  (void)s;
  if (busy_left != 0) {
    if (busy_left > 0) busy_left--;
    return 600; // CUDA_ERROR_NOT_READY
  }
  if (query_hook) {
    int r = query_hook();
    if (r) return r;
  }
  logf_("cuStreamQuery done");
  return 0;
}

int cuStreamDestroy_v2(void *s) { (void)s; logf_("cuStreamDestroy"); return 0; }
