/* test_pickle.c -- the restricted unpickler (core/pickle.h, checkpoint-formats.md
 * docs/checkpoint-formats.md, Restricted unpickler) on pickles assembled byte by byte: the value
 * model (memo sharing, self-containing lists, SETITEMS batches and Python key equality, integer
 * widths, big-endian BINFLOAT, protocol 4 opcodes), the torch persistent ids and rebuild functions,
 * and one test per refusal rule (deny-list, strict vs lenient, structural errors, limits).
 *
 * Escapes are ended by splitting literals ("\x01" "abc") so that a following
 * hex digit is not swallowed.
 */
#include <stdio.h>
#include <string.h>

#include "core/formats/pickle.h"
#include "tests/check.h"

#define P(s) (const unsigned char *)(s), sizeof(s) - 1

/* Pickle fragments. */
#define ODICT0                    \
    "ccollections\nOrderedDict\n" \
    ")"                           \
    "R"
#define V2 "ctorch._utils\n_rebuild_tensor_v2\n"
#define V3 "ctorch._utils\n_rebuild_tensor_v3\n"
#define PID(cls, key1, numel)                    \
    "("                                          \
    "X\x07\x00\x00\x00"                          \
    "storage"                                    \
    "ctorch\n" cls "\n"                          \
    "X\x01\x00\x00\x00" key1 "X\x03\x00\x00\x00" \
    "cpu"                                        \
    "K" numel "t"                                \
    "Q"
#define SIZE23 \
    "K\x02"    \
    "K\x03"    \
    "\x86"     \
    "K\x03"    \
    "K\x01"    \
    "\x86"
/* _rebuild_tensor_v2(storage key1 of 6 floats, 0, (2, 3), (3, 1), False, OrderedDict()) */
#define T23(key1)                                                             \
    V2 "(" PID("FloatStorage", key1, "\x06") "K\x00" SIZE23 "\x89" ODICT0 "t" \
                                             "R"

static struct err err_last;

/* Parse; return "ok" or the error category. *out gets the result on success. */
static const char *parse(const unsigned char *b, size_t n, int strict, struct pkl_result **out)
{
    struct ckpt_limits lim;
    enum err_code rc;

    ckpt_limits_default(&lim);
    lim.strict = strict;
    *out = NULL;
    rc = pkl_parse(b, n, &lim, out, &err_last);
    return rc == ERR_OK ? "ok" : err_category(&err_last);
}

/* Category in both modes (refusals that do not depend on the mode). */
static const char *both(const unsigned char *b, size_t n)
{
    struct pkl_result *r = NULL;
    const char *strict = parse(b, n, 1, &r), *lenient;

    pkl_free(r);
    lenient = parse(b, n, 0, &r);
    pkl_free(r);
    return strcmp(strict, lenient) == 0 ? strict : "modes differ";
}

/* The worked example: torch.save(nn.Linear(3, 2).state_dict()) at protocol 2. */
static void test_linear_state_dict(void)
{
    static const char pk[] =
        "\x80\x02" ODICT0 "q\x01"
        "("
        "X\x06\x00\x00\x00"
        "weight" T23("0") "X\x04\x00\x00\x00"
                          "bias" V2 "(" PID("FloatStorage", "1", "\x02") "K\x00"
                                                                         "K\x02"
                                                                         "\x85"
                                                                         "K\x01"
                                                                         "\x85"
                                                                         "\x89" ODICT0 "t"
                                                                         "R"
                                                                         "u"
                                                                         "}"
                                                                         "X\x09\x00\x00\x00"
                                                                         "_metadata" ODICT0 "s"
                                                                         "b"
                                                                         ".";
    struct pkl_result *r = NULL;
    const struct pkl_value *root, *w, *b;

    CHECK_STR_EQ(parse(P(pk), 1, &r), "ok");
    if (r == NULL)
        return;
    root = pkl_root(r);
    CHECK_EQ_INT(root->kind, PKL_DICT);
    CHECK_EQ_INT(root->n_items, 2);
    CHECK_EQ_INT(pkl_protocol(r), 2);
    w = pkl_dict_get(root, "weight");
    b = pkl_dict_get(root, "bias");
    CHECK(w != NULL && w->kind == PKL_TENSOR && b != NULL && b->kind == PKL_TENSOR);
    CHECK(pkl_dict_get(root, "_metadata") == NULL); /* BUILD state ignored */
    if (w == NULL || b == NULL)
        goto out;
    CHECK_EQ_INT(w->tensor.dtype, DTYPE_F32);
    CHECK_EQ_INT(w->tensor.ndim, 2);
    CHECK_EQ_INT(w->tensor.size[0], 2);
    CHECK_EQ_INT(w->tensor.size[1], 3);
    CHECK_EQ_INT(w->tensor.stride[0], 3);
    CHECK_EQ_INT(w->tensor.stride[1], 1);
    CHECK_EQ_INT(b->tensor.ndim, 1);
    CHECK_EQ_INT(pkl_n_storages(r), 2);
    CHECK_STR_EQ(pkl_storage_at(r, w->tensor.storage)->key, "0");
    CHECK_EQ_INT(pkl_storage_at(r, w->tensor.storage)->numel, 6);
    CHECK_STR_EQ(pkl_storage_at(r, b->tensor.storage)->key, "1");
    CHECK_EQ_INT(pkl_storage_at(r, b->tensor.storage)->numel, 2);
out:
    pkl_free(r);
}

