/* Trigger conditions: a recursive-descent parser that compiles to a postfix
 * program, and its evaluator (condition.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "ofe/condition.h"
#include "ofe/err.h"

/* Evaluation stack bound: the compiler refuses programs that need more. */
#define STACK_MAX 256

enum op { OP_PUSH, OP_NOT, OP_AND, OP_OR };

struct insn {
    uint8_t op;
    uint32_t input; /* OP_PUSH */
};

struct ofe_condition {
    size_t n, cap;
    size_t ninputs;
    struct insn *code;
    uint64_t *used; /* bitset of referenced inputs */
};

enum tok { T_END, T_NAME, T_AND, T_OR, T_NOT, T_LPAREN, T_RPAREN, T_ERROR };

struct parser {
    const char *s;
    size_t len;
    size_t pos;    /* next byte to scan */
    enum tok tok;  /* current token */
    size_t tstart; /* its offset */
    size_t tlen;   /* its length */
    int depth;
    const char *const *names;
    size_t nnames;
    struct ofe_condition *c;
    int err;
    size_t err_off;
    char *errstr;
    size_t errstr_size;
    size_t stack, max_stack;
};

static int name_char(char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
           ch == '_' || ch == '-';
}

static int error_at(struct parser *p, int err, size_t off, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int error_at(struct parser *p, int err, size_t off, const char *fmt, ...)
{
    if (p->err)
        return p->err;
    p->err = err;
    p->err_off = off;
    if (p->errstr && p->errstr_size) {
        int n = snprintf(p->errstr, p->errstr_size, "at character %zu: ", off + 1);
        if (n >= 0 && (size_t)n < p->errstr_size) {
            va_list ap;
            va_start(ap, fmt);
            vsnprintf(p->errstr + n, p->errstr_size - (size_t)n, fmt, ap);
            va_end(ap);
        }
    }
    return err;
}

static void next(struct parser *p)
{
    while (p->pos < p->len && (p->s[p->pos] == ' ' || p->s[p->pos] == '\t' ||
                               p->s[p->pos] == '\n' || p->s[p->pos] == '\r'))
        p->pos++;
    p->tstart = p->pos;
    if (p->pos >= p->len) {
        p->tok = T_END;
        p->tlen = 0;
        return;
    }
    char ch = p->s[p->pos];
    p->tlen = 1;
    switch (ch) {
    case '(':
        p->tok = T_LPAREN;
        p->pos++;
        return;
    case ')':
        p->tok = T_RPAREN;
        p->pos++;
        return;
    case '!':
        p->tok = T_NOT;
        p->pos++;
        return;
    case '&':
    case '|':
        if (p->pos + 1 < p->len && p->s[p->pos + 1] == ch) {
            p->tok = ch == '&' ? T_AND : T_OR;
            p->tlen = 2;
            p->pos += 2;
            return;
        }
        p->tok = T_ERROR;
        error_at(p, OFE_EPARSE, p->pos, "expected '%c%c' (a single '%c' is not an operator)", ch,
                 ch, ch);
        return;
    case '-':
        p->tok = T_ERROR;
        error_at(p, OFE_EPARSE, p->pos,
                 "unexpected '-': there is no minus operator, and input names cannot start "
                 "with '-'");
        return;
    default:
        break;
    }
    if (name_char(ch)) {
        size_t e = p->pos;
        while (e < p->len && name_char(p->s[e]))
            e++;
        p->tlen = e - p->pos;
        p->pos = e;
        p->tok = T_NAME;
        if (p->tlen == 3 && !strncasecmp(p->s + p->tstart, "and", 3))
            p->tok = T_AND;
        else if (p->tlen == 2 && !strncasecmp(p->s + p->tstart, "or", 2))
            p->tok = T_OR;
        else if (p->tlen == 3 && !strncasecmp(p->s + p->tstart, "not", 3))
            p->tok = T_NOT;
        return;
    }
    p->tok = T_ERROR;
    if ((unsigned char)ch < 0x20 || (unsigned char)ch >= 0x7f)
        error_at(p, OFE_EPARSE, p->pos, "unexpected byte 0x%02x", (unsigned char)ch);
    else
        error_at(p, OFE_EPARSE, p->pos,
                 "unexpected character '%c' (expected an input name, &&, ||, !, and, or, not, "
                 "or parentheses)",
                 ch);
}

static void describe(struct parser *p, char *out, size_t size)
{
    if (p->tok == T_END)
        snprintf(out, size, "the end of the condition");
    else
        snprintf(out, size, "'%.*s'", (int)(p->tlen > 40 ? 40 : p->tlen), p->s + p->tstart);
}

static int emit(struct parser *p, enum op op, uint32_t input)
{
    struct ofe_condition *c = p->c;
    if (c->n == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 16;
        struct insn *code = realloc(c->code, cap * sizeof(*code));
        if (!code)
            return error_at(p, OFE_ENOMEM, p->tstart, "out of memory");
        c->code = code;
        c->cap = cap;
    }
    c->code[c->n].op = (uint8_t)op;
    c->code[c->n].input = input;
    c->n++;
    if (op == OP_PUSH) {
        p->stack++;
        if (p->stack > p->max_stack)
            p->max_stack = p->stack;
        if (p->max_stack > STACK_MAX)
            return error_at(p, OFE_EPARSE, p->tstart, "condition too complex");
    } else if (op != OP_NOT) {
        p->stack--;
    }
    return 0;
}

static int parse_or(struct parser *p);

static int parse_unary(struct parser *p)
{
    if (p->err)
        return p->err;
    if (p->tok == T_NOT) {
        if (++p->depth > OFE_CONDITION_MAX_DEPTH)
            return error_at(p, OFE_EPARSE, p->tstart, "nested deeper than %d levels",
                            OFE_CONDITION_MAX_DEPTH);
        next(p);
        if (parse_unary(p))
            return p->err;
        p->depth--;
        return emit(p, OP_NOT, 0);
    }
    if (p->tok == T_LPAREN) {
        size_t open = p->tstart;
        if (++p->depth > OFE_CONDITION_MAX_DEPTH)
            return error_at(p, OFE_EPARSE, p->tstart, "nested deeper than %d levels",
                            OFE_CONDITION_MAX_DEPTH);
        next(p);
        if (parse_or(p))
            return p->err;
        if (p->tok != T_RPAREN) {
            char got[64];
            describe(p, got, sizeof(got));
            return error_at(p, OFE_EPARSE, p->tstart,
                            "expected ')' to close the '(' at character %zu, found %s", open + 1,
                            got);
        }
        p->depth--;
        next(p);
        return p->err;
    }
    if (p->tok == T_NAME) {
        for (size_t i = 0; i < p->nnames; i++) {
            if (p->names[i] && strlen(p->names[i]) == p->tlen &&
                !memcmp(p->names[i], p->s + p->tstart, p->tlen)) {
                p->c->used[i / 64] |= 1ULL << (i % 64);
                if (emit(p, OP_PUSH, (uint32_t)i))
                    return p->err;
                next(p);
                return p->err;
            }
        }
        char list[256];
        size_t off = 0;
        list[0] = '\0';
        for (size_t i = 0; i < p->nnames && off < sizeof(list) - 8; i++) {
            int n = snprintf(list + off, sizeof(list) - off, "%s%s", i ? ", " : "",
                             p->names[i] ? p->names[i] : "");
            if (n < 0 || (size_t)n >= sizeof(list) - off) {
                snprintf(list + off, sizeof(list) - off, ", ...");
                break;
            }
            off += (size_t)n;
        }
        return error_at(p, OFE_ENOENT, p->tstart, "unknown input '%.*s' (inputs: %s)",
                        (int)(p->tlen > 64 ? 64 : p->tlen), p->s + p->tstart,
                        p->nnames ? list : "none");
    }
    if (p->tok == T_ERROR)
        return p->err;
    char got[64];
    describe(p, got, sizeof(got));
    return error_at(p, OFE_EPARSE, p->tstart, "expected an input name, '!' or '(', found %s", got);
}

static int parse_and(struct parser *p)
{
    if (parse_unary(p))
        return p->err;
    while (p->tok == T_AND) {
        next(p);
        if (parse_unary(p) || emit(p, OP_AND, 0))
            return p->err;
    }
    return p->err;
}

static int parse_or(struct parser *p)
{
    if (parse_and(p))
        return p->err;
    while (p->tok == T_OR) {
        next(p);
        if (parse_and(p) || emit(p, OP_OR, 0))
            return p->err;
    }
    return p->err;
}

int ofe_condition_compile(const char *expr, const char *const *names, size_t nnames,
                          struct ofe_condition **out, size_t *err_off, char *errstr,
                          size_t errstr_size)
{
    struct parser p;
    memset(&p, 0, sizeof(p));
    p.s = expr ? expr : "";
    p.len = strlen(p.s);
    p.names = names;
    p.nnames = nnames;
    p.errstr = errstr;
    p.errstr_size = errstr_size;
    if (err_off)
        *err_off = 0;
    if (p.len > OFE_CONDITION_MAX_LEN) {
        if (errstr && errstr_size)
            snprintf(errstr, errstr_size, "condition longer than %d bytes", OFE_CONDITION_MAX_LEN);
        return OFE_EPARSE;
    }
    p.c = calloc(1, sizeof(*p.c));
    if (p.c)
        p.c->used = calloc(nnames / 64 + 1, sizeof(uint64_t));
    if (!p.c || !p.c->used) {
        ofe_condition_destroy(p.c);
        return ofe_err(errstr, errstr_size, OFE_ENOMEM, "out of memory");
    }
    p.c->ninputs = nnames;
    next(&p);
    if (!p.err && p.tok == T_END)
        error_at(&p, OFE_EPARSE, 0,
                 "empty condition (expected input names joined by &&, ||, ! and parentheses)");
    if (!p.err)
        parse_or(&p);
    if (!p.err && p.tok != T_END) {
        char got[64];
        describe(&p, got, sizeof(got));
        if (p.tok == T_RPAREN)
            error_at(&p, OFE_EPARSE, p.tstart, "unmatched ')'");
        else
            error_at(&p, OFE_EPARSE, p.tstart,
                     "expected '&&', '||' or the end of the condition, found %s", got);
    }
    if (p.err) {
        if (err_off)
            *err_off = p.err_off;
        ofe_condition_destroy(p.c);
        return p.err;
    }
    *out = p.c;
    return 0;
}

void ofe_condition_destroy(struct ofe_condition *c)
{
    if (!c)
        return;
    free(c->code);
    free(c->used);
    free(c);
}

static bool run(const struct ofe_condition *c, bool (*is_true)(void *ctx, size_t input), void *ctx,
                const uint64_t *bits)
{
    bool st[STACK_MAX];
    size_t sp = 0;
    for (size_t i = 0; i < c->n; i++) {
        const struct insn *in = &c->code[i];
        switch (in->op) {
        case OP_PUSH:
            st[sp++] =
                bits ? (bits[in->input / 64] >> (in->input % 64)) & 1 : is_true(ctx, in->input);
            break;
        case OP_NOT:
            st[sp - 1] = !st[sp - 1];
            break;
        case OP_AND:
            sp--;
            st[sp - 1] = st[sp - 1] && st[sp];
            break;
        case OP_OR:
            sp--;
            st[sp - 1] = st[sp - 1] || st[sp];
            break;
        }
    }
    return sp ? st[0] : false;
}

bool ofe_condition_eval(const struct ofe_condition *c, bool (*is_true)(void *ctx, size_t input),
                        void *ctx)
{
    return run(c, is_true, ctx, NULL);
}

bool ofe_condition_eval_bits(const struct ofe_condition *c, const uint64_t *bits)
{
    return run(c, NULL, NULL, bits);
}

bool ofe_condition_uses(const struct ofe_condition *c, size_t input)
{
    return input < c->ninputs && ((c->used[input / 64] >> (input % 64)) & 1);
}

int ofe_condition_format(const struct ofe_condition *c, const char *const *names,
                         struct ofe_buf *out)
{
    char **st = calloc(c->n + 1, sizeof(char *));
    size_t sp = 0;
    int rc = 0;
    if (!st)
        return OFE_ENOMEM;
    for (size_t i = 0; i < c->n && !rc; i++) {
        struct ofe_buf b = OFE_BUF_INIT;
        const struct insn *in = &c->code[i];
        switch (in->op) {
        case OP_PUSH:
            rc = ofe_buf_puts(&b, names[in->input]);
            break;
        case OP_NOT:
            rc = ofe_buf_printf(&b, "!%s", st[sp - 1]);
            free(st[--sp]);
            break;
        default:
            rc = ofe_buf_printf(&b, "(%s %s %s)", st[sp - 2], in->op == OP_AND ? "&&" : "||",
                                st[sp - 1]);
            free(st[--sp]);
            free(st[--sp]);
            break;
        }
        st[sp++] = rc ? NULL : ofe_buf_detach(&b, NULL);
        if (!st[sp - 1])
            rc = OFE_ENOMEM;
        ofe_buf_fini(&b);
    }
    if (!rc && sp == 1)
        rc = ofe_buf_puts(out, st[0]);
    for (size_t i = 0; i < sp; i++)
        free(st[i]);
    free(st);
    return rc;
}
