/* api_svg.c -- the ESD picture (api__esd_svg): a log-log plot of a layer's
 * eigenvalue histogram (density per unit lambda) with the fitted power law
 * drawn from xmin to the largest eigenvalue, a dashed xmin marker, decade
 * ticks with labels, axis labels, a title and a legend carrying alpha.
 * Colours are the Okabe-Ito colour-blind-safe palette; every text from
 * data is XML-escaped. Pure string building: thread-safe.
 */
#include "api/api_int.h"
#include "core/numerics/esd_hist.h"
#include "core/sbuf.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SVG_W           720
#define SVG_H           450
#define SVG_X0          90.0 /* plot area */
#define SVG_X1          690.0
#define SVG_Y0          60.0
#define SVG_Y1          380.0
#define SVG_BLUE        "#0072B2" /* histogram */
#define SVG_VERM        "#D55E00" /* power-law fit */
#define SVG_GREEN       "#009E73" /* xmin */
#define SVG_MAX_DECADES 14        /* of the y axis, below the top */


/* Text content / attribute value with & < > " ' escaped. */
static void svg_text(struct sbuf *b, const char *s)
{
    for (; *s != '\0'; s++) {
        switch (*s) {
        case '&': sbuf_printf(b, "&amp;"); break;
        case '<': sbuf_printf(b, "&lt;"); break;
        case '>': sbuf_printf(b, "&gt;"); break;
        case '"': sbuf_printf(b, "&quot;"); break;
        case '\'': sbuf_printf(b, "&apos;"); break;
        default:
            if ((unsigned char)*s < 0x20) /* not allowed in XML 1.0 */
                sbuf_printf(b, "?");
            else
                sbuf_printf(b, "%c", *s);
        }
    }
}

struct svg_axes {
    double lx0, lx1, ly0, ly1; /* log10 ranges */
};

static double svg_x(const struct svg_axes *a, double x)
{
    return SVG_X0 + (log10(x) - a->lx0) / (a->lx1 - a->lx0) * (SVG_X1 - SVG_X0);
}

static double svg_y(const struct svg_axes *a, double y)
{
    double ly = y > 0 ? log10(y) : a->ly0;

    ly = ly < a->ly0 ? a->ly0 : ly > a->ly1 ? a->ly1 : ly;
    return SVG_Y1 - (ly - a->ly0) / (a->ly1 - a->ly0) * (SVG_Y1 - SVG_Y0);
}

/* Whole decades around the histogram, the fit line and xmin. */
static void svg_axes_of(const struct esd_hist *h, struct svg_axes *a)
{
    double dmin = INFINITY, dmax = 0;

    a->lx0 = floor(h->log_lo);
    a->lx1 = ceil(h->log_hi);
    if (esd_hist_has_fit(h) && log10(h->xmin) < a->lx0)
        a->lx0 = floor(log10(h->xmin));
    if (a->lx1 <= a->lx0)
        a->lx1 = a->lx0 + 1;
    for (int k = 0; k < h->n_bins; k++) {
        double d = esd_hist_density(h, k);
        if (d > 0) {
            dmin = d < dmin ? d : dmin;
            dmax = d > dmax ? d : dmax;
        }
    }
    if (esd_hist_has_fit(h)) {
        double top = esd_hist_fit_density(h, h->xmin), end = esd_hist_fit_density(h, h->max);
        dmax = top > dmax ? top : dmax;
        dmin = end > 0 && end < dmin ? end : dmin;
    }
    if (!(dmax > 0)) {
        dmin = 0.1;
        dmax = 1;
    }
    a->ly1 = ceil(log10(dmax));
    a->ly0 = floor(log10(dmin));
    if (a->ly1 <= a->ly0)
        a->ly0 = a->ly1 - 1;
    if (a->ly1 - a->ly0 > SVG_MAX_DECADES)
        a->ly0 = a->ly1 - SVG_MAX_DECADES;
}

/* Frame, decade ticks with 10^k labels, grid, axis labels. */
static void svg_frame(struct sbuf *b, const struct svg_axes *a)
{
    int sx = (int)ceil((a->lx1 - a->lx0) / 10), sy = (int)ceil((a->ly1 - a->ly0) / 8);

    sbuf_printf(b, "<g font-family=\"sans-serif\" font-size=\"12\" fill=\"#222\">\n");
    for (int k = (int)a->lx0; k <= (int)a->lx1; k += sx) {
        double x = SVG_X0 + (k - a->lx0) / (a->lx1 - a->lx0) * (SVG_X1 - SVG_X0);
        sbuf_printf(b,
                    "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#ddd\"/>"
                    "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#222\"/>"
                    "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">10<tspan dy=\"-6\" "
                    "font-size=\"9\">%d</tspan></text>\n",
                    x, SVG_Y0, x, SVG_Y1, x, SVG_Y1, x, SVG_Y1 + 5, x, SVG_Y1 + 20, k);
    }
    for (int k = (int)a->ly0; k <= (int)a->ly1; k += sy) {
        double y = SVG_Y1 - (k - a->ly0) / (a->ly1 - a->ly0) * (SVG_Y1 - SVG_Y0);
        sbuf_printf(b,
                    "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#ddd\"/>"
                    "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#222\"/>"
                    "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">10<tspan dy=\"-6\" "
                    "font-size=\"9\">%d</tspan></text>\n",
                    SVG_X0, y, SVG_X1, y, SVG_X0 - 5, y, SVG_X0, y, SVG_X0 - 8, y + 4, k);
    }
    sbuf_printf(b,
                "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"none\" "
                "stroke=\"#222\"/>\n"
                "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\" font-size=\"14\">eigenvalue "
                "λ</text>\n<text transform=\"translate(24 %.1f) rotate(-90)\" "
                "text-anchor=\"middle\" font-size=\"14\">density</text>\n</g>\n",
                SVG_X0, SVG_Y0, SVG_X1 - SVG_X0, SVG_Y1 - SVG_Y0, (SVG_X0 + SVG_X1) / 2, SVG_H - 22,
                (SVG_Y0 + SVG_Y1) / 2);
}

