#include "shim.h"
#include <dlfcn.h>
#include <string.h>

// Indices into the OrtApi function table (ORT_API_VERSION 24).
enum {
  IDX_GetErrorMessage = 2,
  IDX_CreateTensorAsOrtValue = 48,
  IDX_CreateTensorWithDataAsOrtValue = 49,
  IDX_GetTensorMutableData = 51,
  IDX_GetTensorElementType = 60,
  IDX_GetDimensionsCount = 61,
  IDX_GetDimensions = 62,
  IDX_GetTensorTypeAndShape = 65,
  IDX_CreateMemoryInfo = 68,
  IDX_MemoryInfoGetName = 71,
  IDX_MemoryInfoGetId = 72,
  IDX_AllocatorFree = 76,
  IDX_GetAllocatorWithDefaultOptions = 78,
  IDX_ReleaseStatus = 93,
  IDX_ReleaseMemoryInfo = 94,
  IDX_ReleaseValue = 96,
  IDX_ReleaseTensorTypeAndShapeInfo = 99,
  IDX_GetAvailableProviders = 125,
  IDX_ReleaseAvailableProviders = 126,
  IDX_CreateAllocator = 131,
  IDX_ReleaseAllocator = 132,
  IDX_RunWithBinding = 133,
  IDX_CreateIoBinding = 134,
  IDX_ReleaseIoBinding = 135,
  IDX_BindInput = 136,
  IDX_BindOutput = 137,
  IDX_BindOutputToDevice = 138,
  IDX_GetBoundOutputValues = 140,
  IDX_ClearBoundInputs = 141,
  IDX_ClearBoundOutputs = 142,
  IDX_GetTensorMemoryInfo = 194,
  IDX_SessionGetInputCount = 30,
  IDX_SessionGetOutputCount = 31,
  IDX_SessionGetInputTypeInfo = 33,
  IDX_SessionGetOutputTypeInfo = 34,
  IDX_SessionGetInputName = 36,
  IDX_SessionGetOutputName = 37,
  IDX_CastTypeInfoToTensorInfo = 55,
  IDX_GetOnnxTypeFromTypeInfo = 56,
  IDX_ReleaseTypeInfo = 98,
  IDX_CreateEnv = 3,
  IDX_ReleaseEnv = 92,
  IDX_CreateAndRegisterAllocator = 144,
  IDX_ReleaseArenaCfg = 157,
  IDX_CreateArenaCfgV2 = 164,
  IDX_GetKeyValuePairs = 298,
  IDX_ReleaseKeyValuePairs = 300,
  IDX_AllocatorGetStats = 319,
};

typedef struct {
  const void *(*GetApi)(uint32_t version);
  const char *(*GetVersionString)(void);
} ApiBase;

#define FN(api, idx) (((void *const *)(api))[idx])

const void *ortrain_load(const char *path, uint32_t api_version, int *err, const char **version, const char **dlerr) {
  *err = 0;
  *version = NULL;
  *dlerr = NULL;
  void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
  if (!h) { *err = 1; *dlerr = dlerror(); return NULL; }
  const ApiBase *(*get_base)(void) = (const ApiBase *(*)(void))dlsym(h, "OrtGetApiBase");
  if (!get_base) { *err = 2; *dlerr = dlerror(); return NULL; }
  const ApiBase *base = get_base();
  if (!base) { *err = 2; return NULL; }
  *version = base->GetVersionString();
  const void *api = base->GetApi(api_version);
  if (!api) { *err = 3; return NULL; }
  // The handle stays open for the life of the process: ONNX Runtime does not
  // support being unloaded and reloaded.
  return api;
}

const char *ortrain_status_message(const void *api, OrtStatus *s) {
  return ((const char *(*)(const OrtStatus *))FN(api, IDX_GetErrorMessage))(s);
}
void ortrain_status_release(const void *api, OrtStatus *s) {
  ((void (*)(OrtStatus *))FN(api, IDX_ReleaseStatus))(s);
}

OrtStatus *ortrain_available_providers(const void *api, char ***providers, int *n) {
  return ((OrtStatus * (*)(char ***, int *)) FN(api, IDX_GetAvailableProviders))(providers, n);
}
OrtStatus *ortrain_release_providers(const void *api, char **providers, int n) {
  return ((OrtStatus * (*)(char **, int)) FN(api, IDX_ReleaseAvailableProviders))(providers, n);
}

