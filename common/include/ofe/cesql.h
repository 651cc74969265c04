/* CloudEvents SQL (CESQL v1): the filter language of triggers.
 *
 * An expression is compiled once (ofe_cesql_compile: lexer, parser, a tree
 * with constant folding, spec attributes resolved to their slot in struct
 * ofe_ce) and evaluated many times against events, from any number of
 * threads at once: a compiled expression is read-only.
 *
 * Evaluation follows the spec's "complete evaluation" mode: an operator or
 * function whose operand raised an error yields the zero value of its type
 * ("" / 0 / false) and evaluation goes on, collecting every error; the first
 * one is reported with the result. ofe_cesql_match is the trigger-filter
 * form: it stops at the first error, and only a Boolean true without any
 * error matches. docs/cesql.md describes the language as implemented. */
#ifndef OFE_CESQL_H
#define OFE_CESQL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct ofe_ce;

/* The CESQL types. OFE_CESQL_T_NONE stands for "not known before
 * evaluation" (a bare attribute reference) where a static type is asked. */
enum ofe_cesql_type {
    OFE_CESQL_T_NONE = 0,
    OFE_CESQL_T_BOOLEAN,
    OFE_CESQL_T_INTEGER,
    OFE_CESQL_T_STRING,
};

/* The error kinds of the spec (section 3.3), named as the TCK names them by
 * ofe_cesql_errname(). */
enum ofe_cesql_err {
    OFE_CESQL_OK = 0,
    OFE_CESQL_EPARSE,       /* "parse" */
    OFE_CESQL_EMATH,        /* "math": division by zero, 32-bit overflow */
    OFE_CESQL_ECAST,        /* "cast" */
    OFE_CESQL_EMISSINGATTR, /* "missingAttribute" */
    OFE_CESQL_EMISSINGFN,   /* "missingFunction": no such name and arity */
    OFE_CESQL_EFUNC,        /* "functionEvaluation" */
    OFE_CESQL_EGENERIC,     /* "generic" */
    OFE_CESQL_E__COUNT
};

/* Name of an error kind ("parse", "math", "cast", "missingAttribute",
 * "missingFunction", "functionEvaluation", "generic"), or NULL for
 * OFE_CESQL_OK and values out of range. This function can't fail. */
const char *ofe_cesql_errname(enum ofe_cesql_err err);
/* Name of a type ("Boolean", "Integer", "String"; "unknown" for T_NONE). */
const char *ofe_cesql_typename(enum ofe_cesql_type t);

/* A CESQL value. Strings are UTF-8 bytes, not NUL-terminated; they point
 * into the expression, the event or the evaluation context (see
 * ofe_cesql_eval for how long they live). */
struct ofe_cesql_value {
    enum ofe_cesql_type type;
    int32_t i;     /* Integer; Boolean as 0 or 1 */
    const char *s; /* String */
    size_t len;
};

/* ---- Functions --------------------------------------------------------- */

#define OFE_CESQL_MAX_PARAMS    8  /* fixed parameters of a function */
#define OFE_CESQL_MAX_CALL_ARGS 64 /* arguments in one call, variadic ones included */

/* Handed to a custom function; ofe_cesql_fn_alloc gives it memory for a
 * String result. */
struct ofe_cesql_fnctx;

/* Returns `len` bytes that live as long as the evaluation's result, or NULL
 * when the evaluation's scratch limit (1 MiB) would be exceeded or memory
 * is short: the function should then return OFE_CESQL_EFUNC. */
char *ofe_cesql_fn_alloc(struct ofe_cesql_fnctx *fc, size_t len);

/* A custom function. args[0..nargs) are already cast to the declared
 * parameter types. The function stores its result in *ret, whose type must
 * be the declared return type, and returns OFE_CESQL_OK or the kind of the
 * error it raises (normally OFE_CESQL_EFUNC) with a valid *ret all the
 * same (spec 3.5.3). A result of the wrong type becomes the zero value
 * plus a functionEvaluation error. It may run on several threads at once
 * (with the same opaque) and must not keep pointers to args. */
typedef enum ofe_cesql_err (*ofe_cesql_fn)(struct ofe_cesql_fnctx *fc, void *opaque,
                                           const struct ofe_cesql_value *args, size_t nargs,
                                           struct ofe_cesql_value *ret);

struct ofe_cesql_fndef {
    const char *name;        /* letters and '_' (spec 2.4), case-insensitive; copied */
    enum ofe_cesql_type ret; /* return type */
    unsigned nparams;        /* fixed parameters, <= OFE_CESQL_MAX_PARAMS */
    enum ofe_cesql_type params[OFE_CESQL_MAX_PARAMS];
    bool variadic; /* any number (>= 0) of `vartype` arguments may follow */
    enum ofe_cesql_type vartype;
    bool pure; /* no side effects and the same result for the same
                * arguments: calls with constant arguments are then
                * evaluated once, at compile time */
    ofe_cesql_fn fn;
    void *opaque; /* passed to fn; owned by the caller, must outlive
                   * every expression compiled with this function */
};

/* A function registry: the built-in functions plus custom ones. Compiling
 * with a NULL engine uses the built-ins only. */
struct ofe_cesql_engine;

/* Returns a new registry holding the built-ins, or NULL when memory is
 * short. */
struct ofe_cesql_engine *ofe_cesql_engine_new(void);
/* Frees a registry. Expressions compiled with it stay valid (they copy what
 * they need). ofe_cesql_engine_destroy(NULL) is a no-op. */
