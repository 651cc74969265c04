/* Internals shared by the CESQL files: cesql_lex.c (tokens),
 * cesql_parse.c (tree, folding, compile API), cesql_eval.c (evaluator,
 * casts, LIKE, contexts), cesql_func.c (built-ins, registry, Unicode). */
#ifndef OFE_CESQL_INT_H
#define OFE_CESQL_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ofe/arena.h"
#include "ofe/cesql.h"

/* ---- Values ------------------------------------------------------------ */

/* An evaluated value. `err` marks a value that is the zero value standing
 * in for a failed sub-expression (its error is already recorded). */
struct cv {
    const char *s;
    uint32_t len;
    int32_t i;
    uint8_t t; /* enum ofe_cesql_type */
    uint8_t err;
};

/* ---- Arena (the expression's memory: one free) ------------------------- */

struct cesql_arena {
    struct ofe_arena a; /* zeroed: 4 KiB chunks */
};
void *cesql__arena_alloc(struct cesql_arena *a, size_t n);
char *cesql__arena_strdup(struct cesql_arena *a, const char *s, size_t n);
void cesql__arena_free(struct cesql_arena *a);

/* ---- Lexer ------------------------------------------------------------- */

enum cesql_tok {
    TK_EOF = 0,
    TK_INT,
    TK_STR,
    TK_IDENT,
    TK_LP,
    TK_RP,
    TK_COMMA,
    TK_PLUS,
    TK_MINUS,
    TK_STAR,
    TK_SLASH,
    TK_PERCENT,
    TK_EQ,
    TK_NE,   /* != */
    TK_LTGT, /* <> */
    TK_LT,
    TK_LE,
    TK_GT,
    TK_GE,
    TK_AND,
    TK_OR,
    TK_XOR,
    TK_NOT,
    TK_LIKE,
    TK_IN,
    TK_EXISTS,
    TK_TRUE,
    TK_FALSE,
    TK_ERROR
};

struct cesql_token {
    enum cesql_tok kind;
    uint32_t pos; /* byte offset in the text */
    uint32_t len; /* bytes of the token in the text */
    int32_t ival; /* TK_INT */
};

struct cesql_lexer {
    const char *text;
    size_t len;
    size_t pos;
    enum cesql_tok prev; /* kind of the previous token (signed literals) */
    char *err;           /* message when TK_ERROR was returned */
    size_t err_size;
};

void cesql__lex_init(struct cesql_lexer *lx, const char *text, size_t len, char *err,
                     size_t err_size);
/* Next token; TK_ERROR with lx->err filled ("column N: ...") on a lexical
 * error. */
struct cesql_token cesql__lex_next(struct cesql_lexer *lx);
/* Unescaped value of a TK_STR token into dst (room for tok.len bytes);
 * returns the length. */
size_t cesql__lex_string(const char *text, const struct cesql_token *tok, char *dst);
const char *cesql__tok_name(enum cesql_tok t);

/* ---- Functions --------------------------------------------------------- */

struct cesql_st;

/* A built-in: receives arguments cast to its parameter types, none of them
 * erroneous; raises its own errors. */
typedef struct cv (*cesql_builtin)(struct cesql_st *st, struct cv *args, unsigned n);

struct cesql_fn {
    const char *name; /* upper case */
    uint8_t ret;
    uint8_t nparams;
    uint8_t params[OFE_CESQL_MAX_PARAMS];
    bool variadic;
    uint8_t vartype;
    bool pure;
    cesql_builtin builtin; /* exactly one of builtin / custom is set */
    ofe_cesql_fn custom;
    void *opaque;
};

/* Finds the function `name` (any case) callable with nargs arguments in eng
 * (NULL: built-ins only). Returns NULL when none. */
const struct cesql_fn *cesql__fn_lookup(const struct ofe_cesql_engine *eng, const char *name,
                                        size_t name_len, unsigned nargs);
/* Parameter type of argument i of a call to fn. */
static inline uint8_t cesql__fn_param(const struct cesql_fn *fn, unsigned i)
{
    return i < fn->nparams ? fn->params[i] : fn->vartype;
}

/* ---- Tree -------------------------------------------------------------- */

enum cesql_kind {
    N_CONST = 1,
    N_ATTR_SPEC,   /* slot */
    N_ATTR_EXT,    /* name */
    N_EXISTS_SPEC, /* slot */
    N_EXISTS_EXT,  /* name */
    N_NOT,         /* a */
    N_NEG,         /* a */
    N_ARITH,       /* a op b: TK_PLUS .. TK_PERCENT */
    N_CMP,         /* a op b: TK_LT .. TK_GE (Integer) */
    N_EQ,          /* a op b: TK_EQ, TK_NE, TK_LTGT (type of b decides) */
    N_LOGIC,       /* kids[0] ops[1] kids[1] ... (left to right) */
    N_LIKE,        /* a [NOT] LIKE pattern */
    N_IN,          /* a [NOT] IN (kids) */
    N_CALL,        /* fn(kids) */
    N_MISSINGFN,   /* call that cannot be dispatched */
};

