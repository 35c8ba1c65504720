/* The route table, path identifiers, query arguments and entity tags. */

#include <string.h>

#include "tap.h"
#include "helpers.h"
#include "ngx_http_inventory_uri.h"


static unsigned
route_of(const char *path, ngx_http_inventory_path_t *ids)
{
    unsigned                           methods;
    const ngx_http_inventory_route_t  *rt;

    rt = ngx_http_inventory_route_find(path, strlen(path),
                                       NGX_HTTP_INVENTORY_M_GET, ids,
                                       &methods);

    return rt ? rt->route : NGX_HTTP_INVENTORY_ROUTE_UNKNOWN;
}


static int
str_is(ngx_http_inventory_str_t s, const char *want)
{
    if (want == NULL) {
        return s.data == NULL;
    }

    return s.data && s.len == strlen(want) && memcmp(s.data, want, s.len) == 0;
}


/* the table is indexed by route, and each route has a name of its own */

static void
test_route_table(void)
{
    unsigned                           i, j, indexed, named, commands;
    const ngx_http_inventory_route_t  *rt;

    indexed = 1;
    named = 1;
    commands = 1;

    for (i = 0; i < NGX_HTTP_INVENTORY_ROUTE_LAST; i++) {
        rt = ngx_http_inventory_route_get(i);

        if (rt->route != i) {
            indexed = 0;
        }

        for (j = 0; j < i; j++) {
            if (rt->name == NULL
                || strcmp(rt->name, ngx_http_inventory_route_get(j)->name)
                   == 0)
            {
                named = 0;
            }
        }

        /*
         * A route that writes has a command, one that only reads none (the
         * query of many items reads, with its list in a POST's body; the
         * replication location's POST is an operator's handover).
         */
        if ((rt->cmd != 0)
            != ((rt->methods & (NGX_HTTP_INVENTORY_M_PUT
                                |NGX_HTTP_INVENTORY_M_POST)) != 0
                && rt->route != NGX_HTTP_INVENTORY_ROUTE_QUERY
                && rt->route != NGX_HTTP_INVENTORY_ROUTE_REPLICATION))
        {
            commands = 0;
        }
    }

    ok(indexed, "route table: entry i serves route i");
    ok(named, "route table: every route has a name of its own");
    ok(commands, "route table: the routes that write have a command");
    is_int(ngx_http_inventory_route_get(NGX_HTTP_INVENTORY_ROUTE_ITEM)->cmd,
           NGX_HTTP_INVENTORY_CMD_COUNT, "route table: PUT item counts");
    is_int(ngx_http_inventory_route_get(NGX_HTTP_INVENTORY_ROUTE_CART)->cmd,
           NGX_HTTP_INVENTORY_CMD_RESERVE, "route table: a cart reserves");
    is_int(ngx_http_inventory_route_get(NGX_HTTP_INVENTORY_ROUTE_EVENTS)->cmd,
           0, "route table: the feed only reads");
}


