/*
 * The clock: the wall clock in ms, times in RFC 3339 UTC with
 * milliseconds, and reservation ids, which begin with the time they were
 * made at.  Pure C, as the rest of the core.
 */

#include <errno.h>
#include <stddef.h>
#include <string.h>
#include <time.h>
#include <sys/random.h>
#include <sys/types.h>

#include "ngx_http_inventory_core.h"


static int64_t ngx_http_inventory_days_from_civil(int64_t y, unsigned m,
    unsigned d);


/*
 * The one clock of the module: the wall clock in ms since the epoch, as
 * event times, expiry and reservation ids use it.  The store keeps event
 * times from going back whatever this does.
 */

uint64_t
ngx_http_inventory_clock_now(void)
{
    struct timespec  ts;

    (void) clock_gettime(CLOCK_REALTIME, &ts);

    return (uint64_t) ts.tv_sec * 1000 + (uint64_t) ts.tv_nsec / 1000000;
}


/*
 * "r_", then the creation time in ms as 8 base62 digits, then 14 random
 * base62 digits from the kernel (about 83 bits: not guessable).  Ids sort by
 * creation time, so new reservations land on the last pages of the index,
 * not on random ones: a group commit then writes a few pages, not one per
 * reservation.
 */

int
ngx_http_inventory_reservation_id(char *id, uint64_t now)
{
    size_t             i, k;
    ssize_t            n;
    unsigned char      rnd[64];
    static const char  digits[] =
        "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

    id[0] = 'r';
    id[1] = '_';

    /* 62^8 ms is about 6900 years: the digits never wrap */
    for (k = 9; k >= 2; k--) {
        id[k] = digits[now % 62];
        now /= 62;
    }

    k = 10;

    while (k < NGX_HTTP_INVENTORY_RES_ID_LEN) {
        n = getrandom(rnd, sizeof(rnd), 0);

        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }

            return -1;
        }

        for (i = 0; i < (size_t) n && k < NGX_HTTP_INVENTORY_RES_ID_LEN; i++) {
            /* bytes past 4 * 62 would favour the first digits */
            if (rnd[i] < 248) {
                id[k++] = digits[rnd[i] % 62];
            }
        }
    }

    return 0;
}


/* whether an id could have been issued by reservation_id() */

