/*
 * The route table and the parsers of what a request names outside its body:
 * path segments, query arguments, If-Match and If-None-Match lists.
 */

#include <stdio.h>
#include <string.h>

#include "ngx_http_inventory_uri.h"


#define NGX_HTTP_INVENTORY_MAX_SEGMENTS  5


static int ngx_http_inventory_segment_is(ngx_http_inventory_str_t *seg,
    const char *word);
static int ngx_http_inventory_hex(char c);


/* indexed by route: entry i serves route i (a unit test checks it) */
static const ngx_http_inventory_route_t  ngx_http_inventory_routes[] = {

    { NULL, 0, NULL, NGX_HTTP_INVENTORY_NO_PARAMS,
      NGX_HTTP_INVENTORY_ROUTE_UNKNOWN,
      0, NULL, "unknown", 0 },

    { "inventory", 3, NULL, NGX_HTTP_INVENTORY_ITEM_PARAMS,
      NGX_HTTP_INVENTORY_ROUTE_ITEM,
      NGX_HTTP_INVENTORY_M_READ|NGX_HTTP_INVENTORY_M_PUT, "GET, HEAD, PUT",
      "item", NGX_HTTP_INVENTORY_CMD_COUNT },

    { "inventory", 4, "adjustments", NGX_HTTP_INVENTORY_ITEM_PARAMS,
      NGX_HTTP_INVENTORY_ROUTE_ADJUST,
      NGX_HTTP_INVENTORY_M_POST, "POST",
      "adjustments", NGX_HTTP_INVENTORY_CMD_ADJUST },

    { "inventory", 2, NULL, NGX_HTTP_INVENTORY_ITEM_PARAMS,
      NGX_HTTP_INVENTORY_ROUTE_AGGREGATE,
      NGX_HTTP_INVENTORY_M_READ, "GET, HEAD",
      "aggregate", 0 },

    /* the inventory_metrics location's */
    { NULL, 0, NULL, NGX_HTTP_INVENTORY_NO_PARAMS,
      NGX_HTTP_INVENTORY_ROUTE_METRICS,
      NGX_HTTP_INVENTORY_M_READ, "GET, HEAD", "metrics", 0 },

    { "health", 1, NULL, NGX_HTTP_INVENTORY_NO_PARAMS,
      NGX_HTTP_INVENTORY_ROUTE_HEALTH,
      NGX_HTTP_INVENTORY_M_READ, "GET, HEAD",
      "health", 0 },

    { "inventory", 4, "reservations", NGX_HTTP_INVENTORY_ITEM_PARAMS,
      NGX_HTTP_INVENTORY_ROUTE_RESERVE,
      NGX_HTTP_INVENTORY_M_POST, "POST",
      "reserve", NGX_HTTP_INVENTORY_CMD_RESERVE },

    { "inventory", 4, "events", NGX_HTTP_INVENTORY_ITEM_PARAMS,
      NGX_HTTP_INVENTORY_ROUTE_ITEM_EVENTS,
      NGX_HTTP_INVENTORY_M_READ, "GET, HEAD",
      "item_events", 0 },

    { "reservations", 1, NULL, NGX_HTTP_INVENTORY_NO_PARAMS,
      NGX_HTTP_INVENTORY_ROUTE_CART,
      NGX_HTTP_INVENTORY_M_POST, "POST",
      "reservations", NGX_HTTP_INVENTORY_CMD_RESERVE },

    { "reservations", 2, NULL, NGX_HTTP_INVENTORY_ID_PARAM,
      NGX_HTTP_INVENTORY_ROUTE_RESERVATION,
      NGX_HTTP_INVENTORY_M_READ, "GET, HEAD",
      "reservation", 0 },

    { "reservations", 3, "commit", NGX_HTTP_INVENTORY_ID_PARAM,
      NGX_HTTP_INVENTORY_ROUTE_COMMIT,
      NGX_HTTP_INVENTORY_M_POST, "POST",
      "commit", NGX_HTTP_INVENTORY_CMD_COMMIT },

    { "reservations", 3, "release", NGX_HTTP_INVENTORY_ID_PARAM,
      NGX_HTTP_INVENTORY_ROUTE_RELEASE,
      NGX_HTTP_INVENTORY_M_POST, "POST",
      "release", NGX_HTTP_INVENTORY_CMD_RELEASE },

    { "transfers", 1, NULL, NGX_HTTP_INVENTORY_NO_PARAMS,
      NGX_HTTP_INVENTORY_ROUTE_TRANSFER,
      NGX_HTTP_INVENTORY_M_POST, "POST",
      "transfers", NGX_HTTP_INVENTORY_CMD_TRANSFER },

    { "events", 1, NULL, NGX_HTTP_INVENTORY_NO_PARAMS,
      NGX_HTTP_INVENTORY_ROUTE_EVENTS,
      NGX_HTTP_INVENTORY_M_READ, "GET, HEAD",
      "events", 0 },

    { "low-stock", 1, NULL, NGX_HTTP_INVENTORY_NO_PARAMS,
      NGX_HTTP_INVENTORY_ROUTE_LOW_STOCK,
      NGX_HTTP_INVENTORY_M_READ, "GET, HEAD",
      "low_stock", 0 },

    /* the inventory_replication location's */
    { NULL, 0, NULL, NGX_HTTP_INVENTORY_NO_PARAMS,
      NGX_HTTP_INVENTORY_ROUTE_REPLICATION,
      NGX_HTTP_INVENTORY_M_GET|NGX_HTTP_INVENTORY_M_POST, "GET, POST",
      "replication", 0 },

    { "inventory", 4, "moves", NGX_HTTP_INVENTORY_ITEM_PARAMS,
      NGX_HTTP_INVENTORY_ROUTE_MOVE,
      NGX_HTTP_INVENTORY_M_POST, "POST",
      "moves", NGX_HTTP_INVENTORY_CMD_MOVE },

    { "inventory", 1, NULL, NGX_HTTP_INVENTORY_NO_PARAMS,
      NGX_HTTP_INVENTORY_ROUTE_CHANGES,
      NGX_HTTP_INVENTORY_M_READ, "GET, HEAD",
      "changes", 0 },

    /* a read, with its list in a body */
    { "inventory", 2, "query", NGX_HTTP_INVENTORY_NO_PARAMS,
      NGX_HTTP_INVENTORY_ROUTE_QUERY,
      NGX_HTTP_INVENTORY_M_POST, "POST",
      "query", 0 },

    { "batch", 1, NULL, NGX_HTTP_INVENTORY_NO_PARAMS,
      NGX_HTTP_INVENTORY_ROUTE_BATCH,
      NGX_HTTP_INVENTORY_M_POST, "POST",
      "batch", NGX_HTTP_INVENTORY_CMD_BATCH }
};