/* Memo values are shared references; a list may contain itself. */
static void test_memo_sharing(void)
{
    static const char self[] = "\x80\x02"
                               "]"
                               "q\x00"
                               "h\x00"
                               "a"
                               ".";
    static const char tied[] = "\x80\x02"
                               "}"
                               "("
                               "X\x01\x00\x00\x00"
                               "a" T23("0") "q\x05"
                                            "X\x01\x00\x00\x00"
                                            "b"
                                            "h\x05"
                                            "u"
                                            ".";
    struct pkl_result *r = NULL;
    const struct pkl_value *v;

    CHECK_STR_EQ(parse(P(self), 1, &r), "ok");
    v = r ? pkl_root(r) : NULL;
    CHECK(v != NULL && v->kind == PKL_LIST && v->n_items == 1 && v->items[0] == v);
    pkl_free(r);
    CHECK_STR_EQ(parse(P(tied), 1, &r), "ok");
    v = r ? pkl_root(r) : NULL;
    CHECK(v != NULL && pkl_dict_get(v, "a") != NULL &&
          pkl_dict_get(v, "a") == pkl_dict_get(v, "b"));
    CHECK(r != NULL && pkl_n_storages(r) == 1);
    pkl_free(r);
}

/* SETITEMS batches keep insertion order; equal keys (1 == True) replace in place. */
static void test_setitems(void)
{
    static const char batch[] = "}"
                                "("
                                "X\x01\x00\x00\x00"
                                "b"
                                "K\x02"
                                "X\x01\x00\x00\x00"
                                "a"
                                "K\x01"
                                "u"
                                "("
                                "K\x01"
                                "K\x05"
                                "\x88"
                                "K\x06"
                                "u"
                                ".";
    static const char odd[] = "}"
                              "("
                              "K\x01"
                              "K\x02"
                              "K\x03"
                              "u"
                              ".";
    struct pkl_result *r = NULL;
    const struct pkl_value *d;

    CHECK_STR_EQ(parse(P(batch), 1, &r), "ok");
    d = r ? pkl_root(r) : NULL;
    CHECK(d != NULL && d->n_items == 3);
    if (d != NULL && d->n_items == 3) {
        CHECK_STR_EQ(d->items[0]->str, "b");
        CHECK_STR_EQ(d->items[1]->str, "a");
        CHECK_EQ_INT(d->items[2]->i, 1); /* the first spelling of the key stays */
        CHECK_EQ_INT(d->vals[2]->i, 6);  /* True replaced 1's value */
    }
    pkl_free(r);
    CHECK_STR_EQ(both(P(odd)), "invalid_pickle");
}