static void
test_routes(void)
{
    char                               allow[NGX_HTTP_INVENTORY_ALLOW_MAX];
    size_t                             len;
    unsigned                           methods;
    ngx_http_inventory_path_t          ids;
    const ngx_http_inventory_route_t  *rt;

    is_int(route_of("health", &ids), NGX_HTTP_INVENTORY_ROUTE_HEALTH,
           "route: health");
    is_int(route_of("inventory/A-1", &ids), NGX_HTTP_INVENTORY_ROUTE_AGGREGATE,
           "route: aggregate");
    ok(str_is(ids.sku, "A-1") && str_is(ids.location, NULL),
       "route: aggregate names the sku only");
    is_int(route_of("inventory/A-1/s1", &ids), NGX_HTTP_INVENTORY_ROUTE_ITEM,
           "route: item");
    ok(str_is(ids.sku, "A-1") && str_is(ids.location, "s1")
       && str_is(ids.id, NULL), "route: item names sku and location");
    is_int(route_of("inventory/A/s/adjustments", &ids),
           NGX_HTTP_INVENTORY_ROUTE_ADJUST, "route: adjustments");
    is_int(route_of("inventory/A/s/reservations", &ids),
           NGX_HTTP_INVENTORY_ROUTE_RESERVE, "route: reservations");
    is_int(route_of("inventory/A/s/events", &ids),
           NGX_HTTP_INVENTORY_ROUTE_ITEM_EVENTS, "route: item events");
    is_int(route_of("reservations", &ids), NGX_HTTP_INVENTORY_ROUTE_CART,
           "route: cart");
    is_int(route_of("reservations/r_1", &ids),
           NGX_HTTP_INVENTORY_ROUTE_RESERVATION, "route: reservation");
    ok(str_is(ids.id, "r_1") && str_is(ids.sku, NULL), "route: id named");
    is_int(route_of("reservations/r_1/commit", &ids),
           NGX_HTTP_INVENTORY_ROUTE_COMMIT, "route: commit");
    is_int(route_of("reservations/r_1/release", &ids),
           NGX_HTTP_INVENTORY_ROUTE_RELEASE, "route: release");
    is_int(route_of("events", &ids), NGX_HTTP_INVENTORY_ROUTE_EVENTS,
           "route: events");
    is_int(route_of("low-stock", &ids), NGX_HTTP_INVENTORY_ROUTE_LOW_STOCK,
           "route: low-stock");
    is_int(route_of("transfers", &ids), NGX_HTTP_INVENTORY_ROUTE_TRANSFER,
           "route: transfers");

    is_int(route_of("", &ids), 0, "route: empty path");
    is_int(route_of("health/", &ids), 0, "route: trailing slash");
    is_int(route_of("inventory//s", &ids), 0, "route: empty segment");
    is_int(route_of("inventory/A/s/x", &ids), 0, "route: unknown last word");
    is_int(route_of("inventory/A/s/events/x", &ids), 0, "route: 5 segments");
    is_int(route_of("a/b/c/d/e/f/g", &ids), 0, "route: too many segments");
    is_int(route_of("Health", &ids), 0, "route: words are case-sensitive");
    is_int(route_of("reservations/r/x", &ids), 0, "route: unknown action");
    is_int(route_of("healthz", &ids), 0, "route: a longer word");
    is_int(route_of("healt", &ids), 0, "route: a shorter word");

    rt = ngx_http_inventory_route_find("inventory/A/s", 13,
                                       NGX_HTTP_INVENTORY_M_GET, &ids,
                                       &methods);
    ok(rt && (rt->methods & NGX_HTTP_INVENTORY_M_PUT)
       && !(rt->methods & NGX_HTTP_INVENTORY_M_POST)
       && strcmp(rt->allow, "GET, HEAD, PUT") == 0,
       "route: the item's methods and Allow");

    /* only the given length is read */
    is_int(ngx_http_inventory_route_find("healthXYZ", 6,
                                         NGX_HTTP_INVENTORY_M_GET, &ids,
                                         &methods)
           ? 1 : 0, 1, "route: length bounds the path");

    /* one path, two routes: the one serving the method */
    rt = ngx_http_inventory_route_find("inventory/query", 15,
                                       NGX_HTTP_INVENTORY_M_POST, &ids,
                                       &methods);
    is_int(rt ? rt->route : 0, NGX_HTTP_INVENTORY_ROUTE_QUERY,
           "route: POST inventory/query is the query");
    rt = ngx_http_inventory_route_find("inventory/query", 15,
                                       NGX_HTTP_INVENTORY_M_GET, &ids,
                                       &methods);
    is_int(rt ? rt->route : 0, NGX_HTTP_INVENTORY_ROUTE_AGGREGATE,
           "route: GET inventory/query is the SKU \"query\"");
    ok(str_is(ids.sku, "query"), "route: ... named by the path");
    rt = ngx_http_inventory_route_find("inventory/query", 15,
                                       NGX_HTTP_INVENTORY_M_PUT, &ids,
                                       &methods);
    is_int(rt ? rt->route : 0, NGX_HTTP_INVENTORY_ROUTE_AGGREGATE,
           "route: PUT inventory/query: the first match");
    len = ngx_http_inventory_methods_allow(methods, allow);
    ok(len == 15 && memcmp(allow, "GET, HEAD, POST", 15) == 0,
       "route: ... and the 405 allows what both routes serve");
    is_int(route_of("inventory", &ids), NGX_HTTP_INVENTORY_ROUTE_CHANGES,
           "route: inventory alone lists the changed items");
}


