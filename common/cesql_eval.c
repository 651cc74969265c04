/* CESQL evaluator: walks a compiled tree against an event.
 *
 * Every node yields a value; an operator or function whose operand failed
 * yields the zero value of its own type marked erroneous (struct cv.err),
 * so an error always reaches the root, and the spec's error list is kept
 * as first kind + count + kind mask in struct cesql_st. In complete mode
 * the remaining operands are still evaluated (their errors are collected);
 * in fail-fast mode (trigger filters) evaluation returns at once. AND and
 * OR short-circuit in both modes. Nothing here allocates except the
 * scratch for built strings, which is the context's inline buffer first. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cesql_int.h"
#include "ofe/ce.h"

/* ---- Errors ------------------------------------------------------------ */

void cesql__raise(struct cesql_st *st, enum ofe_cesql_err kind)
{
    if (!st->first)
        st->first = (uint8_t)kind;
    st->nerr++;
    st->mask |= 1u << kind;
}

const char *ofe_cesql_errname(enum ofe_cesql_err err)
{
    static const char *const names[OFE_CESQL_E__COUNT] = {
        [OFE_CESQL_OK] = NULL,
        [OFE_CESQL_EPARSE] = "parse",
        [OFE_CESQL_EMATH] = "math",
        [OFE_CESQL_ECAST] = "cast",
        [OFE_CESQL_EMISSINGATTR] = "missingAttribute",
        [OFE_CESQL_EMISSINGFN] = "missingFunction",
        [OFE_CESQL_EFUNC] = "functionEvaluation",
        [OFE_CESQL_EGENERIC] = "generic",
    };
    if ((unsigned)err >= OFE_CESQL_E__COUNT)
        return NULL;
    return names[err];
}

const char *ofe_cesql_typename(enum ofe_cesql_type t)
{
    switch (t) {
    case OFE_CESQL_T_BOOLEAN:
        return "Boolean";
    case OFE_CESQL_T_INTEGER:
        return "Integer";
    case OFE_CESQL_T_STRING:
        return "String";
    default:
        return "unknown";
    }
}

/* ---- Scratch ----------------------------------------------------------- */

struct scratch_chunk {
    struct scratch_chunk *next;
    size_t size;
    char data[];
};

void ofe_cesql_ctx_init(struct ofe_cesql_ctx *ctx)
{
    ctx->used = 0;
    ctx->total = 0;
    ctx->cur = NULL; /* NULL: the inline buffer (the struct may be moved) */
    ctx->cur_size = sizeof(ctx->inl);
    ctx->chunks = NULL;
    ctx->spare = NULL;
}

static void free_chunks(struct scratch_chunk *c)
{
    while (c) {
        struct scratch_chunk *next = c->next;
        free(c);
        c = next;
    }
}

void cesql__ctx_reset(struct ofe_cesql_ctx *ctx)
{
    struct scratch_chunk *c = ctx->chunks;
    if (c) {
        /* Keep the biggest chunk for the next evaluation. */
        struct scratch_chunk *best = ctx->spare, *keep = NULL;
        for (; c; c = c->next)
            if (!best || c->size > best->size)
                best = c;
        c = ctx->chunks;
        while (c) {
            struct scratch_chunk *next = c->next;
            if (c == best)
                keep = c;
            else
                free(c);
            c = next;
        }
        if (ctx->spare && ctx->spare != best)
            free(ctx->spare);
        if (keep)
            keep->next = NULL;
        ctx->spare = best;
        ctx->chunks = NULL;
    }
    ctx->used = 0;
    ctx->total = 0;
    ctx->cur = NULL;
    ctx->cur_size = sizeof(ctx->inl);
}

void ofe_cesql_ctx_fini(struct ofe_cesql_ctx *ctx)
{
    free_chunks(ctx->chunks);
    free(ctx->spare);
    ofe_cesql_ctx_init(ctx);
}

