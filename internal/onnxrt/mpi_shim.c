#include "mpi_shim.h"
#include <dlfcn.h>
#include <stdlib.h>
#include <string.h>

// Handles as the two families define them: Open MPI's are the addresses of
// global objects (looked up with dlsym), MPICH's are fixed ints from its
// mpi.h (MPICH 3 and 4 share them; so do Intel MPI, MVAPICH and Cray MPICH).
struct ortrain_mpi {
  int family;
  void *h;
  intptr_t comm_world, errors_return, any_source, dtypes[3], ops[2];
  void *in_place, *status_ignore;
  void *Init_thread, *Initialized, *Finalized, *Finalize, *Abort, *Comm_rank, *Comm_size,
      *Comm_set_errhandler, *Error_string, *Get_library_version, *Iallreduce, *Ibcast,
      *Iallgatherv, *Ibarrier, *Isend, *Irecv, *Test, *Cancel, *Request_free;
};

// MPICH mpi.h values.
#define MPICH_COMM_WORLD 0x44000000
#define MPICH_BYTE 0x4c00010d
#define MPICH_FLOAT 0x4c00040a
#define MPICH_DOUBLE 0x4c00080b
#define MPICH_SUM 0x58000003
#define MPICH_MAX 0x58000001
#define MPICH_ERRORS_RETURN 0x54000001

static void *need(ortrain_mpi *m, const char *name, int *err, const char **dlerr) {
  void *p = dlsym(m->h, name);
  if (!p && !*err) {
    *err = 2;
    *dlerr = name;
  }
  return p;
}

// mpich_version reports whether the library calls itself MPICH or one of
// the MPIs built on it (MPI_Get_library_version may precede MPI_Init).
static int mpich_version(ortrain_mpi *m) {
  char *v = calloc(1, 8192);
  int len = 0, yes = 0;
  if (v && ((int (*)(char *, int *))m->Get_library_version)(v, &len) == 0)
    yes = strstr(v, "MPICH") || strstr(v, "Intel(R) MPI") || strstr(v, "MVAPICH");
  free(v);
  return yes;
}

ortrain_mpi *ortrain_mpi_load(const char *path, int *err, const char **dlerr) {
  *err = 0;
  *dlerr = NULL;
  // RTLD_GLOBAL: Open MPI's plugins resolve symbols of libmpi itself.
  void *h = dlopen(path, RTLD_NOW | RTLD_GLOBAL);
  if (!h) {
    *err = 1;
    *dlerr = dlerror();
    return NULL;
  }
  ortrain_mpi *m = calloc(1, sizeof *m);
  if (!m) {
    *err = 1;
    *dlerr = "out of memory";
    return NULL;
  }
  m->h = h;
#define NEED(f) m->f = need(m, "MPI_" #f, err, dlerr)
  NEED(Init_thread); NEED(Initialized); NEED(Finalized); NEED(Finalize); NEED(Abort);
  NEED(Comm_rank); NEED(Comm_size); NEED(Comm_set_errhandler); NEED(Error_string);
  NEED(Get_library_version); NEED(Iallreduce); NEED(Ibcast); NEED(Iallgatherv); NEED(Ibarrier);
  NEED(Isend); NEED(Irecv); NEED(Test); NEED(Cancel); NEED(Request_free);
#undef NEED
  if (*err) {
    free(m);
    return NULL;
  }
  void *world = dlsym(h, "ompi_mpi_comm_world");
  if (world) {
    m->family = ORTRAIN_MPI_OPENMPI;
    m->comm_world = (intptr_t)world;
    const char *names[] = {"ompi_mpi_errors_return", "ompi_mpi_byte", "ompi_mpi_float", "ompi_mpi_double",
                           "ompi_mpi_op_sum", "ompi_mpi_op_max"};
    intptr_t *slots[] = {&m->errors_return, &m->dtypes[0], &m->dtypes[1], &m->dtypes[2], &m->ops[0], &m->ops[1]};
    for (int i = 0; i < 6; i++) {
      void *p = dlsym(h, names[i]);
      if (!p) {
        *err = 2;
        *dlerr = names[i];
        free(m);
        return NULL;
      }
      *slots[i] = (intptr_t)p;
    }
    m->any_source = -1;
    m->in_place = (void *)1;
    m->status_ignore = NULL;
    return m;
  }
  if (dlsym(h, "MPIR_Err_return_comm") || mpich_version(m)) {
    m->family = ORTRAIN_MPI_MPICH;
    m->comm_world = MPICH_COMM_WORLD;
    m->errors_return = MPICH_ERRORS_RETURN;
    m->dtypes[0] = MPICH_BYTE;
    m->dtypes[1] = MPICH_FLOAT;
    m->dtypes[2] = MPICH_DOUBLE;
    m->ops[0] = MPICH_SUM;
    m->ops[1] = MPICH_MAX;
    m->any_source = -2;
    m->in_place = (void *)-1;
    m->status_ignore = (void *)1;
    return m;
  }
  *err = 3;
  free(m);
  return NULL;
}