static void
test_path_check(void)
{
    ngx_http_inventory_path_t    ids;
    ngx_http_inventory_errors_t  errs;

    errs.n = 0;
    (void) route_of("inventory/A-1/s1", &ids);
    is_int(ngx_http_inventory_path_check(&ids, &errs),
           NGX_HTTP_INVENTORY_PATH_OK, "path: valid identifiers");

    errs.n = 0;
    (void) route_of("inventory/A%20B/s\xc3\xa4", &ids);
    is_int(ngx_http_inventory_path_check(&ids, &errs),
           NGX_HTTP_INVENTORY_PATH_INVALID, "path: invalid sku and location");
    is_int(errs.n, 2, "path: one error per identifier");
    ok(strcmp(errs.e[0].field, "sku") == 0
       && strcmp(errs.e[1].field, "location") == 0, "path: fields named");

    errs.n = 0;
    (void) route_of("reservations/r_0123456789ABCDEFabcdef", &ids);
    is_int(ngx_http_inventory_path_check(&ids, &errs),
           NGX_HTTP_INVENTORY_PATH_OK, "path: an id that could be issued");

    errs.n = 0;
    (void) route_of("reservations/r_0123456789ABCDEFabcde-", &ids);
    is_int(ngx_http_inventory_path_check(&ids, &errs),
           NGX_HTTP_INVENTORY_PATH_NO_SUCH_ID, "path: id with a dash");

    errs.n = 0;
    (void) route_of("reservations/x_0123456789ABCDEFabcdef", &ids);
    is_int(ngx_http_inventory_path_check(&ids, &errs),
           NGX_HTTP_INVENTORY_PATH_NO_SUCH_ID, "path: id without r_");

    errs.n = 0;
    (void) route_of("reservations/r_1", &ids);
    is_int(ngx_http_inventory_path_check(&ids, &errs),
           NGX_HTTP_INVENTORY_PATH_NO_SUCH_ID, "path: short id");
}


static int
arg_is(const char *args, const char *name, const char *want)
{
    ngx_http_inventory_str_t  v;

    if (ngx_http_inventory_query_arg(args, strlen(args), name, &v) != 0) {
        return want == NULL;
    }

    return str_is(v, want);
}