OrtStatus *ortrain_binding_create(const void *api, OrtSession *sess, OrtIoBinding **out) {
  return ((OrtStatus * (*)(OrtSession *, OrtIoBinding **)) FN(api, IDX_CreateIoBinding))(sess, out);
}
void ortrain_binding_release(const void *api, OrtIoBinding *b) {
  ((void (*)(OrtIoBinding *))FN(api, IDX_ReleaseIoBinding))(b);
}
OrtStatus *ortrain_binding_input(const void *api, OrtIoBinding *b, const char *name, const OrtValue *v) {
  return ((OrtStatus * (*)(OrtIoBinding *, const char *, const OrtValue *)) FN(api, IDX_BindInput))(b, name, v);
}
OrtStatus *ortrain_binding_output(const void *api, OrtIoBinding *b, const char *name, const OrtValue *v) {
  return ((OrtStatus * (*)(OrtIoBinding *, const char *, const OrtValue *)) FN(api, IDX_BindOutput))(b, name, v);
}
OrtStatus *ortrain_binding_output_device(const void *api, OrtIoBinding *b, const char *name, const OrtMemoryInfo *mi) {
  return ((OrtStatus * (*)(OrtIoBinding *, const char *, const OrtMemoryInfo *)) FN(api, IDX_BindOutputToDevice))(b, name, mi);
}
OrtStatus *ortrain_binding_outputs(const void *api, OrtIoBinding *b, OrtValue ***values, size_t *n) {
  OrtAllocator *alloc = NULL;
  OrtStatus *s = ((OrtStatus * (*)(OrtAllocator **)) FN(api, IDX_GetAllocatorWithDefaultOptions))(&alloc);
  if (s) return s;
  return ((OrtStatus * (*)(const OrtIoBinding *, OrtAllocator *, OrtValue ***, size_t *))
              FN(api, IDX_GetBoundOutputValues))(b, alloc, values, n);
}
void ortrain_binding_free_output_array(const void *api, OrtValue **values) {
  OrtAllocator *alloc = NULL;
  OrtStatus *s = ((OrtStatus * (*)(OrtAllocator **)) FN(api, IDX_GetAllocatorWithDefaultOptions))(&alloc);
  if (s) { ortrain_status_release(api, s); return; }
  s = ((OrtStatus * (*)(OrtAllocator *, void *)) FN(api, IDX_AllocatorFree))(alloc, values);
  if (s) ortrain_status_release(api, s);
}
void ortrain_binding_clear(const void *api, OrtIoBinding *b) {
  ((void (*)(OrtIoBinding *))FN(api, IDX_ClearBoundInputs))(b);
  ((void (*)(OrtIoBinding *))FN(api, IDX_ClearBoundOutputs))(b);
}
OrtStatus *ortrain_binding_run(const void *api, OrtSession *sess, OrtIoBinding *b) {
  return ((OrtStatus * (*)(OrtSession *, const void *, const OrtIoBinding *)) FN(api, IDX_RunWithBinding))(sess, NULL, b);
}

OrtStatus *ortrain_memory_info(const void *api, const char *name, int device_id, OrtMemoryInfo **out) {
  // OrtDeviceAllocator = 0, OrtMemTypeDefault = 0.
  return ((OrtStatus * (*)(const char *, int, int, int, OrtMemoryInfo **)) FN(api, IDX_CreateMemoryInfo))(name, 0, device_id, 0, out);
}
void ortrain_memory_info_release(const void *api, OrtMemoryInfo *mi) {
  ((void (*)(OrtMemoryInfo *))FN(api, IDX_ReleaseMemoryInfo))(mi);
}
OrtStatus *ortrain_allocator(const void *api, OrtSession *sess, const OrtMemoryInfo *mi, OrtAllocator **out) {
  return ((OrtStatus * (*)(const OrtSession *, const OrtMemoryInfo *, OrtAllocator **)) FN(api, IDX_CreateAllocator))(sess, mi, out);
}
void ortrain_allocator_release(const void *api, OrtAllocator *a) {
  ((void (*)(OrtAllocator *))FN(api, IDX_ReleaseAllocator))(a);
}
OrtStatus *ortrain_default_allocator(const void *api, OrtAllocator **out) {
  return ((OrtStatus * (*)(OrtAllocator **)) FN(api, IDX_GetAllocatorWithDefaultOptions))(out);
}

