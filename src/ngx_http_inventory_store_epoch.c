/*
 * Epochs: a store's epoch is 1 at its creation and one more at every
 * promotion of a copy to primary.  A promotion is a transaction of the
 * replication log of its own (meta "epoch" = E, and meta "epoch:E" = the
 * transaction it is), so its followers get it like any other, and every
 * copy knows where each epoch began.  That fences histories, as
 * PostgreSQL's timelines do: a follower at epoch e whose last transaction
 * is at or after the first one of epoch e + 1 here went on alone after
 * this store's history forked from it, whatever its transactions' times.
 */

#include <errno.h>
#include <string.h>

#include "ngx_http_inventory_store_db.h"


static int ngx_http_inventory_store_epoch_get(ngx_http_inventory_store_t *st,
    MDB_txn *txn, uint64_t epoch, uint64_t *value);
static void ngx_http_inventory_store_epoch_key(MDB_val *key,
    unsigned char *buf, uint64_t epoch);


/*
 * Makes this store a primary's: its epoch one more, in a transaction of
 * its own, at "now" (ms) or after its last event.  Blocks.
 */

int
ngx_http_inventory_store_promote(ngx_http_inventory_store_t *st,
    uint64_t now, uint64_t *epoch)
{
    int                         rc;
    MDB_val                     key, val;
    MDB_txn                    *txn;
    uint64_t                    tx, e;
    unsigned char               kbuf[16], vbuf[8];
    ngx_http_inventory_clock_t  clock;

    (void) pthread_rwlock_rdlock(&st->remap);

    rc = mdb_txn_begin(st->env, NULL, 0, &txn);
    if (rc != 0) {
        (void) pthread_rwlock_unlock(&st->remap);
        return ngx_http_inventory_store_rc(rc);
    }

    rc = ngx_http_inventory_store_clock(st, txn, &clock);

    if (rc == 0) {
        rc = ngx_http_inventory_store_epoch_get(st, txn, 0, &e);
    }

    if (rc == 0) {
        rc = ngx_http_inventory_store_last_tx(st, txn, &tx);
    }

    if (rc == 0) {
        if (now < clock.at) {
            now = clock.at;
        }

        ngx_http_inventory_store_rec_open(st, clock.seq);

        e++;
        ngx_http_inventory_put_u64(vbuf, e);
        ngx_http_inventory_store_epoch_key(&key, kbuf, 0);
        val.mv_data = vbuf;
        val.mv_size = 8;

        rc = ngx_http_inventory_store_put(st, txn, st->meta, &key, &val, 0);
    }

    if (rc == 0) {
        /* where this epoch begins: the transaction being committed */
        ngx_http_inventory_put_u64(vbuf, tx + 1);
        ngx_http_inventory_store_epoch_key(&key, kbuf, e);
        val.mv_data = vbuf;
        val.mv_size = 8;

        rc = ngx_http_inventory_store_put(st, txn, st->meta, &key, &val, 0);
    }

    rc = ngx_http_inventory_store_rec_end(st, txn, rc, clock.seq, now);

    if (rc != 0) {
        return ngx_http_inventory_store_rc(rc);
    }

    *epoch = e;

    return NGX_HTTP_INVENTORY_STORE_OK;
}


/*
 * Whether a copy at epoch "epoch" whose last transaction is "tx" can go
 * on from this store's history (txn: a transaction of this store): 0, or
 * MDB_NOTFOUND when it went on alone after an epoch this one began
 * afterwards, or when it is of an epoch this store never had.  epoch 0: a
 * copy that does not say (unchecked).
 */

int
ngx_http_inventory_store_epoch_continues(ngx_http_inventory_store_t *st,
    MDB_txn *txn, uint64_t epoch, uint64_t tx)
{
    int       rc;
    uint64_t  own, next;

    if (epoch == 0) {
        return 0;
    }

    rc = ngx_http_inventory_store_epoch_get(st, txn, 0, &own);
    if (rc != 0) {
        return rc;
    }

    if (epoch > own) {
        return MDB_NOTFOUND;
    }

    if (epoch == own) {
        return 0;
    }

    rc = ngx_http_inventory_store_epoch_get(st, txn, epoch + 1, &next);

    if (rc == 0 && tx >= next) {
        rc = MDB_NOTFOUND;
    }

    return rc;
}


/* whether "epoch" is older than this store's: a source deposed since */

int
ngx_http_inventory_store_epoch_older(ngx_http_inventory_store_t *st,
    MDB_txn *txn, uint64_t epoch, int *older)
{
    int       rc;
    uint64_t  own;

    rc = ngx_http_inventory_store_epoch_get(st, txn, 0, &own);

    *older = (rc == 0 && epoch < own);

    return rc;
}


/* the store's epoch (epoch 0), or the transaction epoch "epoch" began at */

static int
ngx_http_inventory_store_epoch_get(ngx_http_inventory_store_t *st,
    MDB_txn *txn, uint64_t epoch, uint64_t *value)
{
    int            rc;
    MDB_val        key, val;
    unsigned char  buf[16];

    ngx_http_inventory_store_epoch_key(&key, buf, epoch);

    rc = mdb_get(txn, st->meta, &key, &val);

    if (rc == MDB_NOTFOUND && epoch == 0) {
        /* a store made before epochs were kept in it */
        *value = 1;
        return 0;
    }

    if (rc == 0 && val.mv_size != 8) {
        rc = MDB_CORRUPTED;
    }

    if (rc == 0) {
        *value = ngx_http_inventory_get_u64(val.mv_data);
    }

    return rc;
}


/* "epoch", or "epoch:" and the epoch's 8 bytes, big-endian */

static void
ngx_http_inventory_store_epoch_key(MDB_val *key, unsigned char *buf,
    uint64_t epoch)
{
    memcpy(buf, "epoch:", 6);
    key->mv_data = buf;
    key->mv_size = 5;

    if (epoch) {
        ngx_http_inventory_put_u64(buf + 6, epoch);
        key->mv_size = 14;
    }
}
