/* pickle_ops.c -- the pickle opcode interpreter (docs/checkpoint-formats.md, Restricted unpickler):
 * operand reading bounded by the remaining input, the stack with MARK
 * positions, the memo, and one handler per opcode in a const table. Opcodes
 * without a handler (INST, OBJ, EXT*, PERSID, out-of-band buffers, the text
 * protocol, unknown bytes) are invalid_pickle. See pickle.h.
 */
#include <stdlib.h>
#include <string.h>

#include "core/formats/pickle_int.h"
#include "core/utf8.h"

typedef enum err_code pkl_op_fn(struct pkl_parser *p, unsigned char op);

/* --- Operands ------------------------------------------------------------------------- */

static enum err_code pkl_read(struct pkl_parser *p, uint64_t n, const unsigned char **out)
{
    if (n > p->len - p->pos)
        return pkl__fail(p, ERR_FORMAT, ERR_CAT_INVALID_PICKLE,
                         "operand of %llu bytes but only %zu bytes left", (unsigned long long)n,
                         p->len - p->pos);
    *out = p->buf + p->pos;
    p->pos += (size_t)n;
    return ERR_OK;
}

static enum err_code pkl_read_le(struct pkl_parser *p, int n, uint64_t *out)
{
    const unsigned char *b = NULL;
    enum err_code rc = pkl_read(p, (uint64_t)n, &b);

    *out = 0;
    for (int i = 0; !rc && i < n; i++)
        *out |= (uint64_t)b[i] << (8 * i);
    return rc;
}

/* --- Stack, marks, memo ------------------------------------------------------------------ */

static size_t pkl_base(const struct pkl_parser *p)
{
    return p->n_marks ? p->marks[p->n_marks - 1] : 0;
}

enum err_code pkl__push(struct pkl_parser *p, struct pkl_value *v)
{
    if (p->n_stack >= p->lim.max_pickle_stack)
        return pkl__fail(p, ERR_TOOBIG, ERR_CAT_LIMIT_EXCEEDED, "pickle stack deeper than %llu",
                         (unsigned long long)p->lim.max_pickle_stack);
    if (p->n_stack == p->cap_stack) {
        size_t cap = p->cap_stack ? 2 * p->cap_stack : 64;
        struct pkl_value **ns;
        enum err_code rc =
            pkl__mem(p, (uint64_t)cap * sizeof(struct pkl_value *),
                     (uint64_t)p->cap_stack * sizeof(struct pkl_value *), "the stack");
        if (rc)
            return rc;
        /* NOLINTNEXTLINE(bugprone-sizeof-expression): the elements are pointers */
        ns = realloc(p->stack, cap * sizeof(*ns));
        if (ns == NULL)
            return err_set(p->e, ERR_NOMEM, "out of memory growing the pickle stack");
        p->stack = ns;
        p->cap_stack = cap;
    }
    p->stack[p->n_stack++] = v;
    return ERR_OK;
}

static enum err_code pkl_pop(struct pkl_parser *p, struct pkl_value **out)
{
    *out = NULL;
    if (p->n_stack <= pkl_base(p))
        return pkl__fail(p, ERR_FORMAT, ERR_CAT_INVALID_PICKLE,
                         p->n_stack ? "MARK where a value is needed" : "stack underflow");
    *out = p->stack[--p->n_stack];
    return ERR_OK;
}

static enum err_code pkl_top(struct pkl_parser *p, struct pkl_value **out)
{
    *out = NULL;
    if (p->n_stack <= pkl_base(p))
        return pkl__fail(p, ERR_FORMAT, ERR_CAT_INVALID_PICKLE,
                         p->n_stack ? "MARK where a value is needed" : "stack underflow");
    *out = p->stack[p->n_stack - 1];
    return ERR_OK;
}

/* Pop everything above the last MARK: items[0..*n) stay valid until the next push. */
static enum err_code pkl_pop_mark(struct pkl_parser *p, struct pkl_value ***items, size_t *n)
{
    size_t base;

    if (p->n_marks == 0)
        return pkl__fail(p, ERR_FORMAT, ERR_CAT_INVALID_PICKLE, "no MARK to pop to");
    base = p->marks[--p->n_marks];
    *n = p->n_stack - base;
    *items = *n > 0 ? p->stack + base : NULL; /* the stack is NULL until the first push */
    p->n_stack = base;
    return ERR_OK;
}

static enum err_code pkl_memo_put(struct pkl_parser *p, uint64_t idx)
{
    struct pkl_value *v;
    enum err_code rc = pkl_top(p, &v);