void ofe_cesql_engine_destroy(struct ofe_cesql_engine *eng);
/* Registers a custom function (the definition is copied). The spec's
 * overloading rules apply: a name may have several arities, at most one
 * variadic overload whose fixed parameters outnumber every other arity of
 * that name, and no two definitions with the same name and arity - the
 * built-ins included. Returns 0, OFE_EINVAL (bad definition) or OFE_EEXIST
 * (clashes with a definition, errstr says which), or OFE_ENOMEM.
 * Registering is not thread-safe: finish it before compiling with the
 * engine on other threads; compiling is then safe from any thread. */
int ofe_cesql_engine_register(struct ofe_cesql_engine *eng, const struct ofe_cesql_fndef *def,
                              char *errstr, size_t errstr_size);

/* ---- Compiling --------------------------------------------------------- */

/* Deepest nesting of operators, parentheses and calls an expression may
 * have (it bounds the evaluator's stack use). AND/OR/XOR chains and IN
 * sets of any length count as one level. */
#define OFE_CESQL_MAX_DEPTH 128

/* A compiled expression. */
struct ofe_cesql;

/* Compiles NUL-terminated `text` with the functions of `eng` (NULL: the
 * built-ins). On success *out owns a new expression. Returns 0,
 * OFE_EPARSE with errstr saying where and why ("column 7: expected ')'",
 * columns count bytes from 1), or OFE_ENOMEM. A call to an unknown
 * function or with an arity the function lacks is not a compile error: it
 * evaluates to false plus a missingFunction error (spec 3.5). */
int ofe_cesql_compile(const struct ofe_cesql_engine *eng, const char *text, struct ofe_cesql **out,
                      char *errstr, size_t errstr_size);
/* Frees an expression. ofe_cesql_destroy(NULL) is a no-op. */
void ofe_cesql_destroy(struct ofe_cesql *expr);
/* The source text the expression was compiled from. */
const char *ofe_cesql_text(const struct ofe_cesql *expr);
/* Static type of the result: OFE_CESQL_T_NONE when it depends on the event
 * (a bare attribute reference). A trigger can reject a filter whose type is
 * Integer or String up front: it can never match. */
enum ofe_cesql_type ofe_cesql_result_type(const struct ofe_cesql *expr);
/* True when the expression does not depend on the event (it was folded to a
 * constant at compile time). */
bool ofe_cesql_is_constant(const struct ofe_cesql *expr);

/* ---- Evaluating -------------------------------------------------------- */

#define OFE_CESQL_SCRATCH_INLINE 256        /* bytes of scratch inside the context */
#define OFE_CESQL_SCRATCH_MAX    (1u << 20) /* scratch limit of one evaluation */

/* Scratch memory for the strings an evaluation builds (casts of integers,
 * LOWER, CONCAT, ...). The first OFE_CESQL_SCRATCH_INLINE bytes live in the
 * struct itself, so an evaluation that needs no more allocates nothing; the
 * rest comes from the heap and is kept for reuse until fini. One context
 * serves one thread at a time. Fields are private. */
struct ofe_cesql_ctx {
    size_t used;  /* bytes used in the current chunk */
    size_t total; /* bytes handed out by this evaluation */
    char *cur;    /* current chunk (inl or a heap chunk) */
    size_t cur_size;
    void *chunks; /* heap chunks, newest first */
    void *spare;  /* one kept heap chunk */
    char inl[OFE_CESQL_SCRATCH_INLINE];
};

/* Prepares a context. This function can't fail. */
void ofe_cesql_ctx_init(struct ofe_cesql_ctx *ctx);
/* Frees the context's heap memory; results of evaluations with it become
 * invalid. */
void ofe_cesql_ctx_fini(struct ofe_cesql_ctx *ctx);

struct ofe_cesql_result {
    struct ofe_cesql_value value;
    enum ofe_cesql_err error; /* the first error raised, OFE_CESQL_OK when none */
    unsigned nerrors;         /* how many errors were raised */
    unsigned errmask;         /* bit (1u << kind) set for each kind raised */
};

/* Evaluates `expr` against `ev` (NULL: an event without attributes, where
 * every reference is a missing attribute) in complete evaluation mode and
 * fills *res. A String result points into expr, ev or ctx and stays valid
 * until the next evaluation with ctx, ofe_cesql_ctx_fini, or the end of
 * expr or ev, whichever comes first. Does not allocate unless the
 * expression builds strings longer than the context's inline scratch.
 * This function can't fail: running out of memory or over the scratch
 * limit is a functionEvaluation error of the function concerned. */
void ofe_cesql_eval(const struct ofe_cesql *expr, const struct ofe_ce *ev,
                    struct ofe_cesql_ctx *ctx, struct ofe_cesql_result *res);

/* The trigger filter (spec 1.2): returns true when `expr` yields Boolean
 * true without any error. Evaluation stops at the first error ("fail fast"
 * mode). When it returns false, *err (if err is not NULL) says why:
 * OFE_CESQL_OK for a plain false, the first error's kind, or
 * OFE_CESQL_EGENERIC when the result is not a Boolean. Thread-safe; uses
 * scratch on its own stack (and the heap only for long built strings). */
bool ofe_cesql_match(const struct ofe_cesql *expr, const struct ofe_ce *ev,
                     enum ofe_cesql_err *err);
/* The same with a caller's context, so even long built strings reuse
 * memory. */
bool ofe_cesql_match_ctx(const struct ofe_cesql *expr, const struct ofe_ce *ev,
                         struct ofe_cesql_ctx *ctx, enum ofe_cesql_err *err);

#endif