char *cesql__scratch(struct cesql_st *st, size_t n)
{
    struct ofe_cesql_ctx *ctx = st->ctx;
    if (n > OFE_CESQL_SCRATCH_MAX || ctx->total + n > OFE_CESQL_SCRATCH_MAX)
        return NULL;
    if (ctx->used + n > ctx->cur_size) {
        struct scratch_chunk *c = ctx->spare;
        if (c && c->size >= n) {
            ctx->spare = NULL;
        } else {
            size_t size = n > 4096 ? n : 4096;
            /* Grow geometrically so a long evaluation makes few chunks. */
            if (ctx->chunks && ((struct scratch_chunk *)ctx->chunks)->size * 2 > size)
                size = ((struct scratch_chunk *)ctx->chunks)->size * 2;
            if (size > OFE_CESQL_SCRATCH_MAX)
                size = n > OFE_CESQL_SCRATCH_MAX ? n : OFE_CESQL_SCRATCH_MAX;
            c = malloc(sizeof(*c) + size);
            if (!c)
                return NULL;
            c->size = size;
        }
        c->next = ctx->chunks;
        ctx->chunks = c;
        ctx->cur = c->data;
        ctx->cur_size = c->size;
        ctx->used = 0;
    }
    char *base = ctx->cur ? ctx->cur : ctx->inl;
    char *p = base + ctx->used;
    ctx->used += n;
    ctx->total += n;
    return p;
}

/* ---- Casts (spec 3.7) -------------------------------------------------- */

bool cesql__parse_int(const char *s, size_t len, int32_t *out)
{
    size_t i = 0;
    bool neg = false;
    if (len && (s[0] == '+' || s[0] == '-')) {
        neg = s[0] == '-';
        i = 1;
    }
    if (i == len)
        return false;
    int64_t v = 0;
    for (; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (s[i] - '0');
        if (v > 2147483648LL)
            return false;
    }
    if (neg)
        v = -v;
    if (v > INT32_MAX)
        return false;
    *out = (int32_t)v;
    return true;
}

bool cesql__parse_bool(const char *s, size_t len, bool *out)
{
    if (len == 4 && (s[0] | 0x20) == 't' && (s[1] | 0x20) == 'r' && (s[2] | 0x20) == 'u' &&
        (s[3] | 0x20) == 'e') {
        *out = true;
        return true;
    }
    if (len == 5 && (s[0] | 0x20) == 'f' && (s[1] | 0x20) == 'a' && (s[2] | 0x20) == 'l' &&
        (s[3] | 0x20) == 's' && (s[4] | 0x20) == 'e') {
        *out = false;
        return true;
    }
    return false;
}

bool cesql__to_int(struct cesql_st *st, struct cv v, int32_t *out)
{
    if (v.t == OFE_CESQL_T_STRING) {
        if (cesql__parse_int(v.s, v.len, out))
            return true;
        cesql__raise(st, OFE_CESQL_ECAST);
        return false;
    }
    *out = v.i;
    return true;
}

bool cesql__to_bool(struct cesql_st *st, struct cv v, bool *out)
{
    if (v.t == OFE_CESQL_T_STRING) {
        if (cesql__parse_bool(v.s, v.len, out))
            return true;
        cesql__raise(st, OFE_CESQL_ECAST);
        return false;
    }
    *out = v.i != 0;
    return true;
}

bool cesql__to_str(struct cesql_st *st, struct cv v, const char **s, uint32_t *len)
{
    switch (v.t) {
    case OFE_CESQL_T_STRING:
        *s = v.s;
        *len = v.len;
        return true;
    case OFE_CESQL_T_BOOLEAN:
        *s = v.i ? "true" : "false";
        *len = v.i ? 4 : 5;
        return true;
    default: {
        char tmp[12];
        uint32_t u = v.i < 0 ? 0u - (uint32_t)v.i : (uint32_t)v.i;
        size_t n = 0;
        do {
            tmp[n++] = (char)('0' + u % 10);
            u /= 10;
        } while (u);
        if (v.i < 0)
            tmp[n++] = '-';
        char *d = cesql__scratch(st, n);
        if (!d) {
            cesql__raise(st, OFE_CESQL_EGENERIC);
            return false;
        }
        for (size_t k = 0; k < n; k++)
            d[k] = tmp[n - 1 - k];
        *s = d;
        *len = (uint32_t)n;
        return true;
    }
    }
}

