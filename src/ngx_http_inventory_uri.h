/*
 * What the request line and the conditional headers say, parsed without
 * nginx: the route table, the identifiers in the path, query arguments and
 * entity-tag lists.  Kept apart from nginx so that it can be fuzzed alone.
 */

#ifndef _NGX_HTTP_INVENTORY_URI_H_INCLUDED_
#define _NGX_HTTP_INVENTORY_URI_H_INCLUDED_


#include "ngx_http_inventory_core.h"
#include "ngx_http_inventory_validate.h"


typedef enum {
    NGX_HTTP_INVENTORY_ROUTE_UNKNOWN = 0,
    NGX_HTTP_INVENTORY_ROUTE_ITEM,
    NGX_HTTP_INVENTORY_ROUTE_ADJUST,
    NGX_HTTP_INVENTORY_ROUTE_AGGREGATE,
    NGX_HTTP_INVENTORY_ROUTE_METRICS,
    NGX_HTTP_INVENTORY_ROUTE_HEALTH,
    NGX_HTTP_INVENTORY_ROUTE_RESERVE,
    NGX_HTTP_INVENTORY_ROUTE_ITEM_EVENTS,
    NGX_HTTP_INVENTORY_ROUTE_CART,
    NGX_HTTP_INVENTORY_ROUTE_RESERVATION,
    NGX_HTTP_INVENTORY_ROUTE_COMMIT,
    NGX_HTTP_INVENTORY_ROUTE_RELEASE,
    NGX_HTTP_INVENTORY_ROUTE_TRANSFER,
    NGX_HTTP_INVENTORY_ROUTE_EVENTS,
    NGX_HTTP_INVENTORY_ROUTE_LOW_STOCK,
    NGX_HTTP_INVENTORY_ROUTE_REPLICATION,
    NGX_HTTP_INVENTORY_ROUTE_MOVE,
    NGX_HTTP_INVENTORY_ROUTE_CHANGES,
    NGX_HTTP_INVENTORY_ROUTE_QUERY,
    NGX_HTTP_INVENTORY_ROUTE_BATCH,
    NGX_HTTP_INVENTORY_ROUTE_LAST
} ngx_http_inventory_route_e;


/* the methods a route serves */
#define NGX_HTTP_INVENTORY_M_GET    0x01
#define NGX_HTTP_INVENTORY_M_HEAD   0x02
#define NGX_HTTP_INVENTORY_M_PUT    0x04
#define NGX_HTTP_INVENTORY_M_POST   0x08
#define NGX_HTTP_INVENTORY_M_READ   (NGX_HTTP_INVENTORY_M_GET              \
                                     |NGX_HTTP_INVENTORY_M_HEAD)


/* what path segments 1 and 2 hold */
#define NGX_HTTP_INVENTORY_NO_PARAMS    0
#define NGX_HTTP_INVENTORY_ITEM_PARAMS  1     /* {sku}[/{location}] */
#define NGX_HTTP_INVENTORY_ID_PARAM     2     /* {id} */


/*
 * A route: its first path segment, its number of segments, its last
 * segment when that is a fixed word, and what segments 1 and 2 hold; the
 * methods it serves, its name in the metrics and the command its writes
 * become.  Routes that no path names (unknown, metrics) have no segments.
 */
typedef struct {
    const char                 *first;
    size_t                      nsegs;
    const char                 *last;
    unsigned                    params;
    unsigned                    route;
    unsigned                    methods;
    const char                 *allow;        /* the Allow header */
    const char                 *name;
    unsigned                    cmd;          /* 0: the route only reads */
} ngx_http_inventory_route_t;


/* the identifiers a path names; data is NULL when it names none */
typedef struct {
    ngx_http_inventory_str_t    sku;
    ngx_http_inventory_str_t    location;
    ngx_http_inventory_str_t    id;           /* a reservation's */
} ngx_http_inventory_path_t;


#define NGX_HTTP_INVENTORY_PATH_OK          0
#define NGX_HTTP_INVENTORY_PATH_INVALID     1  /* 400, errs says why */
#define NGX_HTTP_INVENTORY_PATH_NO_SUCH_ID  2  /* 404: never issued */


const ngx_http_inventory_route_t *ngx_http_inventory_route_find(
    const char *path, size_t len, unsigned method,
    ngx_http_inventory_path_t *ids, unsigned *methods);
/* "GET, HEAD, PUT, POST" at most */
#define NGX_HTTP_INVENTORY_ALLOW_MAX  24
size_t ngx_http_inventory_methods_allow(unsigned methods, char *buf);
const ngx_http_inventory_route_t *ngx_http_inventory_route_get(
    unsigned route);
int ngx_http_inventory_path_check(const ngx_http_inventory_path_t *ids,
    ngx_http_inventory_errors_t *errs);

int ngx_http_inventory_query_arg(const char *args, size_t len,
    const char *name, ngx_http_inventory_str_t *value);
size_t ngx_http_inventory_unescape(char *dst, const char *src, size_t len);
void ngx_http_inventory_query_uint(const char *args, size_t len,
    const char *name, uint64_t min, uint64_t max, uint64_t *value,
    ngx_http_inventory_errors_t *errs);

int ngx_http_inventory_parse_etags(const char *p, size_t len, int weak_ok,
    uint64_t *versions, size_t *n, int *any);


#endif /* _NGX_HTTP_INVENTORY_URI_H_INCLUDED_ */
