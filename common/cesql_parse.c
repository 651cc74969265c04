/* CESQL parser: builds the expression tree, resolves attributes and
 * functions, and folds constant sub-expressions.
 *
 * Precedence, loosest first (spec 3.6; equal precedence groups left to
 * right):
 *   AND OR XOR                      one level, a left-to-right chain
 *   = != <> < <= > >=
 *   + -
 *   * / %
 *   x [NOT] LIKE 'pattern', x [NOT] IN (...)
 *   NOT x, -x
 *   literals, attributes, EXISTS name, f(...), ( expression )
 * so `NOT a = b` is `(NOT a) = b` and `-x IN (1)` is `(-x) IN (1)`, as the
 * spec's order (unary operators before LIKE and IN, those before binary
 * operators) and its reference grammar have it. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cesql_int.h"
#include "ofe/ce.h"
#include "ofe/err.h"

/* ---- Arena ------------------------------------------------------------- */

/* Zeroed memory: nodes are built field by field. */
void *cesql__arena_alloc(struct cesql_arena *a, size_t n)
{
    void *p = ofe_arena_alloc(&a->a, n);
    if (p)
        memset(p, 0, n);
    return p;
}

char *cesql__arena_strdup(struct cesql_arena *a, const char *s, size_t n)
{
    return ofe_arena_strdup(&a->a, s, n);
}

void cesql__arena_free(struct cesql_arena *a)
{
    ofe_arena_fini(&a->a);
}

/* ---- Parser ------------------------------------------------------------ */

struct parser {
    struct cesql_lexer lx;
    struct cesql_token tok;
    struct cesql_token peek;
    bool has_peek;
    struct cesql_arena *arena;
    const struct ofe_cesql_engine *eng;
    int depth;
    bool failed;
    bool nomem;
    char *err;
    size_t err_size;
    struct ofe_cesql_ctx fold;
};

