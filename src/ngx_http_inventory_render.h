/*
 * Response bodies: items, aggregates and problem details, written with
 * yajl_gen into an output buffer.
 */

#ifndef _NGX_HTTP_INVENTORY_RENDER_H_INCLUDED_
#define _NGX_HTTP_INVENTORY_RENDER_H_INCLUDED_


#include "ngx_http_inventory_core.h"
#include "ngx_http_inventory_json.h"
#include "ngx_http_inventory_validate.h"


typedef enum {
    NGX_HTTP_INVENTORY_P_INVALID_REQUEST = 0,
    NGX_HTTP_INVENTORY_P_NOT_FOUND,
    NGX_HTTP_INVENTORY_P_METHOD_NOT_ALLOWED,
    NGX_HTTP_INVENTORY_P_UNSUPPORTED_MEDIA_TYPE,
    NGX_HTTP_INVENTORY_P_INSUFFICIENT_STOCK,
    NGX_HTTP_INVENTORY_P_RESERVATION_NOT_ACTIVE,
    NGX_HTTP_INVENTORY_P_VERSION_MISMATCH,
    NGX_HTTP_INVENTORY_P_IDEMPOTENCY_KEY_REUSED,
    NGX_HTTP_INVENTORY_P_IDEMPOTENCY_KEY_IN_FLIGHT,
    NGX_HTTP_INVENTORY_P_STORAGE_FULL,
    NGX_HTTP_INVENTORY_P_UNAVAILABLE,
    NGX_HTTP_INVENTORY_P_LAST
} ngx_http_inventory_problem_e;


typedef struct {
    unsigned                        code;
    const char                     *detail;
    ngx_http_inventory_errors_t    *errors;
    int64_t                         available;
    uint64_t                        version;
    const char                     *state;
    const ngx_http_inventory_cmd_t *shorts;    /* lines short of stock */
    unsigned                        has_available:1;
    unsigned                        has_version:1;
} ngx_http_inventory_problem_t;


unsigned ngx_http_inventory_problem_status(unsigned code);
void ngx_http_inventory_render_problem(yajl_gen g,
    const ngx_http_inventory_problem_t *p);
void ngx_http_inventory_render_item(yajl_gen g,
    ngx_http_inventory_str_t sku, ngx_http_inventory_str_t location,
    const ngx_http_inventory_item_t *item);


void ngx_http_inventory_render_reservation(yajl_gen g,
    const ngx_http_inventory_reservation_t *res);
void ngx_http_inventory_render_event(yajl_gen g,
    const ngx_http_inventory_event_t *ev);
void ngx_http_inventory_render_outcome(ngx_http_inventory_cmd_t *cmd);
void ngx_http_inventory_render_time(yajl_gen g, const char *key,
    uint64_t ms);


#endif /* _NGX_HTTP_INVENTORY_RENDER_H_INCLUDED_ */