struct cv cesql__cast(struct cesql_st *st, struct cv v, uint8_t t)
{
    if (v.err)
        return cesql__zero(t);
    if (v.t == t)
        return v;
    switch (t) {
    case OFE_CESQL_T_INTEGER: {
        int32_t i;
        return cesql__to_int(st, v, &i) ? cesql__int(i) : cesql__zero(t);
    }
    case OFE_CESQL_T_BOOLEAN: {
        bool b;
        return cesql__to_bool(st, v, &b) ? cesql__bool(b) : cesql__zero(t);
    }
    default: {
        const char *s;
        uint32_t len;
        return cesql__to_str(st, v, &s, &len) ? cesql__str(s, len) : cesql__zero(t);
    }
    }
}

/* ---- LIKE -------------------------------------------------------------- */

bool cesql__like_compile(struct cesql_arena *a, const char *pat, size_t len, struct like_pat **out)
{
    size_t maxfr = 1;
    for (size_t i = 0; i < len; i++)
        if (pat[i] == '%')
            maxfr++;
    struct like_pat *lp = cesql__arena_alloc(a, sizeof(*lp));
    struct like_frag *fr = cesql__arena_alloc(a, maxfr * sizeof(*fr));
    struct like_unit *units = cesql__arena_alloc(a, (len + 1) * sizeof(*units));
    char *lit = cesql__arena_alloc(a, len + 1);
    if (!lp || !fr || !units || !lit)
        return false;
    size_t nu = 0, nl = 0;
    uint32_t nf = 1;
    fr[0].u = units;
    fr[0].n = 0;
    bool in_lit = false, last_pct = false;
    for (size_t i = 0; i < len; i++) {
        char c = pat[i];
        if (c == '%') {
            in_lit = false;
            if (!last_pct) {
                fr[nf].u = units + nu;
                fr[nf].n = 0;
                nf++;
            }
            last_pct = true;
            continue;
        }
        last_pct = false;
        struct like_frag *cur = &fr[nf - 1];
        if (c == '_') {
            units[nu].s = NULL;
            units[nu].len = 0;
            nu++;
            cur->n++;
            in_lit = false;
            continue;
        }
        /* \% \_ and \\ stand for the character itself; any other backslash
         * is an ordinary character. */
        if (c == '\\' && i + 1 < len &&
            (pat[i + 1] == '%' || pat[i + 1] == '_' || pat[i + 1] == '\\'))
            c = pat[++i];
        if (in_lit) {
            units[nu - 1].len++;
        } else {
            units[nu].s = lit + nl;
            units[nu].len = 1;
            nu++;
            cur->n++;
            in_lit = true;
        }
        lit[nl++] = c;
    }
    lp->f = fr;
    lp->nfrags = nf;
    *out = lp;
    return true;
}

/* Matches fragment f at s[pos..]; *end gets where it stopped. */
static bool frag_at(const struct like_frag *f, const char *s, size_t len, size_t pos, size_t *end)
{
    for (uint32_t k = 0; k < f->n; k++) {
        const struct like_unit *u = &f->u[k];
        if (u->s) {
            if (len - pos < u->len || memcmp(s + pos, u->s, u->len) != 0)
                return false;
            pos += u->len;
        } else {
            if (pos >= len)
                return false;
            pos = cesql__utf8_next(s, len, pos);
        }
    }
    *end = pos;
    return true;
}

/* Matches fragment f so that it ends exactly at len and starts at or after
 * minpos. */
static bool frag_end(const struct like_frag *f, const char *s, size_t len, size_t minpos)
{
    size_t pos = len;
    for (uint32_t k = f->n; k-- > 0;) {
        const struct like_unit *u = &f->u[k];
        if (u->s) {
            if (pos - minpos < u->len || memcmp(s + pos - u->len, u->s, u->len) != 0)
                return false;
            pos -= u->len;
        } else {
            if (pos <= minpos)
                return false;
            pos = cesql__utf8_prev(s, pos);
            if (pos < minpos)
                return false;
        }
    }
    return true;
}