/*
 * path: what follows the location's prefix, without the leading slash
 * ("inventory/SKU/LOC").  Returns the route, or NULL; ids then point into
 * path.  The segments are taken as they are: nginx has already decoded and
 * normalized the URI, and an identifier is checked by path_check().  Of
 * the routes a path matches ("inventory/query" is POST's query, and GET's
 * SKU "query"), the first that serves method (M_ flags) is taken, else the
 * first; *methods gets all they serve, for a 405's Allow.
 */

const ngx_http_inventory_route_t *
ngx_http_inventory_route_find(const char *path, size_t len, unsigned method,
    ngx_http_inventory_path_t *ids, unsigned *methods)
{
    size_t                             n, i;
    const char                        *p, *end, *start;
    ngx_http_inventory_str_t           seg[NGX_HTTP_INVENTORY_MAX_SEGMENTS];
    const ngx_http_inventory_route_t  *rt, *first;

    memset(ids, 0, sizeof(ngx_http_inventory_path_t));

    p = path;
    end = path + len;

    for (n = 0; n < NGX_HTTP_INVENTORY_MAX_SEGMENTS; n++) {
        start = p;

        while (p < end && *p != '/') {
            p++;
        }

        seg[n].data = start;
        seg[n].len = p - start;

        if (seg[n].len == 0) {
            return NULL;
        }

        if (p == end) {
            n++;
            break;
        }

        p++;
    }

    if (p < end) {
        return NULL;
    }

    first = NULL;
    rt = NULL;
    *methods = 0;

    for (i = 0; i < NGX_HTTP_INVENTORY_ROUTE_LAST; i++) {
        rt = &ngx_http_inventory_routes[i];

        if (rt->nsegs == n
            && ngx_http_inventory_segment_is(&seg[0], rt->first)
            && (rt->last == NULL
                || ngx_http_inventory_segment_is(&seg[n - 1], rt->last)))
        {
            *methods |= rt->methods;

            if (rt->methods & method) {
                break;
            }

            if (first == NULL) {
                first = rt;
            }
        }
    }

    if (i == NGX_HTTP_INVENTORY_ROUTE_LAST) {
        if (first == NULL) {
            return NULL;
        }

        rt = first;
    }

    if (rt->params == NGX_HTTP_INVENTORY_ITEM_PARAMS) {
        ids->sku = seg[1];

        if (n > 2) {
            ids->location = seg[2];
        }

    } else if (rt->params == NGX_HTTP_INVENTORY_ID_PARAM) {
        ids->id = seg[1];
    }

    return rt;
}


