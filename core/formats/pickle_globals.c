/* pickle_globals.c -- the restricted unpickler's globals (docs/checkpoint-formats.md, Restricted
 * unpickler): the deny-list, the allow-list and the DCP metadata classes, and the check GLOBAL /
 * STACK_GLOBAL make of a name before it is pushed. What REDUCE / NEWOBJ / BUILD / BINPERSID make
 * of an allowed global is in pickle_torch.c. Const tables only. See pickle.h.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/formats/pickle_int.h"
static const char *const pkl_deny_modules[] = {"os",
                                               "posix",
                                               "nt",
                                               "sys",
                                               "subprocess",
                                               "builtins",
                                               "__builtin__",
                                               "importlib",
                                               "runpy",
                                               "socket",
                                               "shutil",
                                               "pty",
                                               "pickle",
                                               "_pickle",
                                               "marshal",
                                               "ctypes",
                                               "code",
                                               "codeop",
                                               "types",
                                               "functools",
                                               "operator",
                                               "webbrowser",
                                               "urllib",
                                               "http",
                                               "requests",
                                               "io",
                                               "_io",
                                               "tempfile",
                                               "multiprocessing",
                                               "signal",
                                               "threading",
                                               "asyncio",
                                               "inspect",
                                               "pdb",
                                               "bdb",
                                               "cProfile",
                                               "profile",
                                               "trace",
                                               "shelve",
                                               "dbm",
                                               "sqlite3",
                                               "zipimport",
                                               "pkgutil",
                                               "site",
                                               "distutils",
                                               "setuptools",
                                               "pip",
                                               "glob",
                                               "copyreg",
                                               "copy_reg",
                                               "_thread",
                                               "ftplib",
                                               "smtplib",
                                               "telnetlib",
                                               "xmlrpc",
                                               "imp",
                                               "commands",
                                               "platform",
                                               "timeit",
                                               "torch.hub",
                                               "torch.jit",
                                               "torch.ops",
                                               "torch._ops",
                                               "torch.serialization",
                                               "torch.storage",
                                               "torch.cuda",
                                               "torch.distributed",
                                               "numpy.testing"};

struct pkl_named_dtype {
    const char *name;
    enum dtype dtype;
};

static const struct pkl_named_dtype pkl_storage_classes[] = {
    {"DoubleStorage", DTYPE_F64},       {"FloatStorage", DTYPE_F32},
    {"HalfStorage", DTYPE_F16},         {"BFloat16Storage", DTYPE_BF16},
    {"LongStorage", DTYPE_I64},         {"IntStorage", DTYPE_I32},
    {"ShortStorage", DTYPE_I16},        {"CharStorage", DTYPE_I8},
    {"ByteStorage", DTYPE_U8},          {"BoolStorage", DTYPE_BOOL},
    {"ComplexFloatStorage", DTYPE_C64}, {"ComplexDoubleStorage", DTYPE_C128},
    {"UntypedStorage", DTYPE_U8}};

static const struct pkl_named_dtype pkl_dtypes[] = {{"float64", DTYPE_F64},
                                                    {"double", DTYPE_F64},
                                                    {"float32", DTYPE_F32},
                                                    {"float", DTYPE_F32},
                                                    {"float16", DTYPE_F16},
                                                    {"half", DTYPE_F16},
                                                    {"bfloat16", DTYPE_BF16},
                                                    {"int64", DTYPE_I64},
                                                    {"long", DTYPE_I64},
                                                    {"int32", DTYPE_I32},
                                                    {"int", DTYPE_I32},
                                                    {"int16", DTYPE_I16},
                                                    {"short", DTYPE_I16},
                                                    {"int8", DTYPE_I8},
                                                    {"uint8", DTYPE_U8},
                                                    {"bool", DTYPE_BOOL},
                                                    {"uint16", DTYPE_U16},
                                                    {"uint32", DTYPE_U32},
                                                    {"uint64", DTYPE_U64},
                                                    {"complex64", DTYPE_C64},
                                                    {"cfloat", DTYPE_C64},
                                                    {"complex128", DTYPE_C128},
                                                    {"cdouble", DTYPE_C128},
                                                    {"float8_e4m3fn", DTYPE_F8_E4M3},
                                                    {"float8_e5m2", DTYPE_F8_E5M2},
                                                    {"float8_e4m3fnuz", DTYPE_F8_E4M3FNUZ},
                                                    {"float8_e5m2fnuz", DTYPE_F8_E5M2FNUZ},
                                                    {"float8_e8m0fnu", DTYPE_F8_E8M0}};

static const char *const pkl_rebuilds[] = {"_rebuild_tensor", "_rebuild_tensor_v2",
                                           "_rebuild_tensor_v3", "_rebuild_parameter",
                                           "_rebuild_parameter_with_state"};

#define PKL_COUNT(a) (sizeof(a) / sizeof((a)[0]))

/* The DCP metadata classes (docs/dcp.md, The .metadata pickle): PyTorch 2.5.1's
 * torch/distributed/checkpoint/metadata.py and filesystem.py, and where torch
 * < 2.4 defined TensorProperties. Only pkl_parse_dcp() allows them. */