/* A dict large enough to use its hash index still finds and replaces keys. */
static void test_large_dict(void)
{
    /* key 7 again (BININT1), value 999 (BININT2), SETITEMS, STOP */
    static const unsigned char tail[] = {'K', 0x07, 'M', 0xE7, 0x03, 'u', '.'};
    unsigned char pk[4096];
    size_t n = 0;
    struct pkl_result *r = NULL;
    const struct pkl_value *d;

    pk[n++] = '}';
    pk[n++] = '(';
    for (int i = 0; i < 300; i++) { /* keys 0..299 -> i, then key 7 again -> 999 */
        pk[n++] = 'M';
        pk[n++] = (unsigned char)(i & 0xFF);
        pk[n++] = (unsigned char)(i >> 8);
        pk[n++] = 'K';
        pk[n++] = (unsigned char)(i & 0x7F);
    }
    memcpy(pk + n, tail, sizeof(tail));
    n += sizeof(tail);
    CHECK_STR_EQ(parse(pk, n, 1, &r), "ok");
    d = r ? pkl_root(r) : NULL;
    CHECK(d != NULL && d->n_items == 300);
    if (d != NULL && d->n_items == 300) {
        CHECK_EQ_INT(d->vals[7]->i, 999);
        CHECK_EQ_INT(d->vals[299]->i, 299 & 0x7F);
    }
    pkl_free(r);
}

static int64_t int_of(const unsigned char *b, size_t n)
{
    struct pkl_result *r = NULL;
    int64_t v = -12345;

    if (strcmp(parse(b, n, 1, &r), "ok") == 0 && pkl_root(r)->kind == PKL_INT)
        v = pkl_root(r)->i;
    pkl_free(r);
    return v;
}

static void test_integers(void)
{
    CHECK_EQ_INT(int_of(P("\x8a\x00"
                          ".")),
                 0);
    CHECK_EQ_INT(int_of(P("\x8a\x01\xff"
                          ".")),
                 -1);
    CHECK_EQ_INT(int_of(P("\x8a\x05\x00\x00\x00\x80\x00"
                          ".")),
                 2147483648LL);
    CHECK_EQ_INT(int_of(P("\x8a\x04\x00\x00\x00\x80"
                          ".")),
                 -2147483648LL);
    CHECK_EQ_INT(int_of(P("\x8a\x08\xff\xff\xff\xff\xff\xff\xff\x7f"
                          ".")),
                 INT64_MAX);
    CHECK_EQ_INT(int_of(P("\x8b\x02\x00\x00\x00\x00\x01"
                          ".")),
                 256);
    CHECK_EQ_INT(int_of(P("J\xff\xff\xff\xff"
                          ".")),
                 -1);
    CHECK_EQ_INT(int_of(P("M\xff\xff"
                          ".")),
                 65535);
    CHECK_EQ_INT(int_of(P("K\xff"
                          ".")),
                 255);
    CHECK_STR_EQ(both(P("\x8a\x09\x00\x00\x00\x00\x00\x00\x00\x00\x01"
                        ".")),
                 "invalid_pickle");
    CHECK_STR_EQ(both(P("\x8a\x10"
                        "0123456789abcdef"
                        ".")),
                 "invalid_pickle");
}

static void test_binfloat_big_endian(void)
{
    struct pkl_result *r = NULL;

    CHECK_STR_EQ(parse(P("G\x3f\xf8\x00\x00\x00\x00\x00\x00"
                         "."),
                       1, &r),
                 "ok");
    CHECK(r != NULL && pkl_root(r)->kind == PKL_FLOAT && pkl_root(r)->f == 1.5);
    pkl_free(r);
    CHECK_STR_EQ(parse(P("G\xc0\x09\x21\xfb\x54\x44\x2d\x18"
                         "."),
                       1, &r),
                 "ok");
    CHECK(r != NULL && pkl_root(r)->f == -3.141592653589793);
    pkl_free(r);
}

