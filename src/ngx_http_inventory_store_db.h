/*
 * The store's private header: the environment, its databases and what the
 * store's files share.  Included only by the store's files, the admin
 * tool's checker (verify) and the store's unit tests.  The functions below
 * return LMDB's codes; ngx_http_inventory_store_rc() turns them into the
 * store's at the public boundary.
 */

#ifndef _NGX_HTTP_INVENTORY_STORE_DB_H_INCLUDED_
#define _NGX_HTTP_INVENTORY_STORE_DB_H_INCLUDED_


#include <lmdb.h>
#include <pthread.h>

#include "ngx_http_inventory_store.h"
#include "ngx_http_inventory_codec.h"


/*
 * 2: items with the quantity states, the references and changes indexes;
 * 3: the index of ended reservations
 */
#define NGX_HTTP_INVENTORY_SCHEMA_VERSION  3
#define NGX_HTTP_INVENTORY_MAX_READERS     256

/* the databases, in the order of ngx_http_inventory_db_names[] */
#define NGX_HTTP_INVENTORY_DBS             13
/* transactions the replication log keeps, the same on every copy */
#define NGX_HTTP_INVENTORY_REPL_KEEP       4096

/* results of one command besides LMDB's codes */
#define NGX_HTTP_INVENTORY_EXEC_DONE       0
#define NGX_HTTP_INVENTORY_EXEC_REJECT    -1
#define NGX_HTTP_INVENTORY_EXEC_ANSWERED  -2


struct ngx_http_inventory_store_s {
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
    MDB_dbi                     references;    /* reference, seq -> "" */
    MDB_dbi                     changes;       /* item's seq -> its key */
    MDB_dbi                     res_ended;     /* ended_at, id -> "" */
    MDB_dbi                     replication;   /* tx -> its changes */
    MDB_dbi                     dbi[NGX_HTTP_INVENTORY_DBS];  /* by name */
    /* the changes of the write transaction being run (store_repl.c) */
    unsigned char              *rec;
    size_t                      rec_len;
    size_t                      rec_cap;
    size_t                      rec_mark;      /* where the last change is */
    uint64_t                    rec_seq;       /* the last seq before it */
    uint64_t                    rec_events;    /* the log puts in it */
    MDB_txn                    *rtxn;
    /* a batch's changes run one by one as commands of their own */
    ngx_http_inventory_cmd_t   *change;
    ngx_http_inventory_result_t  *results;
    /* held shared by a transaction, exclusively to adopt a grown map */
    pthread_rwlock_t            remap;
    uint64_t                    idem_ttl;      /* ms */
    unsigned char               res_buf[NGX_HTTP_INVENTORY_RES_RECORD_MAX];
    /*
     * Whole words, not bit-fields: the event loop sets "reading" while a
     * pool thread sets "recording", and bits of one word written by two
     * threads lose each other's writes.
     */
    unsigned                    reading;
    unsigned                    recording;
};


/* where the open record stood: a batch undone goes back to it */
typedef struct {
    size_t                      len;
    size_t                      mark;
    uint64_t                    events;
} ngx_http_inventory_rec_mark_t;


/* the last seq and its time: the next event follows both */
typedef struct {
    uint64_t                    seq;
    uint64_t                    at;
} ngx_http_inventory_clock_t;


/* ngx_http_inventory_store.c */
int ngx_http_inventory_store_rc(int rc);
void ngx_http_inventory_store_remap(ngx_http_inventory_store_t *st);
int ngx_http_inventory_store_log_event(const MDB_val *key,
    const MDB_val *val, ngx_http_inventory_event_t *ev);
int ngx_http_inventory_store_clock(ngx_http_inventory_store_t *st,
    MDB_txn *txn, ngx_http_inventory_clock_t *clock);

/* ngx_http_inventory_store_write.c: what rebuild shares */
int ngx_http_inventory_store_begin(ngx_http_inventory_store_t *st,
    MDB_txn **txn);
void ngx_http_inventory_store_abort(ngx_http_inventory_store_t *st,
    MDB_txn *txn);
int ngx_http_inventory_store_load(ngx_http_inventory_store_t *st,
    MDB_txn *txn, ngx_http_inventory_slot_t *slot);
int ngx_http_inventory_store_put_item(ngx_http_inventory_store_t *st,
    MDB_txn *txn, ngx_http_inventory_slot_t *slot);
int ngx_http_inventory_store_put_index(ngx_http_inventory_store_t *st,
    MDB_txn *txn, ngx_http_inventory_slot_t *slot, uint64_t seq,
    uint64_t version);
int ngx_http_inventory_store_put_reference(
    ngx_http_inventory_store_t *st, MDB_txn *txn,
    const ngx_http_inventory_event_t *ev);

/* ngx_http_inventory_store_record.c: a part of the record undone */
void ngx_http_inventory_store_rec_save(ngx_http_inventory_store_t *st,
    ngx_http_inventory_rec_mark_t *m);
void ngx_http_inventory_store_rec_restore(ngx_http_inventory_store_t *st,
    const ngx_http_inventory_rec_mark_t *m);