static void perr(struct parser *p, size_t pos, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void perr(struct parser *p, size_t pos, const char *fmt, ...)
{
    if (p->failed)
        return;
    p->failed = true;
    if (p->err && p->err_size) {
        char msg[200];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        snprintf(p->err, p->err_size, "column %zu: %s", pos + 1, msg);
    }
}

static void nomem(struct parser *p)
{
    if (!p->failed) {
        p->failed = true;
        p->nomem = true;
        if (p->err && p->err_size)
            snprintf(p->err, p->err_size, "out of memory");
    }
}

static void next(struct parser *p)
{
    if (p->has_peek) {
        p->tok = p->peek;
        p->has_peek = false;
    } else {
        p->tok = cesql__lex_next(&p->lx);
    }
    if (p->tok.kind == TK_ERROR)
        p->failed = true; /* the lexer wrote the message */
}

static const struct cesql_token *peek(struct parser *p)
{
    if (!p->has_peek) {
        p->peek = cesql__lex_next(&p->lx);
        p->has_peek = true;
    }
    return &p->peek;
}

/* Describes the current token for messages. */
static const char *tokdesc(struct parser *p, char *buf, size_t size)
{
    if (p->tok.kind == TK_EOF || p->tok.kind == TK_ERROR)
        return cesql__tok_name(p->tok.kind);
    int n = p->tok.len > 40 ? 40 : (int)p->tok.len;
    snprintf(buf, size, "'%.*s'%s", n, p->lx.text + p->tok.pos, p->tok.len > 40 ? "..." : "");
    return buf;
}

static struct cesql_node *mknode(struct parser *p, uint8_t kind, uint8_t type, uint32_t pos)
{
    struct cesql_node *n = cesql__arena_alloc(p->arena, sizeof(*n));
    if (!n) {
        nomem(p);
        return NULL;
    }
    n->kind = kind;
    n->type = type;
    n->pos = pos;
    n->height = 1;
    n->slot = -1;
    return n;
}

static void set_height(struct parser *p, struct cesql_node *n)
{
    unsigned h = 0;
    if (n->a && n->a->height > h)
        h = n->a->height;
    if (n->b && n->b->height > h)
        h = n->b->height;
    for (uint32_t i = 0; i < n->nkids; i++)
        if (n->kids[i]->height > h)
            h = n->kids[i]->height;
    if (h + 1 > OFE_CESQL_MAX_DEPTH) {
        perr(p, n->pos, "expression nested too deeply (more than %d levels)", OFE_CESQL_MAX_DEPTH);
        h = OFE_CESQL_MAX_DEPTH;
    }
    n->height = (uint16_t)(h + 1);
}

static bool is_const(const struct cesql_node *n)
{
    return n && n->kind == N_CONST;
}

/* Replaces n by its value when every operand is a constant: evaluates it
 * once, keeping the errors it raised. */
static void fold(struct parser *p, struct cesql_node *n)
{
    if (p->failed)
        return;
    if ((n->a && !is_const(n->a)) || (n->b && !is_const(n->b)))
        return;
    for (uint32_t i = 0; i < n->nkids; i++)
        if (!is_const(n->kids[i]))
            return;
    if (n->kind == N_CALL && !n->fn->pure)
        return;
    struct cesql_st st = {.ev = NULL, .ctx = &p->fold, .complete = true};
    cesql__ctx_reset(&p->fold);
    struct cv v = cesql__eval(&st, n);
    if (v.t == OFE_CESQL_T_STRING) {
        char *s = cesql__arena_strdup(p->arena, v.s, v.len);
        if (!s) {
            nomem(p);
            return;
        }
        v.s = s;
    }
    n->kind = N_CONST;
    n->type = v.t;
    n->val = v;
    n->cerr = st.first;
    n->cnerr = st.nerr > 0xffff ? 0xffff : (uint16_t)st.nerr;
    n->cerrmask = st.mask;
    n->a = n->b = NULL;
    n->kids = NULL;
    n->nkids = 0;
    n->height = 1;
}

static bool enter(struct parser *p)
{
    if (++p->depth > OFE_CESQL_MAX_DEPTH) {
        perr(p, p->tok.pos, "expression nested too deeply (more than %d levels)",
             OFE_CESQL_MAX_DEPTH);
        return false;
    }
    return true;
}

static struct cesql_node *parse_expr(struct parser *p);

/* A growable list of nodes while parsing (copied to the arena after). */
struct nodelist {
    struct cesql_node **v;
    uint8_t *ops;
    uint32_t n, cap;
};

static bool list_push(struct parser *p, struct nodelist *l, struct cesql_node *n, uint8_t op)
{
    if (l->n == l->cap) {
        uint32_t cap = l->cap ? l->cap * 2 : 8;
        struct cesql_node **v = realloc(l->v, cap * sizeof(*v));
        if (!v) {
            nomem(p);
            return false;
        }
        l->v = v;
        uint8_t *ops = realloc(l->ops, cap);
        if (!ops) {
            nomem(p);
            return false;
        }
        l->ops = ops;
        l->cap = cap;
    }
    l->v[l->n] = n;
    l->ops[l->n] = op;
    l->n++;
    return true;
}

static bool list_to_node(struct parser *p, struct nodelist *l, struct cesql_node *n, bool ops)
{
    n->kids = cesql__arena_alloc(p->arena, (l->n ? l->n : 1) * sizeof(*n->kids));
    if (!n->kids) {
        nomem(p);
        return false;
    }
    if (l->n)
        memcpy(n->kids, l->v, l->n * sizeof(*n->kids));
    if (ops) {
        n->ops = cesql__arena_alloc(p->arena, l->n ? l->n : 1);
        if (!n->ops) {
            nomem(p);
            return false;
        }
        if (l->n)
            memcpy(n->ops, l->ops, l->n);
    }
    n->nkids = l->n;
    return true;
}

static void list_free(struct nodelist *l)
{
    free(l->v);
    free(l->ops);
}

/* A bare attribute name: letters and digits (spec 2.2), folded to lower
 * case. */
static bool attr_name(struct parser *p, const struct cesql_token *t, char *out, size_t *len)
{
    const char *s = p->lx.text + t->pos;
    if (t->len > OFE_CE_NAME_MAX) {
        perr(p, t->pos, "attribute name '%.*s...' is longer than %d characters", 20, s,
             OFE_CE_NAME_MAX);
        return false;
    }
    for (uint32_t i = 0; i < t->len; i++) {
        char c = s[i];
        if (c >= 'A' && c <= 'Z')
            c = (char)(c - 'A' + 'a');
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'))) {
            perr(p, t->pos,
                 "'%.*s' is not an attribute name (letters and digits only) nor a function "
                 "call",
                 (int)t->len, s);
            return false;
        }
        out[i] = c;
    }
    out[t->len] = '\0';
    *len = t->len;
    return true;
}