/* FRAME, SHORT_BINUNICODE, MEMOIZE, STACK_GLOBAL, EMPTY_SET/ADDITEMS, BINBYTES. */
static void test_protocol4(void)
{
    static const char pk[] = "\x80\x04"
                             "\x95\x30\x00\x00\x00\x00\x00\x00\x00"
                             "\x8c\x0b"
                             "collections"
                             "\x94"
                             "\x8c\x0b"
                             "OrderedDict"
                             "\x94"
                             "\x93"
                             "\x94"
                             ")"
                             "R"
                             "\x94"
                             "\x8c\x01"
                             "s"
                             "\x8f"
                             "("
                             "K\x01"
                             "K\x02"
                             "\x90"
                             "s"
                             "\x8c\x01"
                             "b"
                             "C\x02"
                             "hi"
                             "s"
                             "h\x00"
                             "2"
                             "0"
                             "0"
                             ".";
    struct pkl_result *r = NULL;
    const struct pkl_value *d, *s, *b;

    CHECK_STR_EQ(parse(P(pk), 1, &r), "ok");
    if (r == NULL)
        return;
    d = pkl_root(r);
    CHECK_EQ_INT(pkl_protocol(r), 4);
    CHECK_EQ_INT(d->kind, PKL_DICT);
    s = pkl_dict_get(d, "s");
    b = pkl_dict_get(d, "b");
    CHECK(s != NULL && s->kind == PKL_SET && s->n_items == 2);
    CHECK(b != NULL && b->kind == PKL_BYTES && b->len == 2 && memcmp(b->str, "hi", 2) == 0);
    pkl_free(r);
}

/* Deny-list: refused in every mode, message names the global. */
static void test_deny_list(void)
{
    CHECK_STR_EQ(both(P("\x80\x04"
                        "\x8c\x05"
                        "posix"
                        "\x8c\x06"
                        "system"
                        "\x93"
                        ".")),
                 "disallowed_global");
    CHECK(strstr(err_last.msg, "global posix.system is forbidden") != NULL);
    CHECK_STR_EQ(both(P("cos\nsystem\n"
                        "("
                        "X\x02\x00\x00\x00"
                        "id"
                        "t"
                        "R"
                        ".")),
                 "disallowed_global");
    CHECK(strstr(err_last.msg, "global os.system is forbidden") != NULL);
    CHECK_STR_EQ(both(P("cos.path\njoin\n"
                        ".")),
                 "disallowed_global"); /* submodule */
    CHECK_STR_EQ(both(P("c__builtin__\neval\n"
                        ".")),
                 "disallowed_global");
    CHECK_STR_EQ(both(P("cbuiltins\ngetattr\n"
                        ".")),
                 "disallowed_global");
    CHECK_STR_EQ(both(P("ccollections\n__dict__\n"
                        ".")),
                 "disallowed_global"); /* dunder */
    CHECK_STR_EQ(both(P("ctorch.hub\nload\n"
                        ".")),
                 "disallowed_global");
    CHECK_STR_EQ(both(P("ctorch.serialization\nload\n"
                        ".")),
                 "disallowed_global");
    CHECK_STR_EQ(both(P("("
                        "csubprocess\nPopen\n"
                        "t"
                        ".")),
                 "disallowed_global"); /* never called */
    CHECK_STR_EQ(both(P("cosmosis\nx\n"
                        ".")),
                 "modes differ"); /* "os" matches whole names */
}

/* The four value builtins are interpreted, not called. */
static void test_allowed_builtins(void)
{
    static const char set[] = "c__builtin__\nset\n"
                              "("
                              "]"
                              "("
                              "K\x01"
                              "K\x02"
                              "e"
                              "t"
                              "R"
                              ".";
    static const char enc[] = "c_codecs\nencode\n"
                              "X\x02\x00\x00\x00"
                              "\xc3\xa9"
                              "X\x06\x00\x00\x00"
                              "latin1"
                              "\x86"
                              "R"
                              ".";
    static const char cpx[] = "cbuiltins\ncomplex\n"
                              "K\x01"
                              "G\x40\x00\x00\x00\x00\x00\x00\x00"
                              "\x86"
                              "R"
                              ".";
    struct pkl_result *r = NULL;

    CHECK_STR_EQ(parse(P(set), 1, &r), "ok");
    CHECK(r != NULL && pkl_root(r)->kind == PKL_SET && pkl_root(r)->n_items == 2);
    pkl_free(r);
    CHECK_STR_EQ(parse(P(enc), 1, &r), "ok");
    CHECK(r != NULL && pkl_root(r)->kind == PKL_BYTES && pkl_root(r)->len == 1 &&
          (unsigned char)pkl_root(r)->str[0] == 0xE9);
    pkl_free(r);
    CHECK_STR_EQ(parse(P(cpx), 1, &r), "ok");
    CHECK(r != NULL && pkl_root(r)->kind == PKL_COMPLEX && pkl_root(r)->f == 1.0 &&
          pkl_root(r)->f_imag == 2.0);
    pkl_free(r);
}