bool cesql__like_match(const struct like_pat *p, const char *s, size_t len)
{
    size_t pos;
    if (!frag_at(&p->f[0], s, len, 0, &pos))
        return false;
    if (p->nfrags == 1)
        return pos == len;
    /* Middle fragments: the leftmost match of each leaves the most room for
     * the rest, so a greedy scan is exact. */
    for (uint32_t i = 1; i + 1 < p->nfrags; i++) {
        const struct like_frag *f = &p->f[i];
        if (f->n == 0)
            continue;
        bool found = false;
        size_t q = pos;
        while (q <= len) {
            if (f->u[0].s) {
                const char *hit = memmem(s + q, len - q, f->u[0].s, f->u[0].len);
                if (!hit)
                    return false;
                q = (size_t)(hit - s);
            }
            size_t e;
            if (frag_at(f, s, len, q, &e)) {
                pos = e;
                found = true;
                break;
            }
            if (q >= len)
                break;
            q = cesql__utf8_next(s, len, q);
        }
        if (!found)
            return false;
    }
    return frag_end(&p->f[p->nfrags - 1], s, len, pos);
}

/* ---- Evaluation -------------------------------------------------------- */

static struct cv attr_value(const struct ofe_ce_attr *a)
{
    switch (a->type) {
    case OFE_CE_T_INTEGER:
        return cesql__int(a->ival);
    case OFE_CE_T_BOOLEAN:
        return cesql__bool(a->ival != 0);
    default:
        return cesql__str(a->value, a->value_len);
    }
}

static const struct ofe_ce_attr *find_ext(const struct ofe_ce *ev, const struct cesql_node *n)
{
    if (!ev)
        return NULL;
    for (uint32_t i = 0; i < ev->next; i++) {
        const struct ofe_ce_attr *a = &ev->ext[i];
        if (a->name_len == n->name_len && a->value && memcmp(a->name, n->name, n->name_len) == 0)
            return a;
    }
    return NULL;
}

static const struct ofe_ce_attr *find_attr(const struct ofe_ce *ev, const struct cesql_node *n)
{
    if (n->slot >= 0)
        return ev && ev->spec[n->slot].value ? &ev->spec[n->slot] : NULL;
    return find_ext(ev, n);
}

static bool str_eq(const char *a, uint32_t al, const char *b, uint32_t bl)
{
    return al == bl && (al == 0 || memcmp(a, b, al) == 0);
}

static struct cv eval_arith(struct cesql_st *st, const struct cesql_node *n)
{
    struct cv x = cesql__eval(st, n->a);
    if (x.err && !st->complete)
        return cesql__zero(OFE_CESQL_T_INTEGER);
    struct cv y = cesql__eval(st, n->b);
    if (x.err || y.err)
        return cesql__zero(OFE_CESQL_T_INTEGER);
    int32_t l = 0, r = 0;
    bool okl = cesql__to_int(st, x, &l);
    if (!okl && !st->complete)
        return cesql__zero(OFE_CESQL_T_INTEGER);
    bool okr = cesql__to_int(st, y, &r);
    if (!okl || !okr)
        return cesql__zero(OFE_CESQL_T_INTEGER);
    int64_t v;
    switch (n->op) {
    case TK_PLUS:
        v = (int64_t)l + r;
        break;
    case TK_MINUS:
        v = (int64_t)l - r;
        break;
    case TK_STAR:
        v = (int64_t)l * r;
        break;
    case TK_SLASH:
        if (r == 0) {
            cesql__raise(st, OFE_CESQL_EMATH);
            return cesql__zero(OFE_CESQL_T_INTEGER);
        }
        v = (int64_t)l / r;
        break;
    default: /* TK_PERCENT */
        if (r == 0) {
            cesql__raise(st, OFE_CESQL_EMATH);
            return cesql__zero(OFE_CESQL_T_INTEGER);
        }
        v = (int64_t)l % r;
        break;
    }
    if (v < INT32_MIN || v > INT32_MAX) {
        cesql__raise(st, OFE_CESQL_EMATH); /* 32-bit overflow */
        return cesql__zero(OFE_CESQL_T_INTEGER);
    }
    return cesql__int((int32_t)v);
}