static struct cesql_node *parse_attr(struct parser *p, bool exists)
{
    char name[OFE_CE_NAME_MAX + 1];
    size_t len;
    struct cesql_token t = p->tok;
    if (!attr_name(p, &t, name, &len))
        return NULL;
    next(p);
    int slot = ofe_ce_spec_slot(name, len);
    uint8_t kind;
    if (exists)
        kind = slot >= 0 ? N_EXISTS_SPEC : N_EXISTS_EXT;
    else
        kind = slot >= 0 ? N_ATTR_SPEC : N_ATTR_EXT;
    struct cesql_node *n = mknode(p, kind, exists ? OFE_CESQL_T_BOOLEAN : OFE_CESQL_T_NONE, t.pos);
    if (!n)
        return NULL;
    n->slot = slot;
    n->name = cesql__arena_strdup(p->arena, name, len);
    if (!n->name) {
        nomem(p);
        return NULL;
    }
    n->name_len = (uint32_t)len;
    /* EXISTS is always true for the required attributes: the input is a
     * valid event (spec 3.4.4). */
    if (exists && (slot == OFE_CE_ID || slot == OFE_CE_SOURCE || slot == OFE_CE_SPECVERSION ||
                   slot == OFE_CE_TYPE)) {
        n->kind = N_CONST;
        n->val = cesql__bool(true);
    }
    return n;
}

static struct cesql_node *parse_call(struct parser *p)
{
    struct cesql_token t = p->tok;
    const char *s = p->lx.text + t.pos;
    for (uint32_t i = 0; i < t.len; i++) {
        char c = s[i];
        bool letter = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
        if (!letter && !(c == '_' && i > 0)) {
            perr(p, t.pos, "'%.*s' is not a function name (letters and '_' only)", (int)t.len, s);
            return NULL;
        }
    }
    next(p);                    /* name */
    next(p);                    /* ( */
    struct nodelist args = {0}; /* each argument's parse_expr counts the nesting */
    if (p->tok.kind != TK_RP) {
        for (;;) {
            if (args.n >= OFE_CESQL_MAX_CALL_ARGS) {
                perr(p, p->tok.pos, "more than %d arguments in a function call",
                     OFE_CESQL_MAX_CALL_ARGS);
                break;
            }
            struct cesql_node *a = parse_expr(p);
            if (!a || !list_push(p, &args, a, 0))
                break;
            if (p->tok.kind == TK_COMMA) {
                next(p);
                continue;
            }
            break;
        }
    }
    if (!p->failed && p->tok.kind != TK_RP) {
        char b[64];
        perr(p, p->tok.pos, "expected ',' or ')' in the arguments of %.*s, found %s", (int)t.len, s,
             tokdesc(p, b, sizeof(b)));
    }
    if (p->failed) {
        list_free(&args);
        return NULL;
    }
    next(p);
    const struct cesql_fn *fn = cesql__fn_lookup(p->eng, s, t.len, args.n);
    if (fn && fn->custom) {
        /* The expression must not depend on the engine staying alive. */
        struct cesql_fn *copy = cesql__arena_alloc(p->arena, sizeof(*copy));
        if (!copy) {
            nomem(p);
            list_free(&args);
            return NULL;
        }
        *copy = *fn;
        copy->name = cesql__arena_strdup(p->arena, fn->name, strlen(fn->name));
        if (!copy->name) {
            nomem(p);
            list_free(&args);
            return NULL;
        }
        fn = copy;
    }
    struct cesql_node *n =
        mknode(p, fn ? N_CALL : N_MISSINGFN, fn ? fn->ret : OFE_CESQL_T_BOOLEAN, t.pos);
    if (n && list_to_node(p, &args, n, false)) {
        n->fn = fn;
        if (!fn) {
            /* Keep the name for messages; the arguments are never evaluated. */
            n->name = cesql__arena_strdup(p->arena, s, t.len);
            n->name_len = t.len;
            n->nkids = 0;
        }
        set_height(p, n);
        fold(p, n);
    }
    list_free(&args);
    return p->failed ? NULL : n;
}