/* Unknown globals: strict refuses; lenient keeps an inert value with its children. */
static void test_strict_and_lenient(void)
{
    static const char ns[] = "}"
                             "X\x04\x00\x00\x00"
                             "args"
                             "cargparse\nNamespace\n"
                             ")"
                             "R"
                             "}"
                             "X\x02\x00\x00\x00"
                             "lr"
                             "G\x3f\xb9\x99\x99\x99\x99\x99\x9a"
                             "s"
                             "b"
                             "s"
                             "X\x01\x00\x00\x00"
                             "w" T23("0") "s"
                                          ".";
    static const char module[] = "c__main__\nMLP\n"
                                 ")"
                                 "\x81"
                                 "}"
                                 "b"
                                 ".";
    static const char linear[] = "ctorch.nn.modules.linear\nLinear\n"
                                 ")"
                                 "\x81"
                                 ".";
    static const char hidden[] = "cfoo\nBox\n"
                                 ")"
                                 "\x81"
                                 "(" T23("0") "e"
                                              ".";
    struct pkl_result *r = NULL;
    const struct pkl_value *a, *box;

    CHECK_STR_EQ(parse(P(ns), 1, &r), "disallowed_global");
    CHECK(strstr(err_last.msg, "argparse.Namespace") != NULL);
    CHECK_STR_EQ(parse(P(ns), 0, &r), "ok");
    a = r ? pkl_dict_get(pkl_root(r), "args") : NULL;
    CHECK(a != NULL && a->kind == PKL_OPAQUE && a->n_items == 2); /* the args () and the state */
    if (a != NULL && a->n_items == 2) {
        CHECK_STR_EQ(a->str, "argparse.Namespace()");
        CHECK_EQ_INT(a->items[1]->kind, PKL_DICT);
    }
    CHECK(r != NULL && pkl_dict_get(pkl_root(r), "w")->kind == PKL_TENSOR);
    pkl_free(r);
    CHECK_STR_EQ(parse(P(module), 1, &r), "disallowed_global");
    CHECK(strstr(err_last.msg, "model.state_dict()") != NULL);
    CHECK_STR_EQ(parse(P(linear), 1, &r), "disallowed_global");
    CHECK(strstr(err_last.msg, "model.state_dict()") != NULL);
    CHECK_STR_EQ(parse(P(linear), 0, &r), "ok");
    pkl_free(r);
    CHECK_STR_EQ(parse(P(hidden), 0, &r), "ok"); /* APPENDS on an opaque: tensor kept */
    box = r ? pkl_root(r) : NULL;
    CHECK(box != NULL && box->kind == PKL_OPAQUE && box->n_items == 2 &&
          box->items[1]->kind == PKL_TENSOR);
    pkl_free(r);
}

