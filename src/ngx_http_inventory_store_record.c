/*
 * The store's replication log: every write transaction's changes (each
 * put and delete, in order, with its database) kept as one record under
 * the transaction's number, so that a follower applies exactly what the
 * primary wrote: a copy, not an interpretation.  Made here, while the
 * write path puts and deletes; served and applied by store_repl.c.
 *
 * A record: version (1 byte), the store's last seq after the transaction
 * (8), its time in ms (8), then changes: op (1), database (1), key length
 * (4), value length (4), key, value.  Numbers are big-endian.  The last
 * NGX_HTTP_INVENTORY_REPL_KEEP records are kept: each transaction, on the
 * primary and on every follower alike, deletes the one that many before
 * it, so the log is the same bytes everywhere.
 */

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "ngx_http_inventory_store_db.h"


static int ngx_http_inventory_store_record(ngx_http_inventory_store_t *st,
    unsigned op, MDB_dbi dbi, const MDB_val *key, const MDB_val *val);


/*
 * "log" is database 1: a record's events are its puts there.  A new
 * database goes before "replication", which stays last (never in a
 * record), so that the numbers of the others do not change.
 */
const char  *ngx_http_inventory_db_names[NGX_HTTP_INVENTORY_DBS] = {
    "meta", "log", "items", "item_events", "reservations",
    "reservation_expiry", "idempotency", "idempotency_expiry", "low_stock",
    "references", "changes", "reservation_ended", "replication"
};


/* puts and deletes of the write path: recorded while a record is open */

int
ngx_http_inventory_store_put(ngx_http_inventory_store_t *st, MDB_txn *txn,
    MDB_dbi dbi, MDB_val *key, MDB_val *val, unsigned flags)
{
    int  rc;

    rc = ngx_http_inventory_store_record(st, NGX_HTTP_INVENTORY_OP_PUT, dbi,
                                         key, val);
    if (rc != 0) {
        return rc;
    }

    rc = mdb_put(txn, dbi, key, val, flags);

    /* a put refused (MDB_NOOVERWRITE) changed nothing */
    if (rc != 0 && st->recording) {
        st->rec_len = st->rec_mark;
    }

    return rc;
}


int
ngx_http_inventory_store_del(ngx_http_inventory_store_t *st, MDB_txn *txn,
    MDB_dbi dbi, MDB_val *key)
{
    int  rc;

    rc = ngx_http_inventory_store_record(st, NGX_HTTP_INVENTORY_OP_DEL, dbi,
                                         key, NULL);
    if (rc != 0) {
        return rc;
    }

    rc = mdb_del(txn, dbi, key, NULL);

    /* a delete of nothing changes nothing, and is not recorded */
    if (rc != 0 && st->recording) {
        st->rec_len = st->rec_mark;
    }

    return rc;
}


/* a value written in place (MDB_RESERVE) is recorded once it is filled */

int
ngx_http_inventory_store_recorded(ngx_http_inventory_store_t *st,
    MDB_dbi dbi, const MDB_val *key, const MDB_val *val)
{
    return ngx_http_inventory_store_record(st, NGX_HTTP_INVENTORY_OP_PUT, dbi,
                                           key, val);
}


static int
ngx_http_inventory_store_record(ngx_http_inventory_store_t *st, unsigned op,
    MDB_dbi dbi, const MDB_val *key, const MDB_val *val)
{
    size_t          need, cap, vlen;
    unsigned        db;
    unsigned char  *p;

    if (!st->recording) {
        return 0;
    }

    for (db = 0; db < NGX_HTTP_INVENTORY_DBS; db++) {
        if (st->dbi[db] == dbi) {
            break;
        }
    }

    if (db == NGX_HTTP_INVENTORY_DBS) {
        return EINVAL;
    }

    vlen = val ? val->mv_size : 0;
    need = st->rec_len + NGX_HTTP_INVENTORY_CHANGE_HEADER + key->mv_size
           + vlen;

    if (need > st->rec_cap) {
        cap = st->rec_cap ? st->rec_cap : 4096;

        while (cap < need) {
            cap *= 2;
        }

        p = realloc(st->rec, cap);
        if (p == NULL) {
            return ENOMEM;
        }

        st->rec = p;
        st->rec_cap = cap;
    }

    st->rec_mark = st->rec_len;
    p = st->rec + st->rec_len;

    if (db == 1 && op == NGX_HTTP_INVENTORY_OP_PUT) {
        st->rec_events++;
    }

    p[0] = (unsigned char) op;
    p[1] = (unsigned char) db;
    ngx_http_inventory_put_u32(p + 2, (uint32_t) key->mv_size);
    ngx_http_inventory_put_u32(p + 6, (uint32_t) vlen);
    p += NGX_HTTP_INVENTORY_CHANGE_HEADER;

    memcpy(p, key->mv_data, key->mv_size);

    if (vlen) {
        memcpy(p + key->mv_size, val->mv_data, vlen);
    }

    st->rec_len = need;

    return 0;
}


void
ngx_http_inventory_store_rec_open(ngx_http_inventory_store_t *st,
    uint64_t seq)
{
    st->recording = 1;
    st->rec_len = NGX_HTTP_INVENTORY_REC_HEADER;
    st->rec_mark = st->rec_len;
    st->rec_seq = seq;
    st->rec_events = 0;
}