static struct cesql_node *parse_primary(struct parser *p)
{
    struct cesql_token t = p->tok;
    struct cesql_node *n;
    switch (t.kind) {
    case TK_INT:
        n = mknode(p, N_CONST, OFE_CESQL_T_INTEGER, t.pos);
        if (n)
            n->val = cesql__int(t.ival);
        next(p);
        return n;
    case TK_TRUE:
    case TK_FALSE:
        n = mknode(p, N_CONST, OFE_CESQL_T_BOOLEAN, t.pos);
        if (n)
            n->val = cesql__bool(t.kind == TK_TRUE);
        next(p);
        return n;
    case TK_STR: {
        n = mknode(p, N_CONST, OFE_CESQL_T_STRING, t.pos);
        char *s = cesql__arena_alloc(p->arena, t.len + 1);
        if (!n || !s) {
            nomem(p);
            return NULL;
        }
        size_t len = cesql__lex_string(p->lx.text, &t, s);
        s[len] = '\0';
        n->val = cesql__str(s, (uint32_t)len);
        next(p);
        return n;
    }
    case TK_LP: {
        next(p);
        n = parse_expr(p);
        if (!n)
            return NULL;
        if (p->tok.kind != TK_RP) {
            char b[64];
            perr(p, p->tok.pos, "expected ')' to close the '(' at column %u, found %s", t.pos + 1,
                 tokdesc(p, b, sizeof(b)));
            return NULL;
        }
        next(p);
        return n;
    }
    case TK_EXISTS:
        next(p);
        if (p->tok.kind != TK_IDENT) {
            char b[64];
            if (!p->failed)
                perr(p, p->tok.pos, "EXISTS needs an attribute name, found %s",
                     tokdesc(p, b, sizeof(b)));
            return NULL;
        }
        return parse_attr(p, true);
    case TK_IDENT:
        if (peek(p)->kind == TK_LP)
            return parse_call(p);
        return parse_attr(p, false);
    case TK_ERROR:
        return NULL;
    default: {
        char b[64];
        perr(p, t.pos, "expected a value, attribute, function call or '(', found %s",
             tokdesc(p, b, sizeof(b)));
        return NULL;
    }
    }
}

static struct cesql_node *parse_unary(struct parser *p)
{
    struct cesql_token t = p->tok;
    if (t.kind != TK_NOT && t.kind != TK_MINUS)
        return parse_primary(p);
    if (!enter(p))
        return NULL;
    next(p);
    struct cesql_node *x = parse_unary(p);
    p->depth--;
    if (!x)
        return NULL;
    struct cesql_node *n = t.kind == TK_NOT ? mknode(p, N_NOT, OFE_CESQL_T_BOOLEAN, t.pos)
                                            : mknode(p, N_NEG, OFE_CESQL_T_INTEGER, t.pos);
    if (!n)
        return NULL;
    n->a = x;
    set_height(p, n);
    fold(p, n);
    return p->failed ? NULL : n;
}

static void precompute_in(struct parser *p, struct cesql_node *n)
{
    n->inc = cesql__arena_alloc(p->arena, (n->nkids ? n->nkids : 1) * sizeof(*n->inc));
    if (!n->inc) {
        nomem(p);
        return;
    }
    for (uint32_t i = 0; i < n->nkids; i++) {
        const struct cesql_node *k = n->kids[i];
        struct in_const *c = &n->inc[i];
        if (k->kind != N_CONST || k->cerr)
            continue;
        c->is_const = true;
        const struct cv *v = &k->val;
        switch (v->t) {
        case OFE_CESQL_T_INTEGER: {
            c->int_ok = c->bool_ok = true;
            c->as_int = v->i;
            c->as_bool = v->i != 0;
            char buf[16];
            int len = snprintf(buf, sizeof(buf), "%d", (int)v->i);
            c->as_str = cesql__arena_strdup(p->arena, buf, (size_t)len);
            c->str_len = (uint32_t)len;
            if (!c->as_str)
                nomem(p);
            break;
        }
        case OFE_CESQL_T_BOOLEAN:
            c->int_ok = c->bool_ok = true;
            c->as_int = v->i;
            c->as_bool = v->i != 0;
            c->as_str = v->i ? "true" : "false";
            c->str_len = v->i ? 4 : 5;
            break;
        default:
            c->as_str = v->s;
            c->str_len = v->len;
            c->int_ok = cesql__parse_int(v->s, v->len, &c->as_int);
            c->bool_ok = cesql__parse_bool(v->s, v->len, &c->as_bool);
            break;
        }
    }
}