static struct cv eval_cmp(struct cesql_st *st, const struct cesql_node *n)
{
    struct cv x = cesql__eval(st, n->a);
    if (x.err && !st->complete)
        return cesql__zero(OFE_CESQL_T_BOOLEAN);
    struct cv y = cesql__eval(st, n->b);
    if (x.err || y.err)
        return cesql__zero(OFE_CESQL_T_BOOLEAN);
    if (n->kind == N_EQ) {
        /* Ambiguous operator: the right operand's type decides (3.7). */
        bool eq;
        if (x.t != y.t) {
            x = cesql__cast(st, x, y.t);
            if (x.err)
                return cesql__zero(OFE_CESQL_T_BOOLEAN);
        }
        if (y.t == OFE_CESQL_T_STRING)
            eq = str_eq(x.s, x.len, y.s, y.len);
        else
            eq = x.i == y.i;
        return cesql__bool(n->op == TK_EQ ? eq : !eq);
    }
    int32_t l = 0, r = 0;
    bool okl = cesql__to_int(st, x, &l);
    if (!okl && !st->complete)
        return cesql__zero(OFE_CESQL_T_BOOLEAN);
    bool okr = cesql__to_int(st, y, &r);
    if (!okl || !okr)
        return cesql__zero(OFE_CESQL_T_BOOLEAN);
    switch (n->op) {
    case TK_LT:
        return cesql__bool(l < r);
    case TK_LE:
        return cesql__bool(l <= r);
    case TK_GT:
        return cesql__bool(l > r);
    default:
        return cesql__bool(l >= r);
    }
}

static struct cv eval_logic(struct cesql_st *st, const struct cesql_node *n)
{
    struct cv v = cesql__eval(st, n->kids[0]);
    bool acc = false;
    bool erred = v.err || !cesql__to_bool(st, v, &acc);
    if (erred) {
        acc = false;
        if (!st->complete)
            return cesql__zero(OFE_CESQL_T_BOOLEAN);
    }
    /* Left to right, as ((k0 op1 k1) op2 k2) ...: an erroneous left side
     * counts as false (so AND skips its right side) and makes every later
     * result false too. */
    for (uint32_t i = 1; i < n->nkids; i++) {
        uint8_t op = n->ops[i];
        if (op == TK_AND && !acc)
            continue;
        if (op == TK_OR && acc)
            continue;
        struct cv r = cesql__eval(st, n->kids[i]);
        bool rb = false;
        if (r.err || !cesql__to_bool(st, r, &rb)) {
            erred = true;
            acc = false;
            if (!st->complete)
                return cesql__zero(OFE_CESQL_T_BOOLEAN);
            continue;
        }
        if (erred)
            continue;
        if (op == TK_XOR)
            acc = acc != rb;
        else
            acc = rb;
    }
    return erred ? cesql__zero(OFE_CESQL_T_BOOLEAN) : cesql__bool(acc);
}

static struct cv eval_in(struct cesql_st *st, const struct cesql_node *n)
{
    struct cv x = cesql__eval(st, n->a);
    if (x.err && !st->complete)
        return cesql__zero(OFE_CESQL_T_BOOLEAN);
    bool erred = x.err, found = false;
    for (uint32_t i = 0; i < n->nkids; i++) {
        const struct in_const *c = &n->inc[i];
        if (c->is_const) {
            if (erred)
                continue;
            /* The left operand's type is the target type (3.4.5). */
            switch (x.t) {
            case OFE_CESQL_T_INTEGER:
                if (!c->int_ok)
                    goto cast_error;
                found |= c->as_int == x.i;
                break;
            case OFE_CESQL_T_BOOLEAN:
                if (!c->bool_ok)
                    goto cast_error;
                found |= c->as_bool == (x.i != 0);
                break;
            default:
                found |= str_eq(c->as_str, c->str_len, x.s, x.len);
                break;
            }
            continue;
        cast_error:
            cesql__raise(st, OFE_CESQL_ECAST);
            erred = true;
            if (!st->complete)
                return cesql__zero(OFE_CESQL_T_BOOLEAN);
            continue;
        }
        struct cv y = cesql__eval(st, n->kids[i]);
        if (!y.err && !erred)
            y = cesql__cast(st, y, x.t);
        if (y.err) {
            erred = true;
            if (!st->complete)
                return cesql__zero(OFE_CESQL_T_BOOLEAN);
            continue;
        }
        if (erred)
            continue;
        if (x.t == OFE_CESQL_T_STRING)
            found |= str_eq(x.s, x.len, y.s, y.len);
        else
            found |= x.i == y.i;
    }
    if (erred)
        return cesql__zero(OFE_CESQL_T_BOOLEAN);
    return cesql__bool(n->op ? !found : found);
}