    if (rc)
        return rc;
    if (idx >= p->lim.max_pickle_memo)
        return pkl__fail(p, ERR_TOOBIG, ERR_CAT_LIMIT_EXCEEDED,
                         "memo index %llu beyond the limit %llu", (unsigned long long)idx,
                         (unsigned long long)p->lim.max_pickle_memo);
    if (idx >= p->cap_memo) {
        size_t cap = p->cap_memo ? p->cap_memo : 64;
        struct pkl_value **nm;
        while (cap <= idx)
            cap *= 2;
        rc = pkl__mem(p, (uint64_t)cap * sizeof(struct pkl_value *),
                      (uint64_t)p->cap_memo * sizeof(struct pkl_value *), "the memo");
        if (rc)
            return rc;
        /* NOLINTNEXTLINE(bugprone-sizeof-expression): the elements are pointers */
        nm = realloc(p->memo, cap * sizeof(*nm));
        if (nm == NULL)
            return err_set(p->e, ERR_NOMEM, "out of memory growing the pickle memo");
        /* NOLINTNEXTLINE(bugprone-sizeof-expression): the elements are pointers */
        memset(nm + p->cap_memo, 0, (cap - p->cap_memo) * sizeof(*nm));
        p->memo = nm;
        p->cap_memo = cap;
    }
    if (p->memo[idx] == NULL)
        p->n_memo++;
    p->memo[idx] = v;
    return ERR_OK;
}

/* --- Handlers ------------------------------------------------------------------------------ */

static enum err_code pkl_op_proto(struct pkl_parser *p, unsigned char op)
{
    const unsigned char *b = NULL;
    enum err_code rc = pkl_read(p, op == 0x80 ? 1 : 8, &b);

    if (rc || op != 0x80) /* FRAME: the stream is continuous, skip the length */
        return rc;
    if (b[0] > 5)
        return pkl__fail(p, ERR_FORMAT, ERR_CAT_INVALID_PICKLE, "pickle protocol %u",
                         (unsigned)b[0]);
    if (b[0] > p->r->protocol)
        p->r->protocol = b[0];
    return ERR_OK;
}

static enum err_code pkl_op_memo(struct pkl_parser *p, unsigned char op)
{
    uint64_t idx = p->n_memo;
    enum err_code rc = ERR_OK;

    if (op == 'q' || op == 'h')
        rc = pkl_read_le(p, 1, &idx);
    else if (op == 'r' || op == 'j')
        rc = pkl_read_le(p, 4, &idx);
    if (rc)
        return rc;
    if (op == 'q' || op == 'r' || op == 0x94)
        return pkl_memo_put(p, idx);
    if (idx >= p->cap_memo || p->memo[idx] == NULL)
        return pkl__fail(p, ERR_FORMAT, ERR_CAT_INVALID_PICKLE, "memo index %llu was never stored",
                         (unsigned long long)idx);
    return pkl__push(p, p->memo[idx]);
}

static enum err_code pkl_op_int(struct pkl_parser *p, unsigned char op)
{
    static const int widths[] = {['K'] = 1, ['M'] = 2, ['J'] = 4};
    struct pkl_value *v;
    uint64_t n = 0, raw;
    enum err_code rc;
    int w;

    if (op == 0x8A || op == 0x8B) { /* LONG1 / LONG4: n-byte two's complement */
        rc = pkl_read_le(p, op == 0x8A ? 1 : 4, &n);
        if (!rc && (op == 0x8B && (n & 0x80000000u)))
            return pkl__fail(p, ERR_FORMAT, ERR_CAT_INVALID_PICKLE, "negative LONG4 length");
        if (!rc && n > 8)
            return pkl__fail(p, ERR_FORMAT, ERR_CAT_INVALID_PICKLE,
                             "integer of %llu bytes is wider than 64 bits", (unsigned long long)n);
        w = (int)n;
    } else {
        w = widths[op];
        rc = ERR_OK;
    }
    if (!rc)
        rc = pkl_read_le(p, w, &raw);
    if (!rc)
        rc = pkl__new(p, PKL_INT, &v);
    if (rc)
        return rc;
    if (w > 0 && w < 8 && op != 'K' && op != 'M' && (raw >> (8 * w - 1)) & 1)
        raw |= ~(uint64_t)0 << (8 * w); /* sign-extend (BININT, LONG1, LONG4) */
    memcpy(&v->i, &raw, sizeof(v->i));
    return pkl__push(p, v);
}

static enum err_code pkl_op_simple(struct pkl_parser *p, unsigned char op)
{
    struct pkl_value *v = NULL;
    enum err_code rc = ERR_OK;
    uint64_t bits;