static const char *const pkl_dcp_globals[] = {
    "torch.distributed.checkpoint.metadata.Metadata",
    "torch.distributed.checkpoint.metadata.MetadataIndex",
    "torch.distributed.checkpoint.metadata.TensorStorageMetadata",
    "torch.distributed.checkpoint.metadata.BytesStorageMetadata",
    "torch.distributed.checkpoint.metadata.ChunkStorageMetadata",
    "torch.distributed.checkpoint.metadata.TensorProperties",
    "torch.distributed.checkpoint.metadata._MEM_FORMAT_ENCODING",
    "torch.distributed.checkpoint.metadata.StorageMeta",
    "torch.distributed.checkpoint.filesystem._StorageInfo",
    "torch.distributed._shard.sharded_tensor.metadata.TensorProperties",
    "torch.distributed._shard.sharded_tensor.metadata.MEM_FORMAT_ENCODING"};

/* Values those classes hold: the tensor layout (TensorProperties.layout) and
 * the checkpoint path (StorageMeta.checkpoint_id, a pathlib.Path). */
static const char *const pkl_dcp_inert[] = {"torch.strided", "pathlib.PosixPath",
                                            "pathlib.PurePosixPath", "pathlib.WindowsPath",
                                            "pathlib.PureWindowsPath"};

/* 1 if module.name is in `list` (entries "module.name"). */
static int pkl_in_full(const char *const *list, size_t n, const char *module, const char *name)
{
    size_t ml = strlen(module);

    for (size_t i = 0; i < n; i++)
        if (strncmp(list[i], module, ml) == 0 && list[i][ml] == '.' &&
            strcmp(list[i] + ml + 1, name) == 0)
            return 1;
    return 0;
}

static int pkl_lookup_dtype(const struct pkl_named_dtype *t, size_t n, const char *name,
                            enum dtype *out)
{
    for (size_t i = 0; i < n; i++) {
        if (strcmp(t[i].name, name) == 0) {
            *out = t[i].dtype;
            return 1;
        }
    }
    return 0;
}

static int pkl_in(const char *const *list, size_t n, const char *s)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(list[i], s) == 0)
            return 1;
    return 0;
}

/* 1 if `module` equals a deny-listed module or lies below one ("os.path"). */
static int pkl_module_denied(const char *module)
{
    for (size_t i = 0; i < PKL_COUNT(pkl_deny_modules); i++) {
        size_t n = strlen(pkl_deny_modules[i]);
        if (strncmp(module, pkl_deny_modules[i], n) == 0 && (module[n] == '\0' || module[n] == '.'))
            return 1;
    }
    return 0;
}

/* Classify global module.name; *dt gets the dtype of storage classes and dtypes.
 * `dcp` != 0 (pkl_parse_dcp): the DCP metadata classes and values are allowed. */
static enum pkl_gclass pkl_classify(const char *module, const char *name, enum dtype *dt, int dcp)
{
    static const char *const safe_builtins[] = {"set", "frozenset", "bytearray", "complex"};
    enum dtype ignored;