static struct cesql_node *parse_postfix(struct parser *p)
{
    struct cesql_node *x = parse_unary(p);
    while (x && !p->failed) {
        struct cesql_token t = p->tok;
        bool neg = false;
        if (t.kind == TK_NOT) {
            enum cesql_tok k = peek(p)->kind;
            if (k == TK_ERROR) {
                p->failed = true; /* the lexer wrote the message */
                return NULL;
            }
            if (k != TK_LIKE && k != TK_IN) {
                perr(p, p->peek.pos, "expected LIKE or IN after NOT, found %s", cesql__tok_name(k));
                return NULL;
            }
            neg = true;
            next(p);
        }
        if (p->tok.kind == TK_LIKE) {
            next(p);
            if (p->tok.kind != TK_STR) {
                char b[64];
                if (!p->failed)
                    perr(p, p->tok.pos, "the pattern of LIKE must be a string literal, found %s",
                         tokdesc(p, b, sizeof(b)));
                return NULL;
            }
            char *pat = cesql__arena_alloc(p->arena, p->tok.len + 1);
            struct cesql_node *n = mknode(p, N_LIKE, OFE_CESQL_T_BOOLEAN, t.pos);
            if (!pat || !n) {
                nomem(p);
                return NULL;
            }
            size_t plen = cesql__lex_string(p->lx.text, &p->tok, pat);
            if (!cesql__like_compile(p->arena, pat, plen, &n->like)) {
                nomem(p);
                return NULL;
            }
            next(p);
            n->a = x;
            n->op = neg;
            set_height(p, n);
            fold(p, n);
            x = n;
        } else if (p->tok.kind == TK_IN) {
            next(p);
            if (p->tok.kind != TK_LP) {
                char b[64];
                if (!p->failed)
                    perr(p, p->tok.pos, "expected '(' after IN, found %s",
                         tokdesc(p, b, sizeof(b)));
                return NULL;
            }
            next(p);
            struct nodelist set = {0}; /* each member's parse_expr counts the nesting */
            for (;;) {
                struct cesql_node *e = parse_expr(p);
                if (!e || !list_push(p, &set, e, 0))
                    break;
                if (p->tok.kind == TK_COMMA) {
                    next(p);
                    continue;
                }
                break;
            }
            if (!p->failed && p->tok.kind != TK_RP) {
                char b[64];
                perr(p, p->tok.pos, "expected ',' or ')' in the IN set, found %s",
                     tokdesc(p, b, sizeof(b)));
            }
            struct cesql_node *n = p->failed ? NULL : mknode(p, N_IN, OFE_CESQL_T_BOOLEAN, t.pos);
            if (n && list_to_node(p, &set, n, false)) {
                next(p);
                n->a = x;
                n->op = neg;
                precompute_in(p, n);
                set_height(p, n);
                fold(p, n);
            }
            list_free(&set);
            if (p->failed)
                return NULL;
            x = n;
        } else {
            break;
        }
    }
    return p->failed ? NULL : x;
}

static struct cesql_node *binary(struct parser *p, uint8_t kind, uint8_t type, uint8_t op,
                                 uint32_t pos, struct cesql_node *a, struct cesql_node *b)
{
    struct cesql_node *n = mknode(p, kind, type, pos);
    if (!n)
        return NULL;
    n->op = op;
    n->a = a;
    n->b = b;
    set_height(p, n);
    fold(p, n);
    return p->failed ? NULL : n;
}

static struct cesql_node *parse_mul(struct parser *p)
{
    struct cesql_node *x = parse_postfix(p);
    while (x && (p->tok.kind == TK_STAR || p->tok.kind == TK_SLASH || p->tok.kind == TK_PERCENT)) {
        struct cesql_token t = p->tok;
        next(p);
        struct cesql_node *y = parse_postfix(p);
        if (!y)
            return NULL;
        x = binary(p, N_ARITH, OFE_CESQL_T_INTEGER, (uint8_t)t.kind, t.pos, x, y);
    }
    return x;
}

static struct cesql_node *parse_add(struct parser *p)
{
    struct cesql_node *x = parse_mul(p);
    while (x && (p->tok.kind == TK_PLUS || p->tok.kind == TK_MINUS)) {
        struct cesql_token t = p->tok;
        next(p);
        struct cesql_node *y = parse_mul(p);
        if (!y)
            return NULL;
        x = binary(p, N_ARITH, OFE_CESQL_T_INTEGER, (uint8_t)t.kind, t.pos, x, y);
    }
    return x;
}

static bool is_cmp(enum cesql_tok k)
{
    return k == TK_EQ || k == TK_NE || k == TK_LTGT || k == TK_LT || k == TK_LE || k == TK_GT ||
           k == TK_GE;
}

