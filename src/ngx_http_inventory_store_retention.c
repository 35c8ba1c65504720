/*
 * Retention of ended reservations: the index of ended reservations by the
 * time they ended ("reservation_ended": ended_at, id -> ""), kept by the
 * write path in the transaction that ends one, and the purge that forgets
 * those ended longer ago than the retention, oldest first and a bounded
 * number at a time (the walk it shares with the purge of idempotency
 * keys).  The purge's deletes are recorded like any write, so followers
 * forget the same reservations.  The events that mention a purged
 * reservation stay in the log: the ledger keeps its history.
 */

#include <string.h>

#include "ngx_http_inventory_store_db.h"


static int ngx_http_inventory_store_purgeable(ngx_http_inventory_store_t *st,
    MDB_txn *txn, const MDB_val *key, uint64_t at);


/* a reservation that ended (committed, released, expired) enters the index */

int
ngx_http_inventory_store_ended(ngx_http_inventory_store_t *st, MDB_txn *txn,
    const ngx_http_inventory_reservation_t *res)
{
    MDB_val        key, val;
    unsigned char  kbuf[NGX_HTTP_INVENTORY_EXPIRY_KEY_LEN];

    key.mv_data = kbuf;
    key.mv_size = ngx_http_inventory_expiry_key(kbuf, res->ended_at, res->id,
                                                NGX_HTTP_INVENTORY_RES_ID_LEN);
    val.mv_data = NULL;
    val.mv_size = 0;

    return ngx_http_inventory_store_put(st, txn, st->res_ended, &key, &val, 0);
}


/*
 * Forgets reservations that ended before now - retention (retention 0:
 * none), oldest first, at most max of them: the record and its index
 * entry.
 */

int
ngx_http_inventory_store_purge_ended(ngx_http_inventory_store_t *st,
    MDB_txn *txn, uint64_t now, uint64_t retention, size_t max,
    size_t *purged)
{
    *purged = 0;

    if (retention == 0 || now <= retention) {
        return 0;
    }

    return ngx_http_inventory_store_purge_index(st, txn, st->res_ended,
                                       st->reservations, now - retention,
                                       ngx_http_inventory_store_purgeable,
                                       max, purged);
}


/*
 * An entry whose reservation is not one that ended then fails the purge
 * (as verify would report it): an active reservation is never forgotten.
 */

static int
ngx_http_inventory_store_purgeable(ngx_http_inventory_store_t *st,
    MDB_txn *txn, const MDB_val *key, uint64_t at)
{
    int                               rc;
    MDB_val                           val;
    ngx_http_inventory_reservation_t  res;

    if (key->mv_size != NGX_HTTP_INVENTORY_RES_ID_LEN) {
        return MDB_CORRUPTED;
    }

    rc = mdb_get(txn, st->reservations, (MDB_val *) key, &val);
    if (rc != 0) {
        return rc == MDB_NOTFOUND ? MDB_CORRUPTED : rc;
    }

    if (ngx_http_inventory_reservation_decode(val.mv_data, val.mv_size,
                                              key->mv_data, &res)
        != 0
        || res.state == NGX_HTTP_INVENTORY_RES_ACTIVE
        || res.ended_at != at)
    {
        return MDB_CORRUPTED;
    }

    return 0;
}


/*
 * The purge of an index of times (expiry_key(): a time, then the key of a
 * record in "records"), the idempotency keys' and the ended reservations':
 * from its first entry, as long as the time is before "before" and at
 * most max of them, the entry and its record are deleted, each one that
 * check (if any) lets go.
 */

int
ngx_http_inventory_store_purge_index(ngx_http_inventory_store_t *st,
    MDB_txn *txn, MDB_dbi index, MDB_dbi records, uint64_t before,
    ngx_http_inventory_purgeable_pt check, size_t max, size_t *purged)
{
    int            rc;
    uint64_t       at;
    MDB_val        key, val, rkey;
    MDB_cursor    *cur;
    unsigned char  kbuf[8 + NGX_HTTP_INVENTORY_IDEM_KEY_MAX];

    *purged = 0;

    rc = mdb_cursor_open(txn, index, &cur);
    if (rc != 0) {
        return rc;
    }

    while (*purged < max) {
        rc = mdb_cursor_get(cur, &key, &val, MDB_FIRST);
        if (rc != 0) {
            break;
        }

        if (key.mv_size <= 8 || key.mv_size > sizeof(kbuf)) {
            rc = MDB_CORRUPTED;
            break;
        }

        at = ngx_http_inventory_get_u64(key.mv_data);

        if (at >= before) {
            break;
        }

        /* the key lives in a page of the index, which the deletes change */
        memcpy(kbuf, key.mv_data, key.mv_size);
        key.mv_data = kbuf;
        rkey.mv_data = kbuf + 8;
        rkey.mv_size = key.mv_size - 8;

        rc = check ? check(st, txn, &rkey, at) : 0;

        if (rc == 0) {
            rc = ngx_http_inventory_store_del(st, txn, records, &rkey);

            /* an idempotency record replaced already: only its entry */
            rc = (rc == MDB_NOTFOUND) ? 0 : rc;
        }

        if (rc == 0) {
            rc = ngx_http_inventory_store_del(st, txn, index, &key);
        }

        if (rc != 0) {
            break;
        }

        (*purged)++;
    }

    mdb_cursor_close(cur);

    return rc == MDB_NOTFOUND ? 0 : rc;
}


/*
 * The index built anew from the reservations, not recorded: for a store
 * upgraded from a schema without it, and for rebuild.  Every copy derives
 * the same entries from the same reservations.
 */

int
ngx_http_inventory_store_index_ended(ngx_http_inventory_store_t *st,
    MDB_txn *txn)
{
    int                               rc;
    MDB_val                           key, val, ekey, eval;
    MDB_cursor                       *cur;
    unsigned char                     kbuf[NGX_HTTP_INVENTORY_EXPIRY_KEY_LEN];
    ngx_http_inventory_reservation_t  res;

    rc = mdb_drop(txn, st->res_ended, 0);
    if (rc != 0) {
        return rc;
    }

    rc = mdb_cursor_open(txn, st->reservations, &cur);
    if (rc != 0) {
        return rc;
    }

    eval.mv_data = NULL;
    eval.mv_size = 0;

    for (rc = mdb_cursor_get(cur, &key, &val, MDB_FIRST);
         rc == 0;
         rc = mdb_cursor_get(cur, &key, &val, MDB_NEXT))
    {
        if (key.mv_size != NGX_HTTP_INVENTORY_RES_ID_LEN
            || ngx_http_inventory_reservation_decode(val.mv_data, val.mv_size,
                                                     key.mv_data, &res)
               != 0)
        {
            rc = MDB_CORRUPTED;
            break;
        }

        if (res.state == NGX_HTTP_INVENTORY_RES_ACTIVE) {
            continue;
        }

        ekey.mv_data = kbuf;
        ekey.mv_size = ngx_http_inventory_expiry_key(kbuf, res.ended_at,
                                                res.id,
                                                NGX_HTTP_INVENTORY_RES_ID_LEN);

        rc = mdb_put(txn, st->res_ended, &ekey, &eval, 0);
        if (rc != 0) {
            break;
        }
    }

    mdb_cursor_close(cur);

    return rc == MDB_NOTFOUND ? 0 : rc;
}
