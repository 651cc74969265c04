/* CESQL lexer: turns expression text into tokens.
 *
 * Keywords are case-insensitive. An integer literal carries its sign when
 * the '+' or '-' stands where an operand is expected and a digit follows
 * (so -2147483648 is one literal, while `4 -1` and `4-1` are subtractions).
 * String literals are '...' or "...". Inside them a backslash escapes the
 * delimiting quote (spec 2.2) or another backslash, and a doubled quote
 * stands for one (as in SQL and the spec's ANTLR lexer); every other
 * backslash is kept as is, for LIKE patterns to see (\% \_). */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "cesql_int.h"

void cesql__lex_init(struct cesql_lexer *lx, const char *text, size_t len, char *err,
                     size_t err_size)
{
    lx->text = text;
    lx->len = len;
    lx->pos = 0;
    lx->prev = TK_EOF;
    lx->err = err;
    lx->err_size = err_size;
}

const char *cesql__tok_name(enum cesql_tok t)
{
    static const char *const names[] = {
        [TK_EOF] = "end of expression",
        [TK_INT] = "integer",
        [TK_STR] = "string",
        [TK_IDENT] = "identifier",
        [TK_LP] = "'('",
        [TK_RP] = "')'",
        [TK_COMMA] = "','",
        [TK_PLUS] = "'+'",
        [TK_MINUS] = "'-'",
        [TK_STAR] = "'*'",
        [TK_SLASH] = "'/'",
        [TK_PERCENT] = "'%'",
        [TK_EQ] = "'='",
        [TK_NE] = "'!='",
        [TK_LTGT] = "'<>'",
        [TK_LT] = "'<'",
        [TK_LE] = "'<='",
        [TK_GT] = "'>'",
        [TK_GE] = "'>='",
        [TK_AND] = "AND",
        [TK_OR] = "OR",
        [TK_XOR] = "XOR",
        [TK_NOT] = "NOT",
        [TK_LIKE] = "LIKE",
        [TK_IN] = "IN",
        [TK_EXISTS] = "EXISTS",
        [TK_TRUE] = "TRUE",
        [TK_FALSE] = "FALSE",
        [TK_ERROR] = "error",
    };
    return (unsigned)t < sizeof(names) / sizeof(names[0]) && names[t] ? names[t] : "token";
}

static const struct {
    const char *word;
    enum cesql_tok tok;
} keywords[] = {
    {"AND", TK_AND},       {"OR", TK_OR},     {"XOR", TK_XOR},
    {"NOT", TK_NOT},       {"LIKE", TK_LIKE}, {"IN", TK_IN},
    {"EXISTS", TK_EXISTS}, {"TRUE", TK_TRUE}, {"FALSE", TK_FALSE},
};