/* Structural errors, each with the opcode position in the message. */
static void test_structural_errors(void)
{
    CHECK_STR_EQ(both(P("s"
                        ".")),
                 "invalid_pickle"); /* stack underflow */
    CHECK(strstr(err_last.msg, "byte 0") != NULL);
    CHECK_STR_EQ(both(P("}"
                        "("
                        "s"
                        ".")),
                 "invalid_pickle"); /* MARK where a value is needed */
    CHECK(strstr(err_last.msg, "byte 2") != NULL);
    CHECK_STR_EQ(both(P("K\x01"
                        "h\x07"
                        ".")),
                 "invalid_pickle"); /* memo slot never written */
    CHECK_STR_EQ(both(P("]"
                        "K\x01"
                        "K\x02"
                        "s"
                        ".")),
                 "invalid_pickle"); /* SETITEM on a list */
    CHECK_STR_EQ(both(P("}"
                        "K\x01"
                        "a"
                        ".")),
                 "invalid_pickle"); /* APPEND on a dict */
    CHECK_STR_EQ(both(P("]"
                        "("
                        "K\x01"
                        "K\x02"
                        "u"
                        ".")),
                 "invalid_pickle");
    CHECK_STR_EQ(both(P("K\x01")), "invalid_pickle"); /* no STOP */
    CHECK_STR_EQ(both(P("X\x00\x00\x00\x80"
                        "abcd"
                        ".")),
                 "invalid_pickle"); /* 2 GiB string */
    CHECK_STR_EQ(both(P("\x8d\xff\xff\xff\xff\xff\xff\xff\xff"
                        ".")),
                 "invalid_pickle");
    CHECK_STR_EQ(both(P("X\x02\x00\x00\x00"
                        "\xc3\x28"
                        ".")),
                 "invalid_pickle"); /* bad UTF-8 */
    CHECK_STR_EQ(both(P("}"
                        "]"
                        "K\x01"
                        "s"
                        ".")),
                 "invalid_pickle"); /* unhashable key */
    CHECK_STR_EQ(both(P("}"
                        "("
                        "]"
                        "\x85"
                        "K\x01"
                        "u"
                        ".")),
                 "invalid_pickle"); /* ([],) key */
    CHECK_STR_EQ(both(P("\x80\x06"
                        ".")),
                 "invalid_pickle"); /* protocol 6 */
    CHECK_STR_EQ(both(P(".")), "invalid_pickle");
    CHECK_STR_EQ(both(P("K\x01"
                        "R"
                        ".")),
                 "invalid_pickle"); /* REDUCE underflow */
    CHECK_STR_EQ(both(P("K\x01"
                        ")"
                        "R"
                        ".")),
                 "invalid_pickle"); /* call an int */
    CHECK_STR_EQ(both(P("ccollections\nOrderedDict\n"
                        "K\x01"
                        "R"
                        ".")),
                 "invalid_pickle");
}

/* Opcodes that instantiate, use extension registries or out-of-band data are refused. */
static void test_refused_opcodes(void)
{
    static const struct {
        const unsigned char *pk;
        size_t n;
    } refused[] = {
        {P("("
           "iargparse\nNamespace\n"
           ".")}, /* INST */
        {P("("
           "ccollections\nOrderedDict\n"
           "o"
           ".")},             /* OBJ */
        {P("\x82\x01.")},     /* EXT1 */
        {P("\x83\x01\x00.")}, /* EXT2 */
        {P("P0\n.")},         /* PERSID */
        {P("\x97.")},         /* NEXT_BUFFER */
        {P("I1\n.")},         /* text INT */
        {P("\xff.")},
    };

    for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++)
        CHECK_STR_EQ(both(refused[i].pk, refused[i].n), "invalid_pickle");
}

static void test_limits(void)
{
    unsigned char flood[1100];
    struct ckpt_limits lim;
    struct pkl_result *r = NULL;
    struct err e = {0};

    memset(flood, '(', sizeof(flood));
    CHECK_STR_EQ(both(flood, sizeof(flood)), "limit_exceeded"); /* 1100 marks > 1000 */
    ckpt_limits_default(&lim);
    lim.max_pickle_stack = 3;
    CHECK_EQ_INT(pkl_parse(P("K\x01"
                             "K\x02"
                             "K\x03"
                             "K\x04"
                             "."),
                           &lim, &r, &e),
                 ERR_TOOBIG);
    CHECK_STR_EQ(err_category(&e), "limit_exceeded");
    CHECK_EQ_INT(pkl_parse(P("K\x01"
                             "K\x02"
                             "K\x03"
                             "0"
                             "0"
                             "0"
                             "K\x04"
                             "."),
                           &lim, &r, &e),
                 ERR_OK);
    pkl_free(r);
    ckpt_limits_default(&lim);
    lim.max_pickle_memo = 100;
    CHECK_EQ_INT(pkl_parse(P("K\x01"
                             "r\x64\x00\x00\x00"
                             "."),
                           &lim, &r, &e),
                 ERR_TOOBIG);
    CHECK_EQ_INT(pkl_parse(P("K\x01"
                             "r\x63\x00\x00\x00"
                             "j\x63\x00\x00\x00"
                             "."),
                           &lim, &r, &e),
                 ERR_OK);
    pkl_free(r);
    lim.max_pickle_bytes = 4;
    CHECK_EQ_INT(pkl_parse(P("K\x01"
                             "K\x02"
                             "."),
                           &lim, &r, &e),
                 ERR_TOOBIG);
}