OrtStatus *ortrain_tensor_alloc(const void *api, OrtAllocator *a, const int64_t *shape, size_t rank, int elem_type, OrtValue **out) {
  return ((OrtStatus * (*)(OrtAllocator *, const int64_t *, size_t, int, OrtValue **)) FN(api, IDX_CreateTensorAsOrtValue))(a, shape, rank, elem_type, out);
}
OrtStatus *ortrain_tensor_with_data(const void *api, const OrtMemoryInfo *mi, void *data, size_t bytes, const int64_t *shape, size_t rank, int elem_type, OrtValue **out) {
  return ((OrtStatus * (*)(const OrtMemoryInfo *, void *, size_t, const int64_t *, size_t, int, OrtValue **))
              FN(api, IDX_CreateTensorWithDataAsOrtValue))(mi, data, bytes, shape, rank, elem_type, out);
}
void ortrain_value_release(const void *api, OrtValue *v) {
  ((void (*)(OrtValue *))FN(api, IDX_ReleaseValue))(v);
}
OrtStatus *ortrain_tensor_data(const void *api, OrtValue *v, void **data) {
  return ((OrtStatus * (*)(OrtValue *, void **)) FN(api, IDX_GetTensorMutableData))(v, data);
}
// type_and_shape reads an element type, the rank and up to max_rank dimensions.
static OrtStatus *type_and_shape(const void *api, const OrtTensorTypeAndShapeInfo *info, int *elem_type, size_t *rank, int64_t *dims,
                                 size_t max_rank) {
  OrtStatus *s = ((OrtStatus * (*)(const OrtTensorTypeAndShapeInfo *, int *)) FN(api, IDX_GetTensorElementType))(info, elem_type);
  if (!s) s = ((OrtStatus * (*)(const OrtTensorTypeAndShapeInfo *, size_t *)) FN(api, IDX_GetDimensionsCount))(info, rank);
  if (!s) {
    size_t n = *rank < max_rank ? *rank : max_rank;
    s = ((OrtStatus * (*)(const OrtTensorTypeAndShapeInfo *, int64_t *, size_t)) FN(api, IDX_GetDimensions))(info, dims, n);
  }
  return s;
}

OrtStatus *ortrain_tensor_info(const void *api, const OrtValue *v, int *elem_type, size_t *rank, int64_t *dims, size_t max_rank) {
  OrtTensorTypeAndShapeInfo *info = NULL;
  OrtStatus *s = ((OrtStatus * (*)(const OrtValue *, OrtTensorTypeAndShapeInfo **)) FN(api, IDX_GetTensorTypeAndShape))(v, &info);
  if (s) return s;
  s = type_and_shape(api, info, elem_type, rank, dims, max_rank);
  ((void (*)(OrtTensorTypeAndShapeInfo *))FN(api, IDX_ReleaseTensorTypeAndShapeInfo))(info);
  return s;
}
OrtStatus *ortrain_tensor_location(const void *api, const OrtValue *v, const char **name, int *id) {
  const OrtMemoryInfo *mi = NULL;
  OrtStatus *s = ((OrtStatus * (*)(const OrtValue *, const OrtMemoryInfo **)) FN(api, IDX_GetTensorMemoryInfo))(v, &mi);
  if (s) return s;
  s = ((OrtStatus * (*)(const OrtMemoryInfo *, const char **)) FN(api, IDX_MemoryInfoGetName))(mi, name);
  if (s) return s;
  return ((OrtStatus * (*)(const OrtMemoryInfo *, int *)) FN(api, IDX_MemoryInfoGetId))(mi, id);
}

OrtStatus *ortrain_register_cpu_arena(const void *api) {
  OrtEnv *env = NULL;
  // ONNX Runtime has one environment per process: CreateEnv returns it, with
  // one more reference (released below), when it exists.
  OrtStatus *s = ((OrtStatus * (*)(int, const char *, OrtEnv **)) FN(api, IDX_CreateEnv))(3, "ortrain", &env);
  if (s) return s;
  OrtMemoryInfo *mi = NULL;
  // OrtArenaAllocator = 1, OrtMemTypeDefault = 0.
  s = ((OrtStatus * (*)(const char *, int, int, int, OrtMemoryInfo **)) FN(api, IDX_CreateMemoryInfo))("Cpu", 1, 0, 0, &mi);
  OrtArenaCfg *cfg = NULL;
  // No keys: ONNX Runtime's default arena settings.
  if (!s) s = ((OrtStatus * (*)(const char *const *, const size_t *, size_t, OrtArenaCfg **)) FN(api, IDX_CreateArenaCfgV2))(NULL, NULL, 0, &cfg);
  if (!s) s = ((OrtStatus * (*)(OrtEnv *, const OrtMemoryInfo *, const OrtArenaCfg *)) FN(api, IDX_CreateAndRegisterAllocator))(env, mi, cfg);
  if (cfg) ((void (*)(OrtArenaCfg *))FN(api, IDX_ReleaseArenaCfg))(cfg);
  if (mi) ((void (*)(OrtMemoryInfo *))FN(api, IDX_ReleaseMemoryInfo))(mi);
  ((void (*)(OrtEnv *))FN(api, IDX_ReleaseEnv))(env);
  return s;
}