static bool is_word(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

static bool is_digit(unsigned char c)
{
    return c >= '0' && c <= '9';
}

/* Does the previous token end an operand (so that '-' is binary)? */
static bool ends_operand(enum cesql_tok t)
{
    return t == TK_INT || t == TK_STR || t == TK_IDENT || t == TK_RP || t == TK_TRUE ||
           t == TK_FALSE;
}

static struct cesql_token lex_error(struct cesql_lexer *lx, size_t pos, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static struct cesql_token lex_error(struct cesql_lexer *lx, size_t pos, const char *fmt, ...)
{
    struct cesql_token t = {TK_ERROR, (uint32_t)pos, 0, 0};
    if (lx->err && lx->err_size) {
        char msg[160];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        snprintf(lx->err, lx->err_size, "column %zu: %s", pos + 1, msg);
    }
    return t;
}

/* Scans digits at p (after an optional sign at start); fills tok. */
static struct cesql_token lex_int(struct cesql_lexer *lx, size_t start)
{
    size_t p = start;
    bool neg = false;
    if (lx->text[p] == '-' || lx->text[p] == '+') {
        neg = lx->text[p] == '-';
        p++;
    }
    int64_t v = 0;
    bool big = false;
    while (p < lx->len && is_digit((unsigned char)lx->text[p])) {
        v = v * 10 + (lx->text[p] - '0');
        if (v > 2147483648LL) {
            big = true;
            v = 2147483648LL;
        }
        p++;
    }
    if (p < lx->len && is_word((unsigned char)lx->text[p]))
        return lex_error(lx, p, "a number must not run into letters");
    if (neg)
        v = -v;
    if (big || v > INT32_MAX || v < INT32_MIN) {
        char num[48];
        snprintf(num, sizeof(num), "%.*s", (int)(p - start > 40 ? 40 : p - start),
                 lx->text + start);
        return lex_error(lx, start, "integer literal %s is out of the 32-bit range", num);
    }
    struct cesql_token t = {TK_INT, (uint32_t)start, (uint32_t)(p - start), (int32_t)v};
    lx->pos = p;
    return t;
}

struct cesql_token cesql__lex_next(struct cesql_lexer *lx)
{
    struct cesql_token t = {TK_EOF, 0, 0, 0};
    const char *s = lx->text;
    size_t n = lx->len;
    size_t p = lx->pos;
    while (p < n && (s[p] == ' ' || s[p] == '\t' || s[p] == '\n' || s[p] == '\r' || s[p] == '\f' ||
                     s[p] == '\v'))
        p++;
    lx->pos = p;
    t.pos = (uint32_t)p;
    if (p >= n) {
        lx->prev = TK_EOF;
        return t;
    }
    unsigned char c = (unsigned char)s[p];
    size_t adv = 1;
    switch (c) {
    case '(':
        t.kind = TK_LP;
        break;
    case ')':
        t.kind = TK_RP;
        break;
    case ',':
        t.kind = TK_COMMA;
        break;
    case '*':
        t.kind = TK_STAR;
        break;
    case '/':
        t.kind = TK_SLASH;
        break;
    case '%':
        t.kind = TK_PERCENT;
        break;
    case '=':
        t.kind = TK_EQ;
        break;
    case '!':
        if (p + 1 < n && s[p + 1] == '=') {
            t.kind = TK_NE;
            adv = 2;
            break;
        }
        return lex_error(lx, p, "'!' must be followed by '=' (use NOT for negation)");
    case '<':
        if (p + 1 < n && s[p + 1] == '=') {
            t.kind = TK_LE;
            adv = 2;
        } else if (p + 1 < n && s[p + 1] == '>') {
            t.kind = TK_LTGT;
            adv = 2;
        } else {
            t.kind = TK_LT;
        }
        break;
    case '>':
        if (p + 1 < n && s[p + 1] == '=') {
            t.kind = TK_GE;
            adv = 2;
        } else {
            t.kind = TK_GT;
        }
        break;
    case '+':
    case '-':
        if (!ends_operand(lx->prev) && p + 1 < n && is_digit((unsigned char)s[p + 1])) {
            t = lex_int(lx, p);
            if (t.kind == TK_INT)
                lx->prev = TK_INT;
            return t;
        }
        t.kind = c == '+' ? TK_PLUS : TK_MINUS;
        break;
    case '\'':
    case '"': {
        size_t q = p + 1;
        while (q < n) {
            if (s[q] == '\\' && q + 1 < n)
                q += 2; /* a backslash and whatever follows it */
            else if (s[q] == (char)c && q + 1 < n && s[q + 1] == (char)c)
                q += 2; /* doubled quote */
            else if (s[q] == (char)c)
                break;
            else
                q++;
        }
        if (q >= n)
            return lex_error(lx, p, "unterminated string literal");
        if (q - p + 1 > UINT32_MAX)
            return lex_error(lx, p, "string literal too long");
        t.kind = TK_STR;
        adv = q - p + 1;
        break;
    }
    default:
        if (is_word(c)) {
            size_t q = p;
            bool digits = true;
            while (q < n && is_word((unsigned char)s[q])) {
                if (!is_digit((unsigned char)s[q]))
                    digits = false;
                q++;
            }
            if (digits) {
                t = lex_int(lx, p);
                if (t.kind == TK_INT)
                    lx->prev = TK_INT;
                return t;
            }
            t.kind = TK_IDENT;
            for (size_t k = 0; k < sizeof(keywords) / sizeof(keywords[0]); k++)
                if (strlen(keywords[k].word) == q - p &&
                    !strncasecmp(keywords[k].word, s + p, q - p)) {
                    t.kind = keywords[k].tok;
                    break;
                }
            adv = q - p;
            break;
        }
        if (c >= 0x20 && c < 0x7f) {
            char ch[2] = {(char)c, 0};
            return lex_error(lx, p, "unexpected character '%s'", ch);
        }
        char hex[8];
        snprintf(hex, sizeof(hex), "0x%02X", c);
        return lex_error(lx, p, "unexpected byte %s outside a string literal", hex);
    }
    t.len = (uint32_t)adv;
    lx->pos = p + adv;
    lx->prev = t.kind;
    return t;
}

size_t cesql__lex_string(const char *text, const struct cesql_token *tok, char *dst)
{
    const char *s = text + tok->pos;
    char q = s[0];
    size_t n = 0;
    for (size_t i = 1; i + 1 < tok->len; i++) {
        if ((s[i] == '\\' && i + 2 < tok->len && (s[i + 1] == q || s[i + 1] == '\\')) ||
            (s[i] == q && i + 2 < tok->len))
            i++; /* \' \\ '' stand for the second character */
        dst[n++] = s[i];
    }
    return n;
}