/* the route's entry; route is below NGX_HTTP_INVENTORY_ROUTE_LAST */

const ngx_http_inventory_route_t *
ngx_http_inventory_route_get(unsigned route)
{
    return &ngx_http_inventory_routes[route];
}


static int
ngx_http_inventory_segment_is(ngx_http_inventory_str_t *seg, const char *word)
{
    return strlen(word) == seg->len && memcmp(word, seg->data, seg->len) == 0;
}


int
ngx_http_inventory_path_check(const ngx_http_inventory_path_t *ids,
    ngx_http_inventory_errors_t *errs)
{
    if (ids->sku.data) {
        ngx_http_inventory_validate_id(errs, "sku", ids->sku);
    }

    if (ids->location.data) {
        ngx_http_inventory_validate_id(errs, "location", ids->location);
    }

    if (errs->n) {
        return NGX_HTTP_INVENTORY_PATH_INVALID;
    }

    /* an id that could not have been issued names no reservation */
    if (ids->id.data
        && !ngx_http_inventory_reservation_id_valid(ids->id.data,
                                                    ids->id.len))
    {
        return NGX_HTTP_INVENTORY_PATH_NO_SUCH_ID;
    }

    return NGX_HTTP_INVENTORY_PATH_OK;
}


/*
 * Finds "name=value" among the '&'-separated arguments, as nginx's
 * ngx_http_arg() does (the name compared without case, the first match
 * wins).  Returns 0 with the raw value, or -1 when absent.
 */

int
ngx_http_inventory_query_arg(const char *args, size_t len, const char *name,
    ngx_http_inventory_str_t *value)
{
    size_t       nlen;
    const char  *p, *end, *v;

    nlen = strlen(name);
    p = args;
    end = args + len;

    while (p < end) {
        v = p;

        while (v < end && *v != '&' && *v != '=') {
            v++;
        }

        if (v < end && *v == '=' && (size_t) (v - p) == nlen
            && strncasecmp(p, name, nlen) == 0)
        {
            value->data = ++v;

            while (v < end && *v != '&') {
                v++;
            }

            value->len = v - value->data;
            return 0;
        }

        while (v < end && *v != '&') {
            v++;
        }

        p = v + 1;
    }

    return -1;
}


/*
 * Percent-decodes len bytes into dst (at most len bytes are written).  A '%'
 * not followed by two hex digits is kept as it is; '+' stays '+'.
 */