int ortrain_mpi_family(const ortrain_mpi *m) { return m->family; }

// H is a handle argument of the family's type; REQ a request pointer.
#define OMPI(m) ((m)->family == ORTRAIN_MPI_OPENMPI)
typedef void *ph;
typedef int ih;

int ortrain_mpi_initialized(ortrain_mpi *m, int *flag) { return ((int (*)(int *))m->Initialized)(flag); }
int ortrain_mpi_finalized(ortrain_mpi *m, int *flag) { return ((int (*)(int *))m->Finalized)(flag); }

int ortrain_mpi_init(ortrain_mpi *m, int *provided) {
  int rc = ((int (*)(int *, char ***, int, int *))m->Init_thread)(NULL, NULL, 1 /* MPI_THREAD_FUNNELED */, provided);
  if (rc) return rc;
  if (OMPI(m)) return ((int (*)(ph, ph))m->Comm_set_errhandler)((ph)m->comm_world, (ph)m->errors_return);
  return ((int (*)(ih, ih))m->Comm_set_errhandler)((ih)m->comm_world, (ih)m->errors_return);
}

int ortrain_mpi_finalize(ortrain_mpi *m) { return ((int (*)(void))m->Finalize)(); }

int ortrain_mpi_abort(ortrain_mpi *m, int code) {
  if (OMPI(m)) return ((int (*)(ph, int))m->Abort)((ph)m->comm_world, code);
  return ((int (*)(ih, int))m->Abort)((ih)m->comm_world, code);
}

int ortrain_mpi_rank(ortrain_mpi *m, int *rank) {
  if (OMPI(m)) return ((int (*)(ph, int *))m->Comm_rank)((ph)m->comm_world, rank);
  return ((int (*)(ih, int *))m->Comm_rank)((ih)m->comm_world, rank);
}

int ortrain_mpi_size(ortrain_mpi *m, int *size) {
  if (OMPI(m)) return ((int (*)(ph, int *))m->Comm_size)((ph)m->comm_world, size);
  return ((int (*)(ih, int *))m->Comm_size)((ih)m->comm_world, size);
}

void ortrain_mpi_error_string(ortrain_mpi *m, int code, char *buf, int n) {
  // MPI writes up to MPI_MAX_ERROR_STRING (512 in MPICH) bytes.
  char tmp[1024];
  int len = 0;
  buf[0] = 0;
  if (((int (*)(int, char *, int *))m->Error_string)(code, tmp, &len) == 0) {
    if (len < 0) len = 0;
    if (len >= (int)sizeof tmp) len = sizeof tmp - 1;
    tmp[len] = 0;
    strncpy(buf, tmp, n - 1);
    buf[n - 1] = 0;
  }
}

void ortrain_mpi_library_version(ortrain_mpi *m, char *buf, int n) {
  // MPI_MAX_LIBRARY_VERSION_STRING is 8192 in MPICH, 256 in Open MPI.
  char *tmp = calloc(1, 8192);
  int len = 0;
  buf[0] = 0;
  if (tmp && ((int (*)(char *, int *))m->Get_library_version)(tmp, &len) == 0) {
    strncpy(buf, tmp, n - 1);
    buf[n - 1] = 0;
  }
  free(tmp);
}

static void *reqp(ortrain_mpi *m, ortrain_mpi_request *r) { return OMPI(m) ? (void *)&r->p : (void *)&r->i; }