OrtStatus *ortrain_allocator_stats(const void *api, const OrtAllocator *a, char *buf, size_t cap) {
  OrtKeyValuePairs *kv = NULL;
  OrtStatus *s = ((OrtStatus * (*)(const OrtAllocator *, OrtKeyValuePairs **)) FN(api, IDX_AllocatorGetStats))(a, &kv);
  if (s) return s;
  const char *const *keys = NULL, *const *values = NULL;
  size_t n = 0;
  ((void (*)(const OrtKeyValuePairs *, const char *const **, const char *const **, size_t *))FN(api, IDX_GetKeyValuePairs))(kv, &keys, &values, &n);
  // "key=value\n" lines; what does not fit in cap is left out.
  size_t at = 0;
  buf[0] = 0;
  for (size_t i = 0; i < n; i++) {
    size_t kl = strlen(keys[i]), vl = strlen(values[i]);
    if (at + kl + vl + 3 > cap) break;
    memcpy(buf + at, keys[i], kl); at += kl;
    buf[at++] = '=';
    memcpy(buf + at, values[i], vl); at += vl;
    buf[at++] = '\n';
    buf[at] = 0;
  }
  ((void (*)(OrtKeyValuePairs *))FN(api, IDX_ReleaseKeyValuePairs))(kv);
  return NULL;
}

OrtStatus *ortrain_session_io_count(const void *api, const OrtSession *sess, int output, size_t *n) {
  return ((OrtStatus * (*)(const OrtSession *, size_t *)) FN(api, output ? IDX_SessionGetOutputCount : IDX_SessionGetInputCount))(sess, n);
}

OrtStatus *ortrain_session_io(const void *api, const OrtSession *sess, int output, size_t i, char **name, int *onnx_type,
                              int *elem_type, size_t *rank, int64_t *dims, size_t max_rank) {
  *name = NULL;
  *onnx_type = 0;
  *elem_type = 0;
  *rank = 0;
  OrtAllocator *a = NULL;
  OrtStatus *s = ((OrtStatus * (*)(OrtAllocator **)) FN(api, IDX_GetAllocatorWithDefaultOptions))(&a);
  if (s) return s;
  char *n = NULL;
  s = ((OrtStatus * (*)(const OrtSession *, size_t, OrtAllocator *, char **)) FN(api, output ? IDX_SessionGetOutputName : IDX_SessionGetInputName))(sess, i, a, &n);
  if (s) return s;
  *name = strdup(n);
  s = ((OrtStatus * (*)(OrtAllocator *, void *)) FN(api, IDX_AllocatorFree))(a, n);
  if (s) return s;
  OrtTypeInfo *ti = NULL;
  s = ((OrtStatus * (*)(const OrtSession *, size_t, OrtTypeInfo **)) FN(api, output ? IDX_SessionGetOutputTypeInfo : IDX_SessionGetInputTypeInfo))(sess, i, &ti);
  if (s) return s;
  s = ((OrtStatus * (*)(const OrtTypeInfo *, int *)) FN(api, IDX_GetOnnxTypeFromTypeInfo))(ti, onnx_type);
  // Tensors (1) and sparse tensors (5) have an element type and a shape.
  if (!s && (*onnx_type == 1 || *onnx_type == 5)) {
    const OrtTensorTypeAndShapeInfo *info = NULL;  // owned by ti
    s = ((OrtStatus * (*)(const OrtTypeInfo *, const OrtTensorTypeAndShapeInfo **)) FN(api, IDX_CastTypeInfoToTensorInfo))(ti, &info);
    if (!s) s = type_and_shape(api, info, elem_type, rank, dims, max_rank);
  }
  ((void (*)(OrtTypeInfo *))FN(api, IDX_ReleaseTypeInfo))(ti);
  return s;
}