static void
test_query(void)
{
    char                         buf[64];
    size_t                       n;
    uint64_t                     v;
    ngx_http_inventory_errors_t  errs;

    ok(arg_is("limit=5", "limit", "5"), "arg: alone");
    ok(arg_is("after=1&limit=5&wait=2", "limit", "5"), "arg: in the middle");
    ok(arg_is("LIMIT=5", "limit", "5"), "arg: name without case");
    ok(arg_is("limit=5&limit=6", "limit", "5"), "arg: the first wins");
    ok(arg_is("xlimit=5", "limit", NULL), "arg: a longer name");
    ok(arg_is("limitx=5", "limit", NULL), "arg: a name it prefixes");
    ok(arg_is("limit&limit=7", "limit", "7"), "arg: a name without value");
    ok(arg_is("a=limit=5", "limit", NULL), "arg: inside a value");
    ok(arg_is("limit=", "limit", ""), "arg: empty value");
    ok(arg_is("", "limit", NULL), "arg: no arguments");
    ok(arg_is("&&limit=3&", "limit", "3"), "arg: stray separators");

    n = ngx_http_inventory_unescape(buf, "a%20b%2Fc", 9);
    ok(n == 5 && memcmp(buf, "a b/c", 5) == 0, "unescape: %%XX");
    n = ngx_http_inventory_unescape(buf, "%zz%4", 5);
    ok(n == 5 && memcmp(buf, "%zz%4", 5) == 0, "unescape: invalid kept");
    n = ngx_http_inventory_unescape(buf, "a+b%00", 6);
    ok(n == 4 && memcmp(buf, "a+b\0", 4) == 0, "unescape: + and NUL");

    errs.n = 0;
    v = 50;
    ngx_http_inventory_query_uint("x=1", 3, "limit", 1, 100, &v, &errs);
    ok(v == 50 && errs.n == 0, "uint: absent keeps the default");
    ngx_http_inventory_query_uint("limit=100", 9, "limit", 1, 100, &v, &errs);
    ok(v == 100 && errs.n == 0, "uint: the maximum");
    ngx_http_inventory_query_uint("limit=0", 7, "limit", 1, 100, &v, &errs);
    ok(v == 100 && errs.n == 1, "uint: below the minimum");
    ok(strcmp(errs.e[0].message, "must be an integer from 1 to 100") == 0,
       "uint: the message names the range");
    ngx_http_inventory_query_uint("limit=-1", 8, "limit", 0, 100, &v, &errs);
    ngx_http_inventory_query_uint("limit=1e2", 9, "limit", 0, 100, &v, &errs);
    ngx_http_inventory_query_uint("limit=99999999999999999999", 26, "limit",
                                  0, 100, &v, &errs);
    ngx_http_inventory_query_uint("limit=", 6, "limit", 0, 100, &v, &errs);
    ok(v == 100 && errs.n == 5, "uint: negative, exponent, overflow, empty");
}


static void
test_etags(void)
{
    int       any;
    size_t    n;
    uint64_t  v[NGX_HTTP_INVENTORY_ETAGS_MAX];
    char      many[200];
    size_t    i;

#define ETAGS(s, weak)                                                       \
    ngx_http_inventory_parse_etags(s, strlen(s), weak, v, &n, &any)

    ok(ETAGS("\"42\"", 0) == 0 && n == 1 && v[0] == 42 && !any, "etag: one");
    ok(ETAGS("\"1\", \"2\",\"3\"", 0) == 0 && n == 3 && v[2] == 3,
       "etag: a list");
    ok(ETAGS("*", 0) == 0 && n == 0 && any, "etag: *");
    ok(ETAGS("W/\"5\"", 0) == 0 && n == 0, "etag: weak skipped when strong");
    ok(ETAGS("W/\"5\"", 1) == 0 && n == 1 && v[0] == 5, "etag: weak allowed");
    ok(ETAGS("\"abc\"", 0) == 0 && n == 0, "etag: opaque skipped");
    ok(ETAGS("\"\"", 0) == 0 && n == 0, "etag: empty skipped");
    ok(ETAGS("\"99999999999999999999\"", 0) == 0 && n == 0,
       "etag: 20 digits cannot name a version");
    ok(ETAGS("42", 0) == -1, "etag: unquoted");
    ok(ETAGS("\"42", 0) == -1, "etag: unterminated");
    ok(ETAGS("W/", 0) == -1, "etag: W/ alone");
    ok(ETAGS("", 0) == 0 && n == 0 && !any, "etag: empty value");

    for (i = 0; i < 17; i++) {
        memcpy(many + i * 4, "\"1\",", 4);
    }

    ok(ngx_http_inventory_parse_etags(many, 16 * 4, 0, v, &n, &any) == 0
       && n == 16, "etag: 16 tags");
    ok(ngx_http_inventory_parse_etags(many, 17 * 4, 0, v, &n, &any) == -1,
       "etag: 17 tags are too many");

#undef ETAGS
}


void
test_uri(void)
{
    test_route_table();
    test_routes();
    test_path_check();
    test_query();
    test_etags();
}