    switch (op) {
    case 'N': v = p->none; break;
    case 0x88: v = p->vtrue; break;
    case 0x89: v = p->vfalse; break;
    case ')': rc = pkl__new(p, PKL_TUPLE, &v); break;
    case ']': rc = pkl__new(p, PKL_LIST, &v); break;
    case '}': rc = pkl__new(p, PKL_DICT, &v); break;
    case 0x8F: rc = pkl__new(p, PKL_SET, &v); break;
    case 'G': /* BINFLOAT: big-endian IEEE double */
    {
        const unsigned char *b = NULL;
        double d;
        rc = pkl_read(p, 8, &b);
        if (rc)
            return rc;
        bits = 0;
        for (int i = 0; i < 8; i++)
            bits = (bits << 8) | b[i];
        memcpy(&d, &bits, sizeof(d));
        rc = pkl__new(p, PKL_FLOAT, &v);
        if (!rc)
            v->f = d;
        break;
    }
    default: return pkl__fail(p, ERR_INTERNAL, ERR_CAT_INVALID_PICKLE, "unexpected opcode");
    }
    return rc ? rc : pkl__push(p, v);
}

static enum err_code pkl_op_string(struct pkl_parser *p, unsigned char op)
{
    const unsigned char *b = NULL;
    struct pkl_value *v;
    uint64_t n;
    enum err_code rc;
    int text = op == 'X' || op == 0x8C || op == 0x8D || op == 'U' || op == 'T';
    int w = (op == 0x8C || op == 'U' || op == 'C')  ? 1
            : (op == 'X' || op == 'T' || op == 'B') ? 4
                                                    : 8;

    rc = pkl_read_le(p, w, &n);
    if (rc)
        return rc;
    if (op == 'T' && (n & 0x80000000u))
        return pkl__fail(p, ERR_FORMAT, ERR_CAT_INVALID_PICKLE, "negative BINSTRING length");
    rc = pkl_read(p, n, &b); /* length checked against the input before allocating */
    if (rc)
        return rc;
    if (text && utf8_check(b, n) != n)
        return pkl__fail(p, ERR_FORMAT, ERR_CAT_INVALID_PICKLE, "invalid UTF-8 in a string");
    rc = pkl__new_str(p, text ? PKL_STR : PKL_BYTES, (const char *)b, (size_t)n, &v);
    return rc ? rc : pkl__push(p, v);
}

static enum err_code pkl_op_global(struct pkl_parser *p, unsigned char op)
{
    struct pkl_value *mod, *name;
    const unsigned char *b, *nl1, *nl2;
    enum err_code rc;

    if (op == 0x93) { /* STACK_GLOBAL */
        rc = pkl_pop(p, &name);
        if (!rc)
            rc = pkl_pop(p, &mod);
        if (rc)
            return rc;
        if (mod->kind != PKL_STR || name->kind != PKL_STR)
            return pkl__fail(p, ERR_FORMAT, ERR_CAT_INVALID_PICKLE,
                             "STACK_GLOBAL needs two strings");
        return pkl__global(p, mod->str, mod->len, name->str, name->len);
    }
    b = p->buf + p->pos;
    nl1 = memchr(b, '\n', p->len - p->pos);
    nl2 = nl1 ? memchr(nl1 + 1, '\n', p->len - p->pos - (size_t)(nl1 + 1 - b)) : NULL;
    if (nl2 == NULL)
        return pkl__fail(p, ERR_FORMAT, ERR_CAT_INVALID_PICKLE, "unterminated GLOBAL operand");
    p->pos += (size_t)(nl2 + 1 - b);
    if (utf8_check(b, (uint64_t)(nl2 - b)) != (uint64_t)(nl2 - b))
        return pkl__fail(p, ERR_FORMAT, ERR_CAT_INVALID_PICKLE, "invalid UTF-8 in a GLOBAL name");
    return pkl__global(p, (const char *)b, (size_t)(nl1 - b), (const char *)(nl1 + 1),
                       (size_t)(nl2 - nl1 - 1));
}

static enum err_code pkl_op_stack(struct pkl_parser *p, unsigned char op)
{
    struct pkl_value *v, **items;
    size_t n;
    enum err_code rc;