size_t
ngx_http_inventory_unescape(char *dst, const char *src, size_t len)
{
    int     hi, lo;
    size_t  i, n;

    n = 0;

    for (i = 0; i < len; i++) {
        if (src[i] == '%' && len - i > 2
            && (hi = ngx_http_inventory_hex(src[i + 1])) >= 0
            && (lo = ngx_http_inventory_hex(src[i + 2])) >= 0)
        {
            dst[n++] = (char) (hi << 4 | lo);
            i += 2;
            continue;
        }

        dst[n++] = src[i];
    }

    return n;
}


static int
ngx_http_inventory_hex(char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }

    c |= 0x20;

    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }

    return -1;
}


/* an optional decimal argument within [min, max]; *value stays if absent */

void
ngx_http_inventory_query_uint(const char *args, size_t len, const char *name,
    uint64_t min, uint64_t max, uint64_t *value,
    ngx_http_inventory_errors_t *errs)
{
    char                      msg[NGX_HTTP_INVENTORY_MESSAGE_LEN];
    int64_t                   v;
    ngx_http_inventory_str_t  arg;

    if (ngx_http_inventory_query_arg(args, len, name, &arg) != 0) {
        return;
    }

    if (ngx_http_inventory_parse_int(arg.data, arg.len, &v) == 0
        && v >= 0 && (uint64_t) v >= min && (uint64_t) v <= max)
    {
        *value = (uint64_t) v;
        return;
    }

    snprintf(msg, sizeof(msg), "must be an integer from %llu to %llu",
             (unsigned long long) min, (unsigned long long) max);
    ngx_http_inventory_error_add(errs, name, strlen(name), msg);
}


/*
 * Parses an If-Match or If-None-Match value: "*" or a list of entity tags.
 * Tags that can never name a version (weak ones when strong comparison is
 * asked for, opaque ones that are not a number) are skipped; a value that is
 * not a list of entity tags is an error (-1).
 */

int
ngx_http_inventory_parse_etags(const char *p, size_t len, int weak_ok,
    uint64_t *versions, size_t *n, int *any)
{
    int          weak, numeric;
    uint64_t     v;
    const char  *last, *start;

    last = p + len;
    *n = 0;
    *any = 0;

    for ( ;; ) {
        while (p < last && (*p == ' ' || *p == '\t' || *p == ',')) {
            p++;
        }

        if (p == last) {
            return 0;
        }

        if (*p == '*') {
            *any = 1;
            p++;
            continue;
        }

        weak = 0;

        if (last - p > 2 && p[0] == 'W' && p[1] == '/') {
            weak = 1;
            p += 2;
        }

        if (*p != '"') {
            return -1;
        }

        start = ++p;
        v = 0;
        numeric = 1;

        /* 19 digits: every version fits, and v cannot overflow */
        while (p < last && *p != '"') {
            if (*p < '0' || *p > '9' || p - start >= 19) {
                numeric = 0;

            } else {
                v = v * 10 + (uint64_t) (*p - '0');
            }

            p++;
        }

        if (p == last) {
            return -1;
        }

        if (numeric && p > start && (weak_ok || !weak)) {
            if (*n == NGX_HTTP_INVENTORY_ETAGS_MAX) {
                return -1;
            }

            versions[(*n)++] = v;
        }

        p++;
    }
}


/* the Allow header of methods (M_ flags), in buf: "GET, HEAD, POST" */

size_t
ngx_http_inventory_methods_allow(unsigned methods, char *buf)
{
    size_t       i, n;
    const char  *name;

    static const struct {
        unsigned     flag;
        const char  *name;
    }  order[] = {
        { NGX_HTTP_INVENTORY_M_GET, "GET" },
        { NGX_HTTP_INVENTORY_M_HEAD, "HEAD" },
        { NGX_HTTP_INVENTORY_M_PUT, "PUT" },
        { NGX_HTTP_INVENTORY_M_POST, "POST" }
    };

    n = 0;

    for (i = 0; i < sizeof(order) / sizeof(order[0]); i++) {
        if (!(methods & order[i].flag)) {
            continue;
        }

        if (n) {
            memcpy(buf + n, ", ", 2);
            n += 2;
        }

        name = order[i].name;
        memcpy(buf + n, name, strlen(name));
        n += strlen(name);
    }

    return n;
}