static struct cesql_node *parse_cmp(struct parser *p)
{
    struct cesql_node *x = parse_add(p);
    while (x && is_cmp(p->tok.kind)) {
        struct cesql_token t = p->tok;
        next(p);
        struct cesql_node *y = parse_add(p);
        if (!y)
            return NULL;
        uint8_t kind = (t.kind == TK_EQ || t.kind == TK_NE || t.kind == TK_LTGT) ? N_EQ : N_CMP;
        x = binary(p, kind, OFE_CESQL_T_BOOLEAN, (uint8_t)t.kind, t.pos, x, y);
    }
    return x;
}

static bool is_logic(enum cesql_tok k)
{
    return k == TK_AND || k == TK_OR || k == TK_XOR;
}

static struct cesql_node *parse_expr(struct parser *p)
{
    if (!enter(p))
        return NULL;
    struct cesql_node *x = parse_cmp(p);
    if (x && is_logic(p->tok.kind)) {
        struct nodelist l = {0};
        uint32_t pos = p->tok.pos;
        if (list_push(p, &l, x, 0)) {
            while (is_logic(p->tok.kind)) {
                uint8_t op = (uint8_t)p->tok.kind;
                next(p);
                struct cesql_node *y = parse_cmp(p);
                if (!y || !list_push(p, &l, y, op))
                    break;
            }
        }
        struct cesql_node *n = p->failed ? NULL : mknode(p, N_LOGIC, OFE_CESQL_T_BOOLEAN, pos);
        if (n && list_to_node(p, &l, n, true)) {
            set_height(p, n);
            fold(p, n);
        }
        list_free(&l);
        x = p->failed ? NULL : n;
    }
    p->depth--;
    return p->failed ? NULL : x;
}

/* ---- API --------------------------------------------------------------- */

int ofe_cesql_compile(const struct ofe_cesql_engine *eng, const char *text, struct ofe_cesql **out,
                      char *errstr, size_t errstr_size)
{
    *out = NULL;
    if (errstr && errstr_size)
        errstr[0] = '\0';
    size_t len = strlen(text);
    if (len > UINT32_MAX / 2)
        return ofe_err(errstr, errstr_size, OFE_EPARSE, "column 1: expression too long");
    struct ofe_cesql *e = calloc(1, sizeof(*e));
    if (!e)
        return ofe_err(errstr, errstr_size, OFE_ENOMEM, "out of memory");
    e->text = cesql__arena_strdup(&e->arena, text, len);
    if (!e->text) {
        ofe_cesql_destroy(e);
        return ofe_err(errstr, errstr_size, OFE_ENOMEM, "out of memory");
    }
    struct parser p = {.arena = &e->arena, .eng = eng, .err = errstr, .err_size = errstr_size};
    ofe_cesql_ctx_init(&p.fold);
    cesql__lex_init(&p.lx, e->text, len, errstr, errstr_size);
    next(&p);
    if (p.tok.kind == TK_EOF) {
        perr(&p, 0, "empty expression");
    } else if (!p.failed) {
        e->root = parse_expr(&p);
        if (!p.failed && p.tok.kind != TK_EOF) {
            char b[64];
            const char *hint = "";
            if (p.tok.kind == TK_INT || p.tok.kind == TK_STR || p.tok.kind == TK_IDENT ||
                p.tok.kind == TK_LP || p.tok.kind == TK_TRUE || p.tok.kind == TK_FALSE ||
                p.tok.kind == TK_EXISTS || p.tok.kind == TK_NOT)
                hint = " (missing operator?)";
            perr(&p, p.tok.pos, "unexpected %s after a complete expression%s",
                 tokdesc(&p, b, sizeof(b)), hint);
        }
    }
    ofe_cesql_ctx_fini(&p.fold);
    if (p.failed || !e->root) {
        bool nm = p.nomem;
        ofe_cesql_destroy(e);
        if (errstr && errstr_size && !errstr[0])
            snprintf(errstr, errstr_size, "column 1: invalid expression");
        return nm ? OFE_ENOMEM : OFE_EPARSE;
    }
    *out = e;
    return 0;
}

void ofe_cesql_destroy(struct ofe_cesql *expr)
{
    if (!expr)
        return;
    cesql__arena_free(&expr->arena);
    free(expr);
}

const char *ofe_cesql_text(const struct ofe_cesql *expr)
{
    return expr->text;
}

enum ofe_cesql_type ofe_cesql_result_type(const struct ofe_cesql *expr)
{
    return (enum ofe_cesql_type)expr->root->type;
}

bool ofe_cesql_is_constant(const struct ofe_cesql *expr)
{
    return expr->root->kind == N_CONST;
}