int ortrain_mpi_iallreduce(ortrain_mpi *m, void *buf, int count, int dtype, int op, ortrain_mpi_request *req) {
  if (OMPI(m))
    return ((int (*)(const void *, void *, int, ph, ph, ph, void *))m->Iallreduce)(
        m->in_place, buf, count, (ph)m->dtypes[dtype], (ph)m->ops[op], (ph)m->comm_world, reqp(m, req));
  return ((int (*)(const void *, void *, int, ih, ih, ih, void *))m->Iallreduce)(
      m->in_place, buf, count, (ih)m->dtypes[dtype], (ih)m->ops[op], (ih)m->comm_world, reqp(m, req));
}

int ortrain_mpi_ibcast(ortrain_mpi *m, void *buf, int bytes, int root, ortrain_mpi_request *req) {
  if (OMPI(m))
    return ((int (*)(void *, int, ph, int, ph, void *))m->Ibcast)(buf, bytes, (ph)m->dtypes[0], root, (ph)m->comm_world, reqp(m, req));
  return ((int (*)(void *, int, ih, int, ih, void *))m->Ibcast)(buf, bytes, (ih)m->dtypes[0], root, (ih)m->comm_world, reqp(m, req));
}

int ortrain_mpi_iallgatherv(ortrain_mpi *m, const void *send, int bytes, void *recv, const int *counts, const int *displs, ortrain_mpi_request *req) {
  if (OMPI(m))
    return ((int (*)(const void *, int, ph, void *, const int *, const int *, ph, ph, void *))m->Iallgatherv)(
        send, bytes, (ph)m->dtypes[0], recv, counts, displs, (ph)m->dtypes[0], (ph)m->comm_world, reqp(m, req));
  return ((int (*)(const void *, int, ih, void *, const int *, const int *, ih, ih, void *))m->Iallgatherv)(
      send, bytes, (ih)m->dtypes[0], recv, counts, displs, (ih)m->dtypes[0], (ih)m->comm_world, reqp(m, req));
}

int ortrain_mpi_ibarrier(ortrain_mpi *m, ortrain_mpi_request *req) {
  if (OMPI(m)) return ((int (*)(ph, void *))m->Ibarrier)((ph)m->comm_world, reqp(m, req));
  return ((int (*)(ih, void *))m->Ibarrier)((ih)m->comm_world, reqp(m, req));
}

int ortrain_mpi_isend(ortrain_mpi *m, const void *buf, int bytes, int dest, int tag, ortrain_mpi_request *req) {
  if (OMPI(m))
    return ((int (*)(const void *, int, ph, int, int, ph, void *))m->Isend)(buf, bytes, (ph)m->dtypes[0], dest, tag, (ph)m->comm_world, reqp(m, req));
  return ((int (*)(const void *, int, ih, int, int, ih, void *))m->Isend)(buf, bytes, (ih)m->dtypes[0], dest, tag, (ih)m->comm_world, reqp(m, req));
}

int ortrain_mpi_irecv_any(ortrain_mpi *m, void *buf, int bytes, int tag, ortrain_mpi_request *req) {
  int src = (int)m->any_source;
  if (OMPI(m))
    return ((int (*)(void *, int, ph, int, int, ph, void *))m->Irecv)(buf, bytes, (ph)m->dtypes[0], src, tag, (ph)m->comm_world, reqp(m, req));
  return ((int (*)(void *, int, ih, int, int, ih, void *))m->Irecv)(buf, bytes, (ih)m->dtypes[0], src, tag, (ih)m->comm_world, reqp(m, req));
}

int ortrain_mpi_test(ortrain_mpi *m, ortrain_mpi_request *req, int *done) {
  return ((int (*)(void *, int *, void *))m->Test)(reqp(m, req), done, m->status_ignore);
}

int ortrain_mpi_cancel(ortrain_mpi *m, ortrain_mpi_request *req) { return ((int (*)(void *))m->Cancel)(reqp(m, req)); }

int ortrain_mpi_request_free(ortrain_mpi *m, ortrain_mpi_request *req) { return ((int (*)(void *))m->Request_free)(reqp(m, req)); }
