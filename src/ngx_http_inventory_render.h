/*
 * Every JSON body the module writes, with yajl_gen into an output buffer:
 * items, aggregates, reservations, events, pages of them, health and
 * problem details.  No other file builds JSON output.
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
    NGX_HTTP_INVENTORY_P_NOT_PRIMARY,
    NGX_HTTP_INVENTORY_P_REPLICA_BEHIND,
    NGX_HTTP_INVENTORY_P_STORE_MISMATCH,
    NGX_HTTP_INVENTORY_P_SNAPSHOT_REQUIRED,
    NGX_HTTP_INVENTORY_P_REPLICATION_TIMEOUT,
    NGX_HTTP_INVENTORY_P_HANDOVER_FAILED,
    NGX_HTTP_INVENTORY_P_LAST
} ngx_http_inventory_problem_e;


typedef struct {
    unsigned                        code;
    const char                     *detail;
    ngx_http_inventory_errors_t    *errors;
    int64_t                         available;
    uint64_t                        version;
    const char                     *state;
    const char                     *primary;   /* its URL, for not-primary */
    const ngx_http_inventory_cmd_t *shorts;    /* lines short of stock */
    const ngx_http_inventory_cmd_t *refused;   /* a batch's changes */
    unsigned                        has_available:1;
    unsigned                        has_version:1;
} ngx_http_inventory_problem_t;


/* an item asked for by a query, and whether it exists */
typedef struct {
    ngx_http_inventory_str_t    sku;
    ngx_http_inventory_str_t    location;
    ngx_http_inventory_item_t   item;
    unsigned                    found;
} ngx_http_inventory_found_t;


/* one location's item of an aggregate */
typedef struct {
    ngx_http_inventory_str_t    location;
    ngx_http_inventory_item_t   item;
} ngx_http_inventory_row_t;


/* a planned handover, done: to whom, and what it holds */
typedef struct {
    const char                 *name;
    size_t                      name_len;
    const char                 *primary;     /* its replication URL */
    size_t                      primary_len;
    uint64_t                    seq;
} ngx_http_inventory_handover_t;


/* what GET /health tells of the store */
typedef struct {
    uint64_t                    map_size;
    uint64_t                    used;
    uint64_t                    last_seq;
    unsigned                    readers;
    unsigned                    max_readers;
    const char                 *role;
    char                        store_id[33];
    uint64_t                    epoch;
    uint64_t                    followers;     /* of this node's stream */
    uint64_t                    sync_replicas; /* a write's answer waits */
    /* a follower's replication; primary is NULL on a primary */
    const char                 *primary;
    size_t                      primary_len;
    uint64_t                    applied_seq;
    uint64_t                    primary_seq;
    uint64_t                    lag_ms;
    unsigned                    connected:1;
    unsigned                    sync:1;
} ngx_http_inventory_health_t;


/* a named number, for an object of counts */
typedef struct {
    const char                 *name;
    uint64_t                    value;
    const char                 *text;          /* if set: instead of value */
} ngx_http_inventory_count_t;


/*
 * A page: an object whose first member is a list, rendered an element at a
 * time as a store query finds them, and whose last member tells where the
 * next page starts.  page_open() then the elements then one page_close_*(),
 * which frees what page_open() took; the buffer's "failed" says whether the
 * body is whole.
 */
typedef struct {
    yajl_gen                    gen;
    size_t                      count;
} ngx_http_inventory_page_t;


unsigned ngx_http_inventory_problem_status(unsigned code);

/* whole bodies; b->failed is set when one could not be written */
void ngx_http_inventory_render_problem_body(ngx_http_inventory_buf_t *b,
    const ngx_http_inventory_problem_t *p);
void ngx_http_inventory_render_item_body(ngx_http_inventory_buf_t *b,
    const ngx_http_inventory_slot_t *slot);
void ngx_http_inventory_render_reservation_body(ngx_http_inventory_buf_t *b,
    const ngx_http_inventory_reservation_t *res);
void ngx_http_inventory_render_event_body(ngx_http_inventory_buf_t *b,
    const ngx_http_inventory_event_t *ev);
void ngx_http_inventory_render_aggregate(ngx_http_inventory_buf_t *b,
    ngx_http_inventory_str_t sku, const ngx_http_inventory_row_t *rows,
    size_t n);
void ngx_http_inventory_render_health(ngx_http_inventory_buf_t *b,
    const ngx_http_inventory_health_t *h);
void ngx_http_inventory_render_handover(ngx_http_inventory_buf_t *b,
    const ngx_http_inventory_handover_t *h);
void ngx_http_inventory_render_query(ngx_http_inventory_buf_t *b,
    const ngx_http_inventory_found_t *found, size_t n);
void ngx_http_inventory_render_counts(ngx_http_inventory_buf_t *b,
    const ngx_http_inventory_count_t *counts, size_t n);

void ngx_http_inventory_page_open(ngx_http_inventory_page_t *pg,
    ngx_http_inventory_buf_t *b, const char *list);
void ngx_http_inventory_page_item(ngx_http_inventory_page_t *pg,
    ngx_http_inventory_str_t sku, ngx_http_inventory_str_t location,
    const ngx_http_inventory_item_t *item);
void ngx_http_inventory_page_event(ngx_http_inventory_page_t *pg,
    const ngx_http_inventory_event_t *ev);
void ngx_http_inventory_page_close_int(ngx_http_inventory_page_t *pg,
    const char *key, int has, uint64_t value);
void ngx_http_inventory_page_close_str(ngx_http_inventory_page_t *pg,
    const char *key, const unsigned char *s, size_t len);

/* a whole body: render(g, data) into b, with a generator of its own */
typedef void (*ngx_http_inventory_render_pt)(yajl_gen g, const void *data);

void ngx_http_inventory_render_body(ngx_http_inventory_buf_t *b,
    ngx_http_inventory_render_pt render, const void *data);

/* parts of bodies, for a yajl_gen of the caller's */
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
void ngx_http_inventory_render_batch(yajl_gen g,
    ngx_http_inventory_cmd_t *cmd);
void ngx_http_inventory_change_problem(const ngx_http_inventory_result_t *res,
    ngx_http_inventory_problem_t *p, char *detail, size_t size);
size_t ngx_http_inventory_render_bound(const ngx_http_inventory_cmd_t *cmd);
void ngx_http_inventory_render_time(yajl_gen g, const char *key,
    uint64_t ms);


#endif /* _NGX_HTTP_INVENTORY_RENDER_H_INCLUDED_ */
