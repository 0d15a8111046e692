/* lowrank.c -- see lowrank.h. */
#include "core/numerics/lowrank.h"

#include <cblas.h>
#include <lapacke.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* The k x r upper-trapezoidal R of the thin QR of the n x r column-major
 * matrix m (overwritten), into r_out (k x r, column-major, zero below the
 * diagonal), k = min(n, r). */
static enum err_code lowrank_qr_r(lapack_int n, lapack_int r, double *m, double *r_out,
                                  struct err *e)
{
    lapack_int k = n < r ? n : r;
    double *tau = malloc((size_t)k * sizeof(*tau));
    lapack_int info;

    if (tau == NULL)
        return err_set(e, ERR_NOMEM, "out of memory for a QR of %d x %d", (int)n, (int)r);
    info = LAPACKE_dgeqrf(LAPACK_COL_MAJOR, n, r, m, n, tau);
    free(tau);
    if (info != 0)
        return err_set(e, ERR_NUMERIC, "QR of a %d x %d factor failed (info %d)", (int)n, (int)r,
                       (int)info);
    for (lapack_int j = 0; j < r; j++)
        for (lapack_int i = 0; i < k; i++)
            r_out[(size_t)j * k + i] = i <= j ? m[(size_t)j * n + i] : 0.0;
    return ERR_OK;
}

enum err_code lowrank_norm2(int64_t rows, int64_t cols, int64_t r, const double *b, const double *a,
                            double s, double *out, struct err *e)
{
    enum err_code rc = ERR_OK;
    lapack_int kb, ka, info;
    double *bc = NULL, *ac = NULL, *rb = NULL, *ra = NULL, *p = NULL, *sv = NULL, *sup = NULL;

    *out = NAN;
    if (rows < 1 || cols < 1 || r < 1 || rows > INT_MAX || cols > INT_MAX || r > INT_MAX ||
        (rows + cols) > INT64_MAX / r)
        return err_set(e, ERR_INVAL, "low-rank product %lld x %lld (rank %lld) out of range",
                       (long long)rows, (long long)cols, (long long)r);
    kb = (lapack_int)(rows < r ? rows : r);
    ka = (lapack_int)(cols < r ? cols : r);
    bc = malloc((size_t)(rows * r) * sizeof(double));
    ac = malloc((size_t)(cols * r) * sizeof(double));
    rb = malloc((size_t)(kb * r) * sizeof(double));
    ra = malloc((size_t)(ka * r) * sizeof(double));
    p = malloc((size_t)(kb * ka) * sizeof(double));
    sv = malloc((size_t)(kb < ka ? kb : ka) * sizeof(double));
    sup = malloc((size_t)(kb < ka ? kb : ka) * sizeof(double));
    if (!bc || !ac || !rb || !ra || !p || !sv || !sup) {
        rc = err_set(e, ERR_NOMEM, "out of memory for a rank-%lld product", (long long)r);
        goto out;
    }
    /* B row-major rows x r is B^T column-major; copy to column-major B. A
     * row-major r x cols is, read column-major, A^T (cols x r): as is. */
    for (int64_t i = 0; i < rows; i++)
        for (int64_t j = 0; j < r; j++)
            bc[j * rows + i] = b[i * r + j];
    memcpy(ac, a, (size_t)(cols * r) * sizeof(double));
    rc = lowrank_qr_r((lapack_int)rows, (lapack_int)r, bc, rb, e);
    if (rc == ERR_OK)
        rc = lowrank_qr_r((lapack_int)cols, (lapack_int)r, ac, ra, e);
    if (rc)
        goto out;
    /* p (kb x ka) = R_B R_A^T, column-major. */
    cblas_dgemm(CblasColMajor, CblasNoTrans, CblasTrans, kb, ka, (blasint)r, 1.0, rb, kb, ra, ka,
                0.0, p, kb);
    info = LAPACKE_dgesvd(LAPACK_COL_MAJOR, 'N', 'N', kb, ka, p, kb, sv, NULL, 1, NULL, 1, sup);
    if (info != 0) {
        rc = err_set(e, ERR_NUMERIC, "SVD of the rank-%lld core did not converge (info %d)",
                     (long long)r, (int)info);
        goto out;
    }
    *out = fabs(s) * sv[0];
out:
    free(bc);
    free(ac);
    free(rb);
    free(ra);
    free(p);
    free(sv);
    free(sup);
    return rc;
}