/* ngx_http_inventory_store_upgrade.c */
int ngx_http_inventory_store_upgrade(ngx_http_inventory_store_t *st,
    MDB_txn *txn, uint64_t from);

/* ngx_http_inventory_store_query.c */
int ngx_http_inventory_store_item(ngx_http_inventory_store_t *st,
    MDB_txn *txn, ngx_http_inventory_str_t sku,
    ngx_http_inventory_str_t location, ngx_http_inventory_item_t *item);
int ngx_http_inventory_store_item_decode(ngx_http_inventory_store_t *st,
    MDB_txn *txn, const MDB_val *key, const MDB_val *val,
    ngx_http_inventory_item_t *item);
int ngx_http_inventory_store_reservation(ngx_http_inventory_store_t *st,
    MDB_txn *txn, const char *id, ngx_http_inventory_reservation_t *res);

/* ngx_http_inventory_store_record.c: the replication log's records */
#define NGX_HTTP_INVENTORY_REC_VERSION  1
#define NGX_HTTP_INVENTORY_REC_HEADER   17
#define NGX_HTTP_INVENTORY_CHANGE_HEADER  10

#define NGX_HTTP_INVENTORY_OP_PUT  1
#define NGX_HTTP_INVENTORY_OP_DEL  2

extern const char  *ngx_http_inventory_db_names[NGX_HTTP_INVENTORY_DBS];
int ngx_http_inventory_store_put(ngx_http_inventory_store_t *st,
    MDB_txn *txn, MDB_dbi dbi, MDB_val *key, MDB_val *val, unsigned flags);
int ngx_http_inventory_store_del(ngx_http_inventory_store_t *st,
    MDB_txn *txn, MDB_dbi dbi, MDB_val *key);
int ngx_http_inventory_store_recorded(ngx_http_inventory_store_t *st,
    MDB_dbi dbi, const MDB_val *key, const MDB_val *val);
void ngx_http_inventory_store_rec_open(ngx_http_inventory_store_t *st,
    uint64_t seq);
int ngx_http_inventory_store_rec_close(ngx_http_inventory_store_t *st,
    MDB_txn *txn, uint64_t seq, uint64_t at);
void ngx_http_inventory_store_rec_drop(ngx_http_inventory_store_t *st);
int ngx_http_inventory_store_rec_end(ngx_http_inventory_store_t *st,
    MDB_txn *txn, int rc, uint64_t seq, uint64_t at);
int ngx_http_inventory_store_last_tx(ngx_http_inventory_store_t *st,
    MDB_txn *txn, uint64_t *tx);
int ngx_http_inventory_store_last_key(MDB_txn *txn, MDB_dbi dbi,
    uint64_t *last);
int ngx_http_inventory_store_keep(ngx_http_inventory_store_t *st,
    MDB_txn *txn, uint64_t tx, const MDB_val *rec);
int ngx_http_inventory_store_header(const unsigned char *p, size_t len,
    uint64_t *seq, uint64_t *at);

/* ngx_http_inventory_store_epoch.c */
int ngx_http_inventory_store_epoch_continues(ngx_http_inventory_store_t *st,
    MDB_txn *txn, uint64_t epoch, uint64_t tx);
int ngx_http_inventory_store_epoch_older(ngx_http_inventory_store_t *st,
    MDB_txn *txn, uint64_t epoch, int *older);

/* ngx_http_inventory_store_idem.c */
int ngx_http_inventory_store_idem_check(ngx_http_inventory_store_t *st,
    MDB_txn *txn, ngx_http_inventory_cmd_t *cmd);
int ngx_http_inventory_store_idem_put(ngx_http_inventory_store_t *st,
    MDB_txn *txn, ngx_http_inventory_cmd_t *cmd);
int ngx_http_inventory_store_purge(ngx_http_inventory_store_t *st,
    MDB_txn *txn, uint64_t now, size_t max, size_t *purged);

/* ngx_http_inventory_store_retention.c */
typedef int (*ngx_http_inventory_purgeable_pt)(ngx_http_inventory_store_t *st,
    MDB_txn *txn, const MDB_val *key, uint64_t at);

int ngx_http_inventory_store_purge_index(ngx_http_inventory_store_t *st,
    MDB_txn *txn, MDB_dbi index, MDB_dbi records, uint64_t before,
    ngx_http_inventory_purgeable_pt check, size_t max, size_t *purged);
int ngx_http_inventory_store_ended(ngx_http_inventory_store_t *st,
    MDB_txn *txn, const ngx_http_inventory_reservation_t *res);
int ngx_http_inventory_store_purge_ended(ngx_http_inventory_store_t *st,
    MDB_txn *txn, uint64_t now, uint64_t retention, size_t max,
    size_t *purged);
int ngx_http_inventory_store_index_ended(ngx_http_inventory_store_t *st,
    MDB_txn *txn);


#endif /* _NGX_HTTP_INVENTORY_STORE_DB_H_INCLUDED_ */