/* POP, POP_MARK and DUP. */
static void test_stack_ops(void)
{
    struct pkl_result *r = NULL;

    CHECK_EQ_INT(int_of(P("K\x01"
                          "K\x02"
                          "0"
                          ".")),
                 1);
    CHECK_EQ_INT(int_of(P("K\x01"
                          "("
                          "K\x02"
                          "K\x03"
                          "1"
                          ".")),
                 1);
    CHECK_EQ_INT(int_of(P("K\x01"
                          "("
                          "0"
                          ".")),
                 1); /* POP of a MARK */
    CHECK_STR_EQ(parse(P("K\x05"
                         "2"
                         "\x86"
                         "."),
                       1, &r),
                 "ok");
    CHECK(r != NULL && pkl_root(r)->n_items == 2 && pkl_root(r)->items[0] == pkl_root(r)->items[1]);
    pkl_free(r);
}

/* Persistent ids name storages by a safe key, consistently. */
static void test_persistent_ids(void)
{
    static const char traversal[] = "("
                                    "X\x07\x00\x00\x00"
                                    "storage"
                                    "ctorch\nFloatStorage\n"
                                    "X\x0a\x00\x00\x00"
                                    "../version"
                                    "X\x03\x00\x00\x00"
                                    "cpu"
                                    "K\x06"
                                    "t"
                                    "Q"
                                    ".";
    static const char six[] = "("
                              "X\x07\x00\x00\x00"
                              "storage"
                              "ctorch\nFloatStorage\n"
                              "X\x01\x00\x00\x00"
                              "0"
                              "X\x03\x00\x00\x00"
                              "cpu"
                              "K\x06"
                              "N"
                              "t"
                              "Q"
                              ".";
    static const char twice[] =
        "(" PID("FloatStorage", "0", "\x06") PID("FloatStorage", "0", "\x07") "t"
                                                                              ".";
    static const char retyped[] =
        "(" PID("FloatStorage", "0", "\x06") PID("HalfStorage", "0", "\x06") "t"
                                                                             ".";
    static const char same[] =
        "(" PID("FloatStorage", "0", "\x06") PID("FloatStorage", "0", "\x06") "t"
                                                                              ".";
    static const char quant[] = PID("QUInt8Storage", "0", "\x06") ".";
    struct pkl_result *r = NULL;

    CHECK_STR_EQ(both(P(traversal)), "invalid_pickle");
    CHECK_STR_EQ(both(P(six)), "invalid_pickle");
    CHECK_STR_EQ(both(P(twice)), "invalid_pickle");
    CHECK_STR_EQ(both(P(retyped)), "invalid_pickle");
    CHECK_STR_EQ(parse(P(same), 1, &r), "ok");
    CHECK(r != NULL && pkl_n_storages(r) == 1 && pkl_root(r)->items[0] == pkl_root(r)->items[1]);
    pkl_free(r);
    CHECK_STR_EQ(parse(P(quant), 1, &r), "disallowed_global");
    CHECK_STR_EQ(parse(P(quant), 0, &r), "invalid_dtype");
}

