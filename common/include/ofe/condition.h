/* Trigger conditions: boolean expressions over input names (OpenFunction's
 * `condition: eventA && (eventB || !eventC)`).
 *
 * Grammar (precedence from high to low: not, and, or; all left
 * associative; spaces, tabs and newlines between tokens are ignored):
 *
 *   or      := and  { ("||" | "or")  and }
 *   and     := unary { ("&&" | "and") unary }
 *   unary   := ("!" | "not") unary | primary
 *   primary := NAME | "(" or ")"
 *
 * NAME is one or more of the characters A-Z a-z 0-9 _ -, not starting with
 * `-`, and not one of the words `and`, `or`, `not` (in any letter case: the
 * words are keywords in any case). Names are case-sensitive. So `a-b` is one
 * name, and `a - b` is an error. An input name of a Trigger must follow the
 * same rule (the config loader checks it).
 *
 * Limits: at most OFE_CONDITION_MAX_LEN bytes and OFE_CONDITION_MAX_DEPTH
 * nested parentheses / negations.
 *
 * A compiled condition is immutable: evaluating it from several threads at
 * once is safe. */
#ifndef OFE_CONDITION_H
#define OFE_CONDITION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ofe/buf.h"

#define OFE_CONDITION_MAX_LEN   4096
#define OFE_CONDITION_MAX_DEPTH 64

struct ofe_condition;

/* Compiles expr, resolving each name to its index in names[0..nnames-1].
 * On success stores a new condition in *out (the caller owns it and frees
 * it with ofe_condition_destroy) and returns 0. On error returns
 * OFE_EPARSE (syntax) or OFE_ENOENT (unknown name) or OFE_ENOMEM, fills
 * errstr with a sentence that includes the 1-based character position
 * ("at character 9: unknown input 'eventC' (inputs: eventA, eventB)"), and
 * sets *err_off (when not NULL) to the 0-based byte offset of the problem.
 * names is only read during the call. */
int ofe_condition_compile(const char *expr, const char *const *names, size_t nnames,
                          struct ofe_condition **out, size_t *err_off, char *errstr,
                          size_t errstr_size);

/* Frees c. ofe_condition_destroy(NULL) is a no-op. */
void ofe_condition_destroy(struct ofe_condition *c);

/* Evaluates c, asking is_true(ctx, i) for the truth of input i (an index
 * into the names given at compile time). Every operand is evaluated (no
 * short circuit is needed: names have no side effects), in expression
 * order. This function can't fail. */
bool ofe_condition_eval(const struct ofe_condition *c, bool (*is_true)(void *ctx, size_t input),
                        void *ctx);

/* Evaluates c with input i true when bit (i % 64) of bits[i / 64] is set.
 * bits must hold at least (nnames + 63) / 64 words. This function can't
 * fail. */
bool ofe_condition_eval_bits(const struct ofe_condition *c, const uint64_t *bits);

/* Returns true when the condition names input i. This function can't
 * fail. */
bool ofe_condition_uses(const struct ofe_condition *c, size_t input);

/* Appends a fully parenthesised canonical form to out, using names for the
 * inputs (the same array given to compile): `(a && (!b || c))` style, with
 * `&&`, `||`, `!`. Returns 0 or OFE_ENOMEM. */
int ofe_condition_format(const struct ofe_condition *c, const char *const *names,
                         struct ofe_buf *out);

#endif
