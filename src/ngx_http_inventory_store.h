/*
 * The LMDB store: one environment per process, the named databases, the
 * per-process reusable read transaction and the write path that applies a
 * batch of commands in one write transaction.
 */

#ifndef _NGX_HTTP_INVENTORY_STORE_H_INCLUDED_
#define _NGX_HTTP_INVENTORY_STORE_H_INCLUDED_


#include <lmdb.h>
#include <pthread.h>

#include "ngx_http_inventory_core.h"
#include "ngx_http_inventory_codec.h"


#define NGX_HTTP_INVENTORY_SCHEMA_VERSION  1
#define NGX_HTTP_INVENTORY_MAX_READERS     256

/* store_open() flags */
#define NGX_HTTP_INVENTORY_STORE_CREATE    0x01
#define NGX_HTTP_INVENTORY_STORE_RDONLY    0x02


typedef struct {
    MDB_env                    *env;
    MDB_dbi                     meta;
    MDB_dbi                     log;           /* seq -> event */
    MDB_dbi                     items;         /* sku, location -> item */
    MDB_dbi                     item_events;   /* sku, location, ver -> seq */
    MDB_dbi                     reservations;  /* id -> reservation */
    MDB_dbi                     res_expiry;    /* expires_at, id -> "" */
    MDB_dbi                     idempotency;   /* key -> response */
    MDB_dbi                     idem_expiry;   /* expires_at, key -> "" */
    MDB_dbi                     low_stock;     /* location, sku -> "" */
    MDB_txn                    *rtxn;
    /* held shared by a transaction, exclusively to adopt a grown map */
    pthread_rwlock_t            remap;
    uint64_t                    idem_ttl;      /* ms */
    unsigned char               res_buf[NGX_HTTP_INVENTORY_RES_RECORD_MAX];
    unsigned                    reading:1;
} ngx_http_inventory_store_t;


typedef struct {
    uint64_t                    map_size;
    uint64_t                    used;
    uint64_t                    last_seq;
    uint64_t                    reservations_active;
    unsigned                    readers;
    unsigned                    max_readers;
} ngx_http_inventory_store_stat_t;


typedef int (*ngx_http_inventory_event_pt)(void *ctx,
    const ngx_http_inventory_event_t *ev);

typedef int (*ngx_http_inventory_item_pt)(void *ctx,
    ngx_http_inventory_str_t sku, ngx_http_inventory_str_t location,
    const ngx_http_inventory_item_t *item);


int ngx_http_inventory_store_open(ngx_http_inventory_store_t *st,
    const char *path, size_t map_size, int sync, unsigned flags);
void ngx_http_inventory_store_close(ngx_http_inventory_store_t *st);
const char *ngx_http_inventory_store_strerror(int rc);

int ngx_http_inventory_store_read_begin(ngx_http_inventory_store_t *st);
void ngx_http_inventory_store_read_end(ngx_http_inventory_store_t *st);
int ngx_http_inventory_store_get_item(ngx_http_inventory_store_t *st,
    ngx_http_inventory_str_t sku, ngx_http_inventory_str_t location,
    ngx_http_inventory_item_t *item);
int ngx_http_inventory_store_sku_items(ngx_http_inventory_store_t *st,
    ngx_http_inventory_str_t sku, ngx_http_inventory_item_pt handler,
    void *ctx);
int ngx_http_inventory_store_stat(ngx_http_inventory_store_t *st,
    ngx_http_inventory_store_stat_t *stat);
unsigned ngx_http_inventory_store_readers(ngx_http_inventory_store_t *st);

int ngx_http_inventory_store_get_reservation(ngx_http_inventory_store_t *st,
    const char *id, ngx_http_inventory_reservation_t *res);
int ngx_http_inventory_store_item_events(ngx_http_inventory_store_t *st,
    ngx_http_inventory_str_t sku, ngx_http_inventory_str_t location,
    uint64_t after, size_t limit, ngx_http_inventory_event_pt handler,
    void *ctx, int *more);
int ngx_http_inventory_store_log(ngx_http_inventory_store_t *st,
    uint64_t after, size_t limit, ngx_http_inventory_event_pt handler,
    void *ctx);
int ngx_http_inventory_store_last_seq(ngx_http_inventory_store_t *st,
    uint64_t *seq);
int ngx_http_inventory_store_item_as_of(ngx_http_inventory_store_t *st,
    ngx_http_inventory_str_t sku, ngx_http_inventory_str_t location,
    uint64_t at, ngx_http_inventory_item_t *item);
int ngx_http_inventory_store_low_stock(ngx_http_inventory_store_t *st,
    ngx_http_inventory_str_t location, const unsigned char *from,
    size_t from_len, size_t limit, ngx_http_inventory_item_pt handler,
    void *ctx, int *more);
int ngx_http_inventory_store_due(ngx_http_inventory_store_t *st,
    uint64_t now, char (*ids)[NGX_HTTP_INVENTORY_RES_ID_LEN], size_t max,
    size_t *n);

int ngx_http_inventory_store_execute(ngx_http_inventory_store_t *st,
    ngx_http_inventory_cmd_t **cmds, size_t n, uint64_t now);
int ngx_http_inventory_store_begin(ngx_http_inventory_store_t *st,
    MDB_txn **txn);
void ngx_http_inventory_store_abort(ngx_http_inventory_store_t *st,
    MDB_txn *txn);
int ngx_http_inventory_store_apply(ngx_http_inventory_store_t *st,
    MDB_txn *txn, ngx_http_inventory_cmd_t **cmds, size_t n, uint64_t now);
int ngx_http_inventory_store_settle(ngx_http_inventory_store_t *st,
    ngx_http_inventory_cmd_t **cmds, size_t n, uint64_t now, int rc);



#endif /* _NGX_HTTP_INVENTORY_STORE_H_INCLUDED_ */
