/* utf8.c -- see utf8.h. The second byte's range rules out overlongs
 * (E0, F0), surrogates (ED) and code points above U+10FFFF (F4). */
#include "core/utf8.h"

uint64_t utf8_check(const unsigned char *s, uint64_t n)
{
    uint64_t i = 0;

    while (i < n) {
        unsigned char c = s[i];
        unsigned char lo = 0x80, hi = 0xBF;
        int more;
        if (c < 0x80) {
            i++;
            continue;
        }
        if (c >= 0xC2 && c <= 0xDF) {
            more = 1;
        } else if (c >= 0xE0 && c <= 0xEF) {
            more = 2;
            lo = c == 0xE0 ? 0xA0 : 0x80;
            hi = c == 0xED ? 0x9F : 0xBF;
        } else if (c >= 0xF0 && c <= 0xF4) {
            more = 3;
            lo = c == 0xF0 ? 0x90 : 0x80;
            hi = c == 0xF4 ? 0x8F : 0xBF;
        } else {
            return i;
        }
        if (n - i <= (uint64_t)more || s[i + 1] < lo || s[i + 1] > hi)
            return i;
        for (int k = 2; k <= more; k++)
            if (s[i + k] < 0x80 || s[i + k] > 0xBF)
                return i;
        i += (uint64_t)more + 1;
    }
    return n;
}