    if (dt == NULL)
        dt = &ignored;
    if (dcp && pkl_in_full(pkl_dcp_globals, PKL_COUNT(pkl_dcp_globals), module, name))
        return PKL_G_DCP;
    if (dcp && pkl_in_full(pkl_dcp_inert, PKL_COUNT(pkl_dcp_inert), module, name))
        return PKL_G_INERT;
    if ((strcmp(module, "builtins") == 0 || strcmp(module, "__builtin__") == 0) &&
        pkl_in(safe_builtins, PKL_COUNT(safe_builtins), name))
        return strcmp(name, "set") == 0         ? PKL_G_SET
               : strcmp(name, "frozenset") == 0 ? PKL_G_FROZENSET
               : strcmp(name, "bytearray") == 0 ? PKL_G_BYTEARRAY
                                                : PKL_G_COMPLEX;
    if (pkl_module_denied(module) || strncmp(name, "__", 2) == 0)
        return PKL_G_DENIED;
    if (strcmp(module, "collections") == 0 && strcmp(name, "OrderedDict") == 0)
        return PKL_G_ODICT;
    if (strcmp(module, "torch._utils") == 0 && pkl_in(pkl_rebuilds, PKL_COUNT(pkl_rebuilds), name))
        return PKL_G_REBUILD;
    if (strcmp(module, "torch._tensor") == 0 && strcmp(name, "_rebuild_from_type_v2") == 0)
        return PKL_G_FROM_TYPE;
    if (strcmp(module, "torch.nn.parameter") == 0 && strcmp(name, "Parameter") == 0)
        return PKL_G_TOKEN;
    if (strcmp(module, "_codecs") == 0 && strcmp(name, "encode") == 0)
        return PKL_G_ENCODE;
    if (strcmp(module, "torch") != 0)
        return PKL_G_UNKNOWN;
    if (pkl_lookup_dtype(pkl_storage_classes, PKL_COUNT(pkl_storage_classes), name, dt))
        return PKL_G_STORAGE;
    if (pkl_lookup_dtype(pkl_dtypes, PKL_COUNT(pkl_dtypes), name, dt))
        return PKL_G_DTYPE;
    if (strcmp(name, "Tensor") == 0)
        return PKL_G_TOKEN;
    if (strcmp(name, "Size") == 0)
        return PKL_G_SIZE;
    if (strcmp(name, "device") == 0)
        return PKL_G_DEVICE;
    return PKL_G_UNKNOWN;
}

enum pkl_gclass pkl__gclass_of(const struct pkl_value *g, enum dtype *dt, int dcp)
{
    char module[256], *name;
    const char *full = g->str;

    if (g->dot >= sizeof(module) - 1 || g->len - g->dot > 256)
        return pkl_classify(full, "", dt, dcp); /* too long for any allow-listed name */
    memcpy(module, full, g->dot);
    module[g->dot] = '\0';
    name = (char *)(uintptr_t)(full + g->dot + 1);
    return pkl_classify(module, name, dt, dcp);
}

int pkl_global_dtype(const struct pkl_value *g, enum dtype *out)
{
    enum dtype dt = DTYPE_U8;

    if (g == NULL || g->kind != PKL_GLOBAL || pkl__gclass_of(g, &dt, 0) != PKL_G_DTYPE)
        return 0;
    *out = dt;
    return 1;
}

enum err_code pkl__global(struct pkl_parser *p, const char *module, size_t module_len,
                          const char *name, size_t name_len)
{
    enum err_code rc;
    struct pkl_value *g;
    enum pkl_gclass cls;
    char *full;

    if (memchr(module, '\0', module_len) != NULL || memchr(name, '\0', name_len) != NULL ||
        module_len > 4096 || name_len > 4096)
        return pkl__fail(p, ERR_FORMAT, ERR_CAT_INVALID_PICKLE, "malformed global name");
    rc = pkl__mem(p, (uint64_t)module_len + name_len + 2, 0, "a global name");
    if (rc)
        return rc;
    full = malloc(module_len + name_len + 2);
    if (full == NULL)
        return err_set(p->e, ERR_NOMEM, "out of memory for a global name");
    memcpy(full, module, module_len);
    full[module_len] = '\0';
    memcpy(full + module_len + 1, name, name_len);
    full[module_len + 1 + name_len] = '\0';
    cls = pkl_classify(full, full + module_len + 1, NULL, p->dcp);
    full[module_len] = '.';
    if (cls == PKL_G_DENIED) {
        rc =
            pkl__fail(p, ERR_FORMAT, ERR_CAT_DISALLOWED_GLOBAL, "global %.200s is forbidden", full);
    } else if (cls == PKL_G_UNKNOWN && p->lim.strict) {
        int model =
            strncmp(full, "torch.nn.modules.", 17) == 0 || strncmp(full, "__main__.", 9) == 0;
        rc = pkl__fail(
            p, ERR_FORMAT, ERR_CAT_DISALLOWED_GLOBAL, "global %.200s is not on the allow-list%s",
            full, model ? " (a whole pickled model: send model.state_dict())" : " (strict mode)");
    } else {
        rc = pkl__new(p, PKL_GLOBAL, &g);
        if (!rc) {
            g->str = full;
            g->len = module_len + 1 + name_len;
            g->dot = module_len;
            full = NULL;
            rc = pkl__push(p, g);
        }
    }
    free(full);
    return rc;
}