/* A LIKE pattern, split at its '%' wildcards into fragments; a fragment is
 * a run of units, each a literal byte string or '_' (one character). */
struct like_unit {
    const char *s; /* NULL for '_' */
    uint32_t len;
};
struct like_frag {
    struct like_unit *u;
    uint32_t n;
};
struct like_pat {
    struct like_frag *f;
    uint32_t nfrags; /* 1 + number of '%' runs */
};

/* A constant IN set member, pre-cast to each type the left side may have. */
struct in_const {
    bool is_const;
    bool int_ok, bool_ok;
    int32_t as_int;
    bool as_bool;
    const char *as_str;
    uint32_t str_len;
};

struct cesql_node {
    uint8_t kind;
    uint8_t type; /* static result type; OFE_CESQL_T_NONE when dynamic */
    uint8_t op;   /* operator token; for N_LIKE/N_IN: 1 when negated */
    uint16_t height;
    uint32_t pos; /* byte offset in the text */
    struct cesql_node *a, *b;
    struct cesql_node **kids;
    uint8_t *ops; /* N_LOGIC: ops[i] joins kids[i-1] and kids[i] */
    uint32_t nkids;
    /* N_CONST */
    struct cv val;
    uint8_t cerr; /* first error of the folded sub-expression */
    uint16_t cnerr;
    uint32_t cerrmask;
    /* attributes */
    int slot;
    const char *name;
    uint32_t name_len;
    /* N_LIKE, N_IN, N_CALL */
    struct like_pat *like;
    struct in_const *inc;
    const struct cesql_fn *fn;
};

struct ofe_cesql {
    struct cesql_arena arena;
    struct cesql_node *root;
    char *text;
};

/* ---- Evaluation -------------------------------------------------------- */

/* State of one evaluation. */
struct cesql_st {
    const struct ofe_ce *ev;
    struct ofe_cesql_ctx *ctx;
    bool complete; /* complete evaluation mode; else stop at the first error */
    uint8_t first; /* first error kind */
    unsigned nerr;
    unsigned mask;
};

struct cv cesql__eval(struct cesql_st *st, const struct cesql_node *n);
void cesql__raise(struct cesql_st *st, enum ofe_cesql_err kind);
/* Scratch memory of the evaluation; NULL over the limit or out of memory. */
char *cesql__scratch(struct cesql_st *st, size_t n);
void cesql__ctx_reset(struct ofe_cesql_ctx *ctx);

/* Casts (spec 3.7). Each raises a cast error and returns false when the
 * value cannot be cast. */
bool cesql__to_int(struct cesql_st *st, struct cv v, int32_t *out);
bool cesql__to_bool(struct cesql_st *st, struct cv v, bool *out);
bool cesql__to_str(struct cesql_st *st, struct cv v, const char **s, uint32_t *len);
/* Casts v to type t (an erroneous v stays erroneous, as zero of t). */
struct cv cesql__cast(struct cesql_st *st, struct cv v, uint8_t t);
/* String -> Integer as the spec defines it; false when not a valid 32-bit
 * integer. */
bool cesql__parse_int(const char *s, size_t len, int32_t *out);
bool cesql__parse_bool(const char *s, size_t len, bool *out);

/* LIKE */
bool cesql__like_compile(struct cesql_arena *a, const char *pat, size_t len, struct like_pat **out);
bool cesql__like_match(const struct like_pat *p, const char *s, size_t len);

/* Unicode helpers (cesql_func.c) */
size_t cesql__utf8_next(const char *s, size_t len, size_t pos);
size_t cesql__utf8_prev(const char *s, size_t pos);
size_t cesql__utf8_count(const char *s, size_t len);

static inline struct cv cesql__zero(uint8_t t)
{
    struct cv v = {"", 0, 0, t ? t : OFE_CESQL_T_BOOLEAN, 1};
    return v;
}
static inline struct cv cesql__int(int32_t i)
{
    struct cv v = {NULL, 0, i, OFE_CESQL_T_INTEGER, 0};
    return v;
}
static inline struct cv cesql__bool(bool b)
{
    struct cv v = {NULL, 0, b ? 1 : 0, OFE_CESQL_T_BOOLEAN, 0};
    return v;
}
static inline struct cv cesql__str(const char *s, uint32_t len)
{
    struct cv v = {s, len, 0, OFE_CESQL_T_STRING, 0};
    return v;
}

#endif