    switch (op) {
    case '(':
        if (p->n_marks >= p->lim.max_pickle_marks)
            return pkl__fail(p, ERR_TOOBIG, ERR_CAT_LIMIT_EXCEEDED, "MARK nesting deeper than %llu",
                             (unsigned long long)p->lim.max_pickle_marks);
        if (p->n_marks == p->cap_marks) {
            size_t cap = p->cap_marks ? 2 * p->cap_marks : 16;
            size_t *nm;
            rc = pkl__mem(p, (uint64_t)cap * sizeof(*nm), (uint64_t)p->cap_marks * sizeof(*nm),
                          "MARKs");
            if (rc)
                return rc;
            nm = realloc(p->marks, cap * sizeof(*nm));
            if (nm == NULL)
                return err_set(p->e, ERR_NOMEM, "out of memory for pickle marks");
            p->marks = nm;
            p->cap_marks = cap;
        }
        p->marks[p->n_marks++] = p->n_stack;
        return ERR_OK;
    case '0': /* POP: a value, or the MARK on top */
        if (p->n_stack > pkl_base(p)) {
            p->n_stack--;
            return ERR_OK;
        }
        return pkl_pop_mark(p, &items, &n);
    case '1': return pkl_pop_mark(p, &items, &n);
    case '2': rc = pkl_top(p, &v); return rc ? rc : pkl__push(p, v);
    default: return pkl__fail(p, ERR_INTERNAL, ERR_CAT_INVALID_PICKLE, "unexpected opcode");
    }
}

/* TUPLE, TUPLE1-3, LIST, DICT, FROZENSET: a new container from popped items. */
static enum err_code pkl_op_collect(struct pkl_parser *p, unsigned char op)
{
    struct pkl_value *c, **items, *tmp[3];
    enum pkl_kind kind = op == 'l'    ? PKL_LIST
                         : op == 'd'  ? PKL_DICT
                         : op == 0x91 ? PKL_SET
                                      : PKL_TUPLE;
    size_t n;
    enum err_code rc = ERR_OK;

    if (op >= 0x85 && op <= 0x87) {
        n = (size_t)(op - 0x84);
        for (size_t i = n; !rc && i > 0; i--)
            rc = pkl_pop(p, &tmp[i - 1]);
        items = tmp;
    } else {
        rc = pkl_pop_mark(p, &items, &n);
    }
    if (rc)
        return rc;
    if (kind == PKL_DICT && n % 2)
        return pkl__fail(p, ERR_FORMAT, ERR_CAT_INVALID_PICKLE, "odd number of DICT items");
    rc = pkl__new(p, kind, &c);
    if (rc)
        return rc;
    c->frozen = kind == PKL_SET;
    for (size_t i = 0; !rc && i < n; i += kind == PKL_DICT ? 2 : 1) {
        if (kind == PKL_DICT) {
            rc = pkl__dict_set(p, c, items[i], items[i + 1]);
            continue;
        }
        if (kind == PKL_SET)
            rc = pkl__check_hashable(p, items[i]);
        if (!rc)
            rc = pkl__append(p, c, items[i]);
    }
    return rc ? rc : pkl__push(p, c);
}

/* APPEND(S), SETITEM(S), ADDITEMS: fill the container under the popped items. */
static enum err_code pkl_op_fill(struct pkl_parser *p, unsigned char op)
{
    struct pkl_value *target, **items, *tmp[2];
    size_t n;
    enum err_code rc = ERR_OK;
    int pairs = op == 's' || op == 'u';

    if (op == 'a' || op == 's') {
        n = op == 'a' ? 1 : 2;
        for (size_t i = n; !rc && i > 0; i--)
            rc = pkl_pop(p, &tmp[i - 1]);
        items = tmp;
    } else {
        rc = pkl_pop_mark(p, &items, &n);
    }
    if (!rc)
        rc = pkl_top(p, &target);
    if (rc)
        return rc;
    if (pairs && n % 2)
        return pkl__fail(p, ERR_FORMAT, ERR_CAT_INVALID_PICKLE, "odd number of SETITEMS items");
    if (target->kind == PKL_OPAQUE) { /* lenient: keep values as children */
        for (size_t i = pairs ? 1 : 0; !rc && i < n; i += pairs ? 2 : 1)
            rc = pkl__append(p, target, items[i]);
        return rc;
    }
    if ((pairs && target->kind != PKL_DICT) ||
        (op == 0x90 && (target->kind != PKL_SET || target->frozen)) ||
        ((op == 'a' || op == 'e') && target->kind != PKL_LIST))
        return pkl__fail(p, ERR_FORMAT, ERR_CAT_INVALID_PICKLE, "%s on a %s",
                         pairs        ? "SETITEM(S)"
                         : op == 0x90 ? "ADDITEMS"
                                      : "APPEND(S)",
                         target->frozen ? "frozenset" : pkl_kind_name(target->kind));
    for (size_t i = 0; !rc && i < n; i += pairs ? 2 : 1) {
        if (pairs) {
            rc = pkl__dict_set(p, target, items[i], items[i + 1]);
            continue;
        }
        if (op == 0x90)
            rc = pkl__check_hashable(p, items[i]);
        if (!rc)
            rc = pkl__append(p, target, items[i]);
    }
    return rc;
}