struct ofe_cesql_fnctx {
    struct cesql_st *st;
};

char *ofe_cesql_fn_alloc(struct ofe_cesql_fnctx *fc, size_t len)
{
    return cesql__scratch(fc->st, len ? len : 1);
}

static struct cv call_custom(struct cesql_st *st, const struct cesql_fn *fn, struct cv *args,
                             unsigned nargs)
{
    struct ofe_cesql_value pargs[nargs ? nargs : 1]; /* nargs <= OFE_CESQL_MAX_CALL_ARGS */
    for (unsigned i = 0; i < nargs; i++) {
        pargs[i].type = (enum ofe_cesql_type)args[i].t;
        pargs[i].i = args[i].i;
        pargs[i].s = args[i].t == OFE_CESQL_T_STRING ? args[i].s : NULL;
        pargs[i].len = args[i].len;
    }
    struct ofe_cesql_fnctx fc = {st};
    struct ofe_cesql_value ret = {OFE_CESQL_T_NONE, 0, NULL, 0};
    enum ofe_cesql_err e = fn->custom(&fc, fn->opaque, pargs, nargs, &ret);
    if ((unsigned)e >= OFE_CESQL_E__COUNT || e == OFE_CESQL_EPARSE)
        e = OFE_CESQL_EFUNC;
    if (ret.type != fn->ret || (ret.type == OFE_CESQL_T_STRING && !ret.s && ret.len) ||
        ret.len > UINT32_MAX) {
        /* No valid value for the declared type (3.5.3). */
        if (e)
            cesql__raise(st, e);
        cesql__raise(st, OFE_CESQL_EFUNC);
        return cesql__zero(fn->ret);
    }
    struct cv v;
    if (ret.type == OFE_CESQL_T_STRING)
        v = cesql__str(ret.s ? ret.s : "", (uint32_t)ret.len);
    else if (ret.type == OFE_CESQL_T_BOOLEAN)
        v = cesql__bool(ret.i != 0);
    else
        v = cesql__int(ret.i);
    if (e) {
        cesql__raise(st, e);
        v.err = 1;
    }
    return v;
}

static struct cv eval_call(struct cesql_st *st, const struct cesql_node *n)
{
    const struct cesql_fn *fn = n->fn;
    struct cv args[n->nkids ? n->nkids : 1]; /* nkids <= OFE_CESQL_MAX_CALL_ARGS */
    bool erred = false;
    for (uint32_t i = 0; i < n->nkids; i++) {
        args[i] = cesql__eval(st, n->kids[i]);
        if (args[i].err) {
            erred = true;
            if (!st->complete)
                return cesql__zero(fn->ret);
        }
    }
    if (erred)
        return cesql__zero(fn->ret);
    for (uint32_t i = 0; i < n->nkids; i++) {
        args[i] = cesql__cast(st, args[i], cesql__fn_param(fn, i));
        if (args[i].err) {
            erred = true;
            if (!st->complete)
                return cesql__zero(fn->ret);
        }
    }
    if (erred)
        return cesql__zero(fn->ret);
    if (fn->builtin)
        return fn->builtin(st, args, n->nkids);
    return call_custom(st, fn, args, n->nkids);
}