int
ngx_http_inventory_reservation_id_valid(const char *id, size_t len)
{
    size_t  i;
    char    c;

    if (len != NGX_HTTP_INVENTORY_RES_ID_LEN || id[0] != 'r' || id[1] != '_') {
        return 0;
    }

    for (i = 2; i < len; i++) {
        c = id[i];

        if (!((c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z')
              || (c >= 'a' && c <= 'z')))
        {
            return 0;
        }
    }

    return 1;
}


/* RFC 3339 UTC with milliseconds; buf must hold TIME_LEN bytes */

size_t
ngx_http_inventory_time_format(uint64_t ms, char *buf)
{
    int64_t   days, z, era, doe, yoe, y, doy, mp, d, m;
    uint64_t  secs, sod;
    char     *p;

    secs = ms / 1000;
    days = (int64_t) (secs / 86400);
    sod = secs % 86400;

    /* civil_from_days, after Howard Hinnant's date algorithms */
    z = days + 719468;
    era = z / 146097;
    doe = z - era * 146097;
    yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    y = yoe + era * 400;
    doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    mp = (5 * doy + 2) / 153;
    d = doy - (153 * mp + 2) / 5 + 1;
    m = mp < 10 ? mp + 3 : mp - 9;
    y += (m <= 2);

    if (y > 9999) {
        y = 9999;
    }

    p = buf;
    *p++ = (char) ('0' + y / 1000);
    *p++ = (char) ('0' + y / 100 % 10);
    *p++ = (char) ('0' + y / 10 % 10);
    *p++ = (char) ('0' + y % 10);
    *p++ = '-';
    *p++ = (char) ('0' + m / 10);
    *p++ = (char) ('0' + m % 10);
    *p++ = '-';
    *p++ = (char) ('0' + d / 10);
    *p++ = (char) ('0' + d % 10);
    *p++ = 'T';
    *p++ = (char) ('0' + sod / 36000);
    *p++ = (char) ('0' + sod / 3600 % 10);
    *p++ = ':';
    *p++ = (char) ('0' + sod % 3600 / 600);
    *p++ = (char) ('0' + sod % 3600 / 60 % 10);
    *p++ = ':';
    *p++ = (char) ('0' + sod % 60 / 10);
    *p++ = (char) ('0' + sod % 10);
    *p++ = '.';
    *p++ = (char) ('0' + ms % 1000 / 100);
    *p++ = (char) ('0' + ms % 100 / 10);
    *p++ = (char) ('0' + ms % 10);
    *p++ = 'Z';

    return (size_t) (p - buf);
}


static int64_t
ngx_http_inventory_days_from_civil(int64_t y, unsigned m, unsigned d)
{
    int64_t   era, yoe, doy, doe;

    y -= (m <= 2);
    era = y / 400;
    yoe = y - era * 400;
    doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;

    return era * 146097 + doe - 719468;
}


/*
 * Parses an RFC 3339 timestamp: "YYYY-MM-DDTHH:MM:SS", an optional fraction
 * (digits past milliseconds are truncated) and "Z" or a numeric offset.
 * Returns -1 if it is not one, -2 if it is one before 1970.
 */

int
ngx_http_inventory_time_parse(const char *p, size_t len, uint64_t *ms)
{
    size_t    i;
    int64_t   v[6], days, t, frac, scale, off;
    unsigned  mdays;
    static const size_t    pos[6] = { 0, 5, 8, 11, 14, 17 };
    static const size_t    wid[6] = { 4, 2, 2, 2, 2, 2 };
    static const char      sep[6] = { '-', '-', 'T', ':', ':', 0 };
    static const unsigned  dim[12] = { 31, 29, 31, 30, 31, 30, 31, 31, 30,
                                       31, 30, 31 };

    if (len < 20) {
        return -1;
    }

    for (i = 0; i < 6; i++) {
        size_t  k;

        v[i] = 0;

        for (k = 0; k < wid[i]; k++) {
            char  c = p[pos[i] + k];

            if (c < '0' || c > '9') {
                return -1;
            }

            v[i] = v[i] * 10 + (c - '0');
        }

        if (sep[i] && p[pos[i] + wid[i]] != sep[i]
            && !(sep[i] == 'T' && p[pos[i] + wid[i]] == 't'))
        {
            return -1;
        }
    }

    if (v[1] < 1 || v[1] > 12 || v[2] < 1 || v[3] > 23 || v[4] > 59
        || v[5] > 60)
    {
        return -1;
    }

    mdays = dim[v[1] - 1];

    if (v[1] == 2 && !((v[0] % 4 == 0 && v[0] % 100 != 0) || v[0] % 400 == 0))
    {
        mdays = 28;
    }

    if ((unsigned) v[2] > mdays) {
        return -1;
    }

    i = 19;
    frac = 0;
    scale = 1000;

    if (i < len && p[i] == '.') {
        i++;

        if (i == len || p[i] < '0' || p[i] > '9') {
            return -1;
        }

        while (i < len && p[i] >= '0' && p[i] <= '9') {
            if (scale > 1) {
                scale /= 10;
                frac += (p[i] - '0') * scale;
            }

            i++;
        }
    }

    if (i + 1 == len && (p[i] == 'Z' || p[i] == 'z')) {
        off = 0;

    } else if (i + 6 == len && (p[i] == '+' || p[i] == '-')
               && ((p[i + 1] >= '0' && p[i + 1] <= '1'
                    && p[i + 2] >= '0' && p[i + 2] <= '9')
                   || (p[i + 1] == '2' && p[i + 2] >= '0' && p[i + 2] <= '3'))
               && p[i + 3] == ':'
               && p[i + 4] >= '0' && p[i + 4] <= '5'
               && p[i + 5] >= '0' && p[i + 5] <= '9')
    {
        off = ((p[i + 1] - '0') * 10 + (p[i + 2] - '0')) * 3600
              + ((p[i + 4] - '0') * 10 + (p[i + 5] - '0')) * 60;

        if (p[i] == '+') {
            off = -off;
        }

    } else {
        return -1;
    }

    days = ngx_http_inventory_days_from_civil(v[0], (unsigned) v[1],
                                              (unsigned) v[2]);
    t = days * 86400 + v[3] * 3600 + v[4] * 60 + (v[5] > 59 ? 59 : v[5])
        + off;

    if (t < 0) {
        return -2;
    }

    *ms = (uint64_t) t * 1000 + (uint64_t) frac;

    return 0;
}