/* REDUCE, NEWOBJ, NEWOBJ_EX, BUILD, BINPERSID. */
static enum err_code pkl_op_call(struct pkl_parser *p, unsigned char op)
{
    struct pkl_value *a = NULL, *b = NULL, *kw = NULL, *res = NULL;
    enum err_code rc = ERR_OK;

    if (op == 0x92)
        rc = pkl_pop(p, &kw); /* NEWOBJ_EX kwargs: ignored */
    if (!rc)
        rc = pkl_pop(p, &a);
    if (!rc && op != 'Q' && op != 'b')
        rc = pkl_pop(p, &b);
    if (!rc && op == 'b')
        rc = pkl_top(p, &b);
    if (rc)
        return rc;
    switch (op) {
    case 'R': rc = pkl__reduce(p, b, a, &res); break;
    case 0x81:
    case 0x92: rc = pkl__newobj(p, b, a, &res); break;
    case 'b': return pkl__build(p, b, a);
    case 'Q': rc = pkl__persid(p, a, &res); break;
    default: return pkl__fail(p, ERR_INTERNAL, ERR_CAT_INVALID_PICKLE, "unexpected opcode");
    }
    return rc ? rc : pkl__push(p, res);
}

static pkl_op_fn *const pkl_ops[256] = {
    [0x80] = pkl_op_proto,   [0x95] = pkl_op_proto,   ['q'] = pkl_op_memo,
    ['r'] = pkl_op_memo,     ['h'] = pkl_op_memo,     ['j'] = pkl_op_memo,
    [0x94] = pkl_op_memo,    ['K'] = pkl_op_int,      ['M'] = pkl_op_int,
    ['J'] = pkl_op_int,      [0x8A] = pkl_op_int,     [0x8B] = pkl_op_int,
    ['N'] = pkl_op_simple,   [0x88] = pkl_op_simple,  [0x89] = pkl_op_simple,
    [')'] = pkl_op_simple,   [']'] = pkl_op_simple,   ['}'] = pkl_op_simple,
    [0x8F] = pkl_op_simple,  ['G'] = pkl_op_simple,   ['X'] = pkl_op_string,
    [0x8C] = pkl_op_string,  [0x8D] = pkl_op_string,  ['U'] = pkl_op_string,
    ['T'] = pkl_op_string,   ['C'] = pkl_op_string,   ['B'] = pkl_op_string,
    [0x8E] = pkl_op_string,  [0x96] = pkl_op_string,  ['c'] = pkl_op_global,
    [0x93] = pkl_op_global,  ['('] = pkl_op_stack,    ['0'] = pkl_op_stack,
    ['1'] = pkl_op_stack,    ['2'] = pkl_op_stack,    ['t'] = pkl_op_collect,
    [0x85] = pkl_op_collect, [0x86] = pkl_op_collect, [0x87] = pkl_op_collect,
    ['l'] = pkl_op_collect,  ['d'] = pkl_op_collect,  [0x91] = pkl_op_collect,
    ['a'] = pkl_op_fill,     ['e'] = pkl_op_fill,     ['s'] = pkl_op_fill,
    ['u'] = pkl_op_fill,     [0x90] = pkl_op_fill,    ['R'] = pkl_op_call,
    [0x81] = pkl_op_call,    [0x92] = pkl_op_call,    ['b'] = pkl_op_call,
    ['Q'] = pkl_op_call,
};

enum err_code pkl__run(struct pkl_parser *p)
{
    enum err_code rc;
    struct pkl_value *v;

    for (;;) {
        unsigned char op;
        p->op_pos = p->pos;
        if (p->pos >= p->len)
            return pkl__fail(p, ERR_FORMAT, ERR_CAT_INVALID_PICKLE, "pickle ended without STOP");
        op = p->buf[p->pos++];
        if (op == '.') {
            rc = pkl_pop(p, &v);
            if (!rc)
                p->r->root = v;
            return rc;
        }
        if (pkl_ops[op] == NULL)
            return pkl__fail(p, ERR_FORMAT, ERR_CAT_INVALID_PICKLE, "unsupported opcode 0x%02x",
                             (unsigned)op);
        rc = pkl_ops[op](p, op);
        if (rc)
            return rc;
    }
}
