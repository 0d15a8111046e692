/* lowrank.h -- singular values of a low-rank product s*B*A without forming
 * it (the LoRA delta; docs/peft.md).
 *
 * With B = Q_B R_B and A^T = Q_A R_A (thin QR, LAPACKE_dgeqrf), B*A =
 * Q_B (R_B R_A^T) Q_A^T, so the singular values of B*A are those of the small
 * k_b x k_a product R_B R_A^T (k_b = min(rows, r), k_a = min(cols, r)).
 * Cost O((rows + cols) r^2), memory O((rows + cols) r).
 *
 * Ownership: inputs borrowed, nothing kept. Thread-safety: no state (LAPACK
 * and BLAS calls only): thread-safe.
 */
#ifndef CORE_LOWRANK_H
#define CORE_LOWRANK_H

#include <stdint.h>

#include "core/err.h"

/* ||s*B*A||_2, the largest singular value of s*B*A, in *out: B is rows x r,
 * A is r x cols, both row-major float64. rows, cols, r >= 1. Fails with
 * ERR_NOMEM, ERR_INVAL (a dimension < 1 or past LAPACK's int) or ERR_NUMERIC
 * (LAPACK did not converge); *out is then NAN. */
enum err_code lowrank_norm2(int64_t rows, int64_t cols, int64_t r, const double *b, const double *a,
                            double s, double *out, struct err *e);

#endif /* CORE_LOWRANK_H */
