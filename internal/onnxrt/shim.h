// A small C shim over the ONNX Runtime C API for what onnxruntime_go lacks:
// IoBinding that keeps ORT-allocated values as they are (device memory,
// rank-0 tensors), device allocation, and tensor introspection.
//
// The OrtApi struct is a table of function pointers whose order ONNX Runtime
// keeps append-only across releases, so the shim calls entries by index
// (computed with offsetof from onnxruntime_c_api.h of API version 24) rather
// than copying the whole header into this repository.
#ifndef ORTRAIN_SHIM_H
#define ORTRAIN_SHIM_H

#include <stddef.h>
#include <stdint.h>

typedef struct OrtStatus OrtStatus;
typedef struct OrtSession OrtSession;
typedef struct OrtValue OrtValue;
typedef struct OrtIoBinding OrtIoBinding;
typedef struct OrtMemoryInfo OrtMemoryInfo;
typedef struct OrtAllocator OrtAllocator;
typedef struct OrtTensorTypeAndShapeInfo OrtTensorTypeAndShapeInfo;
typedef struct OrtEnv OrtEnv;
typedef struct OrtArenaCfg OrtArenaCfg;
typedef struct OrtKeyValuePairs OrtKeyValuePairs;
typedef struct OrtTypeInfo OrtTypeInfo;

// ortrain_load opens the library and fetches the API table. On failure it
// returns NULL and sets *err to 1 (dlopen), 2 (no OrtGetApiBase) or 3 (API
// version unsupported: library too old). *version receives the library's
// version string when available.
const void *ortrain_load(const char *path, uint32_t api_version, int *err, const char **version, const char **dlerr);

const char *ortrain_status_message(const void *api, OrtStatus *s);
void ortrain_status_release(const void *api, OrtStatus *s);

OrtStatus *ortrain_available_providers(const void *api, char ***providers, int *n);
OrtStatus *ortrain_release_providers(const void *api, char **providers, int n);

OrtStatus *ortrain_binding_create(const void *api, OrtSession *sess, OrtIoBinding **out);
void ortrain_binding_release(const void *api, OrtIoBinding *b);
OrtStatus *ortrain_binding_input(const void *api, OrtIoBinding *b, const char *name, const OrtValue *v);
OrtStatus *ortrain_binding_output(const void *api, OrtIoBinding *b, const char *name, const OrtValue *v);
OrtStatus *ortrain_binding_output_device(const void *api, OrtIoBinding *b, const char *name, const OrtMemoryInfo *mi);
OrtStatus *ortrain_binding_outputs(const void *api, OrtIoBinding *b, OrtValue ***values, size_t *n);
void ortrain_binding_free_output_array(const void *api, OrtValue **values);
void ortrain_binding_clear(const void *api, OrtIoBinding *b);
OrtStatus *ortrain_binding_run(const void *api, OrtSession *sess, OrtIoBinding *b);

OrtStatus *ortrain_memory_info(const void *api, const char *name, int device_id, OrtMemoryInfo **out);
void ortrain_memory_info_release(const void *api, OrtMemoryInfo *mi);
OrtStatus *ortrain_allocator(const void *api, OrtSession *sess, const OrtMemoryInfo *mi, OrtAllocator **out);
void ortrain_allocator_release(const void *api, OrtAllocator *a);
OrtStatus *ortrain_default_allocator(const void *api, OrtAllocator **out);

OrtStatus *ortrain_tensor_alloc(const void *api, OrtAllocator *a, const int64_t *shape, size_t rank, int elem_type, OrtValue **out);
OrtStatus *ortrain_tensor_with_data(const void *api, const OrtMemoryInfo *mi, void *data, size_t bytes, const int64_t *shape, size_t rank, int elem_type, OrtValue **out);
void ortrain_value_release(const void *api, OrtValue *v);
OrtStatus *ortrain_tensor_data(const void *api, OrtValue *v, void **data);
// ortrain_tensor_info fills elem type, rank and up to max_rank dims.
OrtStatus *ortrain_tensor_info(const void *api, const OrtValue *v, int *elem_type, size_t *rank, int64_t *dims, size_t max_rank);
// ortrain_tensor_location reports the memory info name ("Cpu", "Cuda", ...) and device id.
OrtStatus *ortrain_tensor_location(const void *api, const OrtValue *v, const char **name, int *id);

// ortrain_register_cpu_arena registers one CPU arena with the process's
// environment, for sessions made with session.use_env_allocators.
OrtStatus *ortrain_register_cpu_arena(const void *api);
// ortrain_allocator_stats writes an allocator's statistics into buf as
// "key=value" lines (empty for an allocator that keeps none).
OrtStatus *ortrain_allocator_stats(const void *api, const OrtAllocator *a, char *buf, size_t cap);

// ortrain_session_io_count gives the number of inputs (output = 0) or
// outputs (output = 1) of a session; ortrain_session_io describes the i-th:
// its name (malloc'd: the caller frees it, also on failure), ONNX type,
// and for tensors the element type, rank and up to max_rank dimensions
// (-1 where symbolic). Read from the session itself, so that no second,
// default-option session is made just to learn them.
OrtStatus *ortrain_session_io_count(const void *api, const OrtSession *sess, int output, size_t *n);
OrtStatus *ortrain_session_io(const void *api, const OrtSession *sess, int output, size_t i, char **name, int *onnx_type,
                              int *elem_type, size_t *rank, int64_t *dims, size_t max_rank);

#endif