/* a batch undone (a nested transaction aborted) leaves its record too */

void
ngx_http_inventory_store_rec_save(ngx_http_inventory_store_t *st,
    ngx_http_inventory_rec_mark_t *m)
{
    m->len = st->rec_len;
    m->mark = st->rec_mark;
    m->events = st->rec_events;
}


void
ngx_http_inventory_store_rec_restore(ngx_http_inventory_store_t *st,
    const ngx_http_inventory_rec_mark_t *m)
{
    st->rec_len = m->len;
    st->rec_mark = m->mark;
    st->rec_events = m->events;
}


/*
 * Before the commit: the open record, if the transaction changed
 * anything, becomes the next transaction of the replication log.
 */

int
ngx_http_inventory_store_rec_close(ngx_http_inventory_store_t *st,
    MDB_txn *txn, uint64_t seq, uint64_t at)
{
    int       rc;
    MDB_val   rec;
    uint64_t  tx;

    st->recording = 0;

    /*
     * Every event the transaction appended must be in its record: a
     * transaction that would leave followers without some of its changes
     * is not committed.
     */
    if (seq - st->rec_seq != st->rec_events) {
        return MDB_CORRUPTED;
    }

    if (st->rec_len == NGX_HTTP_INVENTORY_REC_HEADER) {
        return 0;
    }

    st->rec[0] = NGX_HTTP_INVENTORY_REC_VERSION;
    ngx_http_inventory_put_u64(st->rec + 1, seq);
    ngx_http_inventory_put_u64(st->rec + 9, at);

    rc = ngx_http_inventory_store_last_key(txn, st->replication, &tx);
    if (rc != 0) {
        return rc;
    }

    rec.mv_data = st->rec;
    rec.mv_size = st->rec_len;

    return ngx_http_inventory_store_keep(st, txn, tx + 1, &rec);
}


void
ngx_http_inventory_store_rec_drop(ngx_http_inventory_store_t *st)
{
    st->recording = 0;
}


/*
 * The end of a recorded write transaction, begun under the remap lock:
 * committed with its record if rc is 0 so far, else aborted; the lock let
 * go.  Returns an LMDB code.
 */

int
ngx_http_inventory_store_rec_end(ngx_http_inventory_store_t *st,
    MDB_txn *txn, int rc, uint64_t seq, uint64_t at)
{
    if (rc == 0) {
        rc = ngx_http_inventory_store_rec_close(st, txn, seq, at);
    }

    if (rc != 0) {
        ngx_http_inventory_store_rec_drop(st);
        mdb_txn_abort(txn);

    } else {
        rc = mdb_txn_commit(txn);
    }

    (void) pthread_rwlock_unlock(&st->remap);

    return rc;
}


int
ngx_http_inventory_store_last_tx(ngx_http_inventory_store_t *st,
    MDB_txn *txn, uint64_t *tx)
{
    return ngx_http_inventory_store_last_key(txn, st->replication, tx);
}


int
ngx_http_inventory_store_last_key(MDB_txn *txn, MDB_dbi dbi, uint64_t *last)
{
    int          rc;
    MDB_val      key, val;
    MDB_cursor  *cur;

    *last = 0;

    rc = mdb_cursor_open(txn, dbi, &cur);
    if (rc != 0) {
        return rc;
    }

    rc = mdb_cursor_get(cur, &key, &val, MDB_LAST);

    if (rc == 0) {
        if (key.mv_size == 8) {
            *last = ngx_http_inventory_get_u64(key.mv_data);

        } else {
            rc = MDB_CORRUPTED;
        }

    } else if (rc == MDB_NOTFOUND) {
        rc = 0;
    }

    mdb_cursor_close(cur);

    return rc;
}


/* the record of transaction tx, and the one KEEP before it forgotten */

int
ngx_http_inventory_store_keep(ngx_http_inventory_store_t *st, MDB_txn *txn,
    uint64_t tx, const MDB_val *rec)
{
    int            rc;
    MDB_val        key, val;
    unsigned char  buf[8];

    ngx_http_inventory_put_u64(buf, tx);
    key.mv_data = buf;
    key.mv_size = 8;
    val = *rec;

    rc = mdb_put(txn, st->replication, &key, &val, MDB_APPEND);
    if (rc != 0) {
        return rc;
    }

    if (tx <= NGX_HTTP_INVENTORY_REPL_KEEP) {
        return 0;
    }

    ngx_http_inventory_put_u64(buf, tx - NGX_HTTP_INVENTORY_REPL_KEEP);

    rc = mdb_del(txn, st->replication, &key, NULL);

    return rc == MDB_NOTFOUND ? 0 : rc;
}


/* a record's header: the seq after its transaction, and its time */

int
ngx_http_inventory_store_header(const unsigned char *p, size_t len,
    uint64_t *seq, uint64_t *at)
{
    if (len < NGX_HTTP_INVENTORY_REC_HEADER
        || p[0] != NGX_HTTP_INVENTORY_REC_VERSION)
    {
        return MDB_CORRUPTED;
    }

    *seq = ngx_http_inventory_get_u64(p + 1);
    *at = ngx_http_inventory_get_u64(p + 9);

    return 0;
}