struct cv cesql__eval(struct cesql_st *st, const struct cesql_node *n)
{
    switch (n->kind) {
    case N_CONST:
        if (n->cerr) {
            if (!st->first)
                st->first = n->cerr;
            st->nerr += n->cnerr;
            st->mask |= n->cerrmask;
        }
        return n->val;
    case N_ATTR_SPEC:
    case N_ATTR_EXT: {
        const struct ofe_ce_attr *a = find_attr(st->ev, n);
        if (a)
            return attr_value(a);
        /* The type of a bare reference is unknown: Boolean (3.2). */
        cesql__raise(st, OFE_CESQL_EMISSINGATTR);
        return cesql__zero(OFE_CESQL_T_BOOLEAN);
    }
    case N_EXISTS_SPEC:
    case N_EXISTS_EXT:
        return cesql__bool(find_attr(st->ev, n) != NULL);
    case N_NOT: {
        struct cv x = cesql__eval(st, n->a);
        bool b;
        if (x.err || !cesql__to_bool(st, x, &b))
            return cesql__zero(OFE_CESQL_T_BOOLEAN);
        return cesql__bool(!b);
    }
    case N_NEG: {
        struct cv x = cesql__eval(st, n->a);
        int32_t i;
        if (x.err || !cesql__to_int(st, x, &i))
            return cesql__zero(OFE_CESQL_T_INTEGER);
        if (i == INT32_MIN) {
            cesql__raise(st, OFE_CESQL_EMATH);
            return cesql__zero(OFE_CESQL_T_INTEGER);
        }
        return cesql__int(-i);
    }
    case N_ARITH:
        return eval_arith(st, n);
    case N_CMP:
    case N_EQ:
        return eval_cmp(st, n);
    case N_LOGIC:
        return eval_logic(st, n);
    case N_LIKE: {
        struct cv x = cesql__eval(st, n->a);
        const char *s;
        uint32_t len;
        if (x.err || !cesql__to_str(st, x, &s, &len))
            return cesql__zero(OFE_CESQL_T_BOOLEAN);
        bool m = cesql__like_match(n->like, s, len);
        return cesql__bool(n->op ? !m : m);
    }
    case N_IN:
        return eval_in(st, n);
    case N_CALL:
        return eval_call(st, n);
    case N_MISSINGFN:
    default:
        cesql__raise(st, OFE_CESQL_EMISSINGFN);
        return cesql__zero(OFE_CESQL_T_BOOLEAN);
    }
}

/* ---- API --------------------------------------------------------------- */

void ofe_cesql_eval(const struct ofe_cesql *expr, const struct ofe_ce *ev,
                    struct ofe_cesql_ctx *ctx, struct ofe_cesql_result *res)
{
    cesql__ctx_reset(ctx);
    struct cesql_st st = {.ev = ev, .ctx = ctx, .complete = true};
    struct cv v = cesql__eval(&st, expr->root);
    res->value.type = (enum ofe_cesql_type)v.t;
    res->value.i = v.t == OFE_CESQL_T_STRING ? 0 : v.i;
    res->value.s = v.t == OFE_CESQL_T_STRING ? (v.s ? v.s : "") : NULL;
    res->value.len = v.t == OFE_CESQL_T_STRING ? v.len : 0;
    res->error = (enum ofe_cesql_err)st.first;
    res->nerrors = st.nerr;
    res->errmask = st.mask;
}

bool ofe_cesql_match_ctx(const struct ofe_cesql *expr, const struct ofe_ce *ev,
                         struct ofe_cesql_ctx *ctx, enum ofe_cesql_err *err)
{
    cesql__ctx_reset(ctx);
    struct cesql_st st = {.ev = ev, .ctx = ctx, .complete = false};
    struct cv v = cesql__eval(&st, expr->root);
    enum ofe_cesql_err e = (enum ofe_cesql_err)st.first;
    if (!e && v.t != OFE_CESQL_T_BOOLEAN)
        e = OFE_CESQL_EGENERIC;
    if (err)
        *err = e;
    return !e && v.i != 0;
}

bool ofe_cesql_match(const struct ofe_cesql *expr, const struct ofe_ce *ev, enum ofe_cesql_err *err)
{
    struct ofe_cesql_ctx ctx;
    ofe_cesql_ctx_init(&ctx);
    bool m = ofe_cesql_match_ctx(expr, ev, &ctx, err);
    if (ctx.chunks || ctx.spare) /* only long built strings reach the heap */
        ofe_cesql_ctx_fini(&ctx);
    return m;
}
