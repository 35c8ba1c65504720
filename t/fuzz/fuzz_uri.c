/*
 * libFuzzer target: what a request names outside its body.  The input is
 * three lines: the path below the location's prefix, the query string and
 * an If-Match value.  They go through the router and the path check, every
 * query argument the API reads, and the entity-tag parser.  Aborts (a
 * finding) when a result points outside its input or breaks its bounds.
 */

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ngx_http_inventory_codec.h"
#include "ngx_http_inventory_uri.h"


static const char  *fuzz_args[] = {
    "after", "after_version", "limit", "wait", "as_of", "location", "cursor",
    NULL
};


static void
fuzz_within(ngx_http_inventory_str_t s, const char *p, size_t len)
{
    if (s.data && (s.data < p || s.data + s.len > p + len)) {
        abort();
    }
}


static void
fuzz_query(const char *q, size_t len)
{
    char                         *buf;
    size_t                        n;
    uint64_t                      v, ms;
    const char                  **name;
    ngx_http_inventory_str_t      arg, sku, location;
    ngx_http_inventory_errors_t   errs;

    for (name = fuzz_args; *name; name++) {
        if (ngx_http_inventory_query_arg(q, len, *name, &arg) != 0) {
            continue;
        }

        fuzz_within(arg, q, len);

        buf = malloc(arg.len + 1);
        if (buf == NULL) {
            return;
        }

        n = ngx_http_inventory_unescape(buf, arg.data, arg.len);
        if (n > arg.len) {
            abort();
        }

        errs.n = 0;
        ngx_http_inventory_validate_id(&errs, *name, (ngx_http_inventory_str_t)
                                       { buf, n });
        (void) ngx_http_inventory_time_parse(buf, n, &ms);
        if (ngx_http_inventory_item_key_split((unsigned char *) buf, n, &sku,
                                              &location)
            == 0)
        {
            fuzz_within(sku, buf, n);
            fuzz_within(location, buf, n);
        }

        free(buf);

        errs.n = 0;
        v = 7;
        ngx_http_inventory_query_uint(q, len, *name, 1, 1000, &v, &errs);

        if (v < 1 || v > 1000 || (v != 7 && errs.n != 0)) {
            abort();
        }
    }
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int                                any;
    size_t                             n, plen, qlen, hlen;
    uint64_t                           versions[NGX_HTTP_INVENTORY_ETAGS_MAX];
    const char                        *p, *q, *h, *end;
    unsigned                           methods;
    ngx_http_inventory_path_t          ids;
    ngx_http_inventory_errors_t        errs;
    const ngx_http_inventory_route_t  *rt;

    p = (const char *) data;
    end = p + size;

    q = memchr(p, '\n', size);
    q = q ? q + 1 : end;
    plen = q - p - (q < end || (size && end[-1] == '\n') ? 1 : 0);

    h = memchr(q, '\n', end - q);
    h = h ? h + 1 : end;
    qlen = h - q - (h > q && h[-1] == '\n' ? 1 : 0);
    hlen = end - h;

    /* the method from the input too: a path may serve two routes */
    rt = ngx_http_inventory_route_find(p, plen,
                                       1u << (size ? data[size - 1] % 4 : 0),
                                       &ids, &methods);

    if (rt && !(methods & rt->methods)) {
        abort();
    }

    if (rt) {
        if (rt->route == NGX_HTTP_INVENTORY_ROUTE_UNKNOWN
            || rt->route >= NGX_HTTP_INVENTORY_ROUTE_LAST
            || rt->methods == 0 || rt->allow == NULL)
        {
            abort();
        }

        fuzz_within(ids.sku, p, plen);
        fuzz_within(ids.location, p, plen);
        fuzz_within(ids.id, p, plen);

        errs.n = 0;

        switch (ngx_http_inventory_path_check(&ids, &errs)) {

        case NGX_HTTP_INVENTORY_PATH_OK:
            if (errs.n != 0
                || (ids.sku.data
                    && !ngx_http_inventory_id_valid(ids.sku.data,
                                                    ids.sku.len)))
            {
                abort();
            }

            break;

        case NGX_HTTP_INVENTORY_PATH_INVALID:
            if (errs.n == 0) {
                abort();
            }

            break;

        default:
            if (ids.id.data == NULL) {
                abort();
            }
        }

    } else if (ids.sku.data || ids.location.data || ids.id.data) {
        abort();
    }

    fuzz_query(q, qlen);

    if (ngx_http_inventory_parse_etags(h, hlen, size & 1, versions, &n, &any)
        == 0 && n > NGX_HTTP_INVENTORY_ETAGS_MAX)
    {
        abort();
    }

    return 0;
}