/* The histogram bars, the fit line and the xmin marker. */
static void svg_data(struct sbuf *b, const struct esd_hist *h, const struct svg_axes *a)
{
    sbuf_printf(b, "<g fill=\"%s\" fill-opacity=\"0.55\" stroke=\"%s\" stroke-width=\"0.5\">\n",
                SVG_BLUE, SVG_BLUE);
    for (int k = 0; k < h->n_bins; k++) {
        double d = esd_hist_density(h, k), x0, x1, y;
        if (!(d > 0))
            continue;
        x0 = svg_x(a, esd_hist_edge_lo(h, k));
        x1 = svg_x(a, esd_hist_edge_hi(h, k));
        y = svg_y(a, d);
        sbuf_printf(b, "<rect x=\"%.2f\" y=\"%.2f\" width=\"%.2f\" height=\"%.2f\"/>\n", x0, y,
                    x1 - x0, SVG_Y1 - y);
    }
    sbuf_printf(b, "</g>\n");
    if (!esd_hist_has_fit(h))
        return;
    sbuf_printf(b, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"2.5\" points=\"",
                SVG_VERM);
    for (int i = 0; i <= 48; i++) {
        double lx0 = log10(h->xmin), lx1 = log10(h->max > h->xmin ? h->max : h->xmin);
        double x = pow(10, lx0 + (lx1 - lx0) * i / 48.0);
        sbuf_printf(b, "%s%.2f,%.2f", i ? " " : "", svg_x(a, x),
                    svg_y(a, esd_hist_fit_density(h, x)));
    }
    sbuf_printf(b,
                "\"/>\n<line x1=\"%.2f\" y1=\"%.1f\" x2=\"%.2f\" y2=\"%.1f\" stroke=\"%s\" "
                "stroke-width=\"1.5\" stroke-dasharray=\"6 4\"/>\n",
                svg_x(a, h->xmin), SVG_Y0, svg_x(a, h->xmin), SVG_Y1, SVG_GREEN);
}

/* Legend in the top right corner. */
static void svg_legend(struct sbuf *b, const struct esd_hist *h)
{
    double x = SVG_X1 - 230, y = SVG_Y0 + 10;

    sbuf_printf(b,
                "<g font-family=\"sans-serif\" font-size=\"13\" fill=\"#222\">\n"
                "<rect x=\"%.1f\" y=\"%.1f\" width=\"220\" height=\"%d\" fill=\"white\" "
                "fill-opacity=\"0.85\" stroke=\"#999\"/>\n"
                "<rect x=\"%.1f\" y=\"%.1f\" width=\"18\" height=\"10\" fill=\"%s\" "
                "fill-opacity=\"0.55\"/><text x=\"%.1f\" y=\"%.1f\">ESD, %lld eigenvalues</text>\n",
                x, y, esd_hist_has_fit(h) ? 70 : 28, x + 8, y + 9, SVG_BLUE, x + 34, y + 19,
                (long long)h->n_eigs);
    if (esd_hist_has_fit(h))
        sbuf_printf(b,
                    "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" "
                    "stroke-width=\"2.5\"/><text x=\"%.1f\" y=\"%.1f\">power law, α = %.3f</text>\n"
                    "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" "
                    "stroke-width=\"1.5\" stroke-dasharray=\"6 4\"/><text x=\"%.1f\" y=\"%.1f\">"
                    "xmin = %.4g, D = %.3f</text>\n",
                    x + 8, y + 36, x + 26, y + 36, SVG_VERM, x + 34, y + 41, h->alpha, x + 8,
                    y + 58, x + 26, y + 58, SVG_GREEN, x + 34, y + 63, h->xmin, h->D);
    sbuf_printf(b, "</g>\n");
}

char *api__esd_svg(const struct esd_hist *h, const char *layer, int64_t step, size_t *len)
{
    struct sbuf b = {0};
    struct svg_axes a;

    *len = 0;
    svg_axes_of(h, &a);
    sbuf_printf(&b,
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
                "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
                "viewBox=\"0 0 %d %d\" role=\"img\" data-alpha=\"%.17g\" data-xmin=\"%.17g\">\n"
                "<title>ESD of ",
                SVG_W, SVG_H, SVG_W, SVG_H, h->alpha, h->xmin);
    svg_text(&b, layer);
    sbuf_printf(&b,
                " at step %lld</title>\n<rect width=\"100%%\" height=\"100%%\" "
                "fill=\"white\"/>\n<text x=\"%d\" y=\"32\" text-anchor=\"middle\" "
                "font-family=\"sans-serif\" font-size=\"16\" font-weight=\"bold\">",
                (long long)step, SVG_W / 2);
    svg_text(&b, layer);
    sbuf_printf(&b, " — step %lld</text>\n", (long long)step);
    svg_frame(&b, &a);
    svg_data(&b, h, &a);
    svg_legend(&b, h);
    if (h->n_zero > 0)
        sbuf_printf(&b,
                    "<text x=\"%.1f\" y=\"%d\" font-family=\"sans-serif\" font-size=\"11\" "
                    "fill=\"#555\">%lld eigenvalue(s) ≈ 0 not shown</text>\n",
                    SVG_X0, SVG_H - 6, (long long)h->n_zero);
    sbuf_printf(&b, "</svg>\n");
    if (b.failed) {
        sbuf_free(&b);
        return NULL;
    }
    *len = b.len;
    return b.p;
}
