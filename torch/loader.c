// Run-time loading of the libtorch shim.
//
// The Go binary never links libtorch: it dlopen()s libm2mix_torch.so and
// resolves each function of m2t_api.h into a pointer. The trampolines below
// carry the API's own names, so Go code calls C.m2t_xxx as if linked.
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shim/m2t_api.h"

// The resolved entry points. Process-wide by nature: there is one shim per
// process, loaded once (package torch guards this with sync.Once).
#define M2T_POINTER(name, params, args) static m2t_err(*p_##name) params;
M2T_API(M2T_POINTER)

#define M2T_TRAMPOLINE(name, params, args) \
  m2t_err name params { return p_##name args; }
M2T_API(M2T_TRAMPOLINE)

// m2t_load opens the shim at path and resolves every entry point. It returns
// NULL on success or a malloc'd message naming what failed.
char *m2t_load(const char *path) {
  void *lib = dlopen(path, RTLD_NOW | RTLD_LOCAL);
  if (lib == NULL) {
    const char *e = dlerror();
    return strdup(e ? e : "dlopen failed");
  }
#define M2T_RESOLVE(name, params, args)                            \
  p_##name = (m2t_err(*) params)dlsym(lib, #name);                 \
  if (p_##name == NULL) {                                          \
    char *msg = malloc(256);                                       \
    snprintf(msg, 256, "%s: missing symbol %s (rebuild the shim)", path, #name); \
    return msg;                                                    \
  }
  M2T_API(M2T_RESOLVE)
  return NULL;
}