/* Rebuild functions and their argument checks. */
static void test_rebuild_functions(void)
{
    static const char bad_args[] = V2 "("
                                      "X\x01\x00\x00\x00"
                                      "x"
                                      "t"
                                      "R"
                                      ".";
    static const char negative[] = V2 "(" PID("FloatStorage", "0", "\x06") "K\x00"
                                                                           "J\xfe\xff\xff\xff"
                                                                           "K\x03"
                                                                           "\x86"
                                                                           "K\x03"
                                                                           "K\x01"
                                                                           "\x86"
                                                                           "\x89" ODICT0 "t"
                                                                           "R"
                                                                           ".";
    static const char v3[] =
        V3 "(" PID("UntypedStorage", "0", "\x20") "K\x00"
                                                  "K\x04"
                                                  "K\x08"
                                                  "\x86"
                                                  "K\x08"
                                                  "K\x01"
                                                  "\x86"
                                                  "\x89" ODICT0 "ctorch\nfloat8_e4m3fn\n"
                                                  "t"
                                                  "R"
                                                  ".";
    static const char v3_nodtype[] = V3 "(" PID("UntypedStorage", "0", "\x20") "K\x00"
                                                                               "K\x04"
                                                                               "K\x08"
                                                                               "\x86"
                                                                               "K\x08"
                                                                               "K\x01"
                                                                               "\x86"
                                                                               "\x89" ODICT0 "K\x01"
                                                                               "t"
                                                                               "R"
                                                                               ".";
    static const char param[] = "ctorch._utils\n_rebuild_parameter\n"
                                "(" T23("0") "\x88" ODICT0 "t"
                                             "R"
                                             ".";
    static const char from_type[] =
        "ctorch._tensor\n_rebuild_from_type_v2\n"
        "(" V2 "ctorch.nn.parameter\nParameter\n"
        "(" PID("FloatStorage", "0", "\x06") "K\x00" SIZE23 "\x89" ODICT0 "t"
                                             "}"
                                             "t"
                                             "R"
                                             ".";
    static const char newobj[] = "ctorch.nn.parameter\nParameter\n"
                                 "(" T23("0") "t"
                                              "\x81"
                                              ".";
    struct pkl_result *r = NULL;
    const struct pkl_value *t;

    CHECK_STR_EQ(both(P(bad_args)), "invalid_pickle");
    CHECK_STR_EQ(both(P(negative)), "shape_mismatch");
    CHECK_STR_EQ(both(P(v3_nodtype)), "invalid_dtype");
    CHECK_STR_EQ(parse(P(v3), 1, &r), "ok");
    t = r ? pkl_root(r) : NULL;
    CHECK(t != NULL && t->kind == PKL_TENSOR && t->tensor.dtype == DTYPE_F8_E4M3);
    CHECK(r != NULL && pkl_storage_at(r, 0)->untyped == 1 && pkl_storage_at(r, 0)->numel == 32);
    pkl_free(r);
    CHECK_STR_EQ(parse(P(param), 1, &r), "ok");
    CHECK(r != NULL && pkl_root(r)->kind == PKL_TENSOR);
    pkl_free(r);
    CHECK_STR_EQ(parse(P(from_type), 1, &r), "ok");
    CHECK(r != NULL && pkl_root(r)->kind == PKL_TENSOR && pkl_root(r)->tensor.size[1] == 3);
    pkl_free(r);
    CHECK_STR_EQ(parse(P(newobj), 1, &r), "ok");
    CHECK(r != NULL && pkl_root(r)->kind == PKL_TENSOR);
    pkl_free(r);
}

/* Rank above 16 is a limit, not a crash. */
static void test_rank_limit(void)
{
    char pk[512];
    size_t n = 0;
    static const char head[] = V2 "(" PID("FloatStorage", "0", "\x06") "K\x00"
                                                                       "(";

    memcpy(pk, head, sizeof(head) - 1);
    n = sizeof(head) - 1;
    for (int i = 0; i < 17; i++)
        pk[n++] = 'K', pk[n++] = 1;
    pk[n++] = 't';
    pk[n++] = '(';
    for (int i = 0; i < 17; i++)
        pk[n++] = 'K', pk[n++] = 1;
    memcpy(pk + n,
           "t"
           "\x89" ODICT0 "t"
           "R"
           ".",
           sizeof("t"
                  "\x89" ODICT0 "t"
                  "R"
                  ".") -
               1);
    n += sizeof("t"
                "\x89" ODICT0 "t"
                "R"
                ".") -
         1;
    CHECK_STR_EQ(both((const unsigned char *)pk, n), "limit_exceeded");
}

int main(void)
{
    test_linear_state_dict();
    test_memo_sharing();
    test_setitems();
    test_large_dict();
    test_integers();
    test_binfloat_big_endian();
    test_protocol4();
    test_deny_list();
    test_allowed_builtins();
    test_strict_and_lenient();
    test_structural_errors();
    test_refused_opcodes();
    test_limits();
    test_stack_ops();
    test_persistent_ids();
    test_rebuild_functions();
    test_rank_limit();
    return check_report("test_pickle");
}
