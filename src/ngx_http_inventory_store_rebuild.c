/*
 * Rebuilding the projections and indexes from the log: every event as the
 * write path (store_write.c) writes it; and the index of ended
 * reservations from the reservations.
 */

#include <stdlib.h>
#include <string.h>

#include "ngx_http_inventory_store_db.h"


/*
 * Replays the log into emptied items, item_events, low_stock, references
 * and changes, each event as the write path writes it: load the item,
 * apply the event, put the item (and its low-stock and changes entries),
 * the event's index record and its reference.  The ended reservations are
 * indexed anew from their records: a purged one has events but no record.
 */

int
ngx_http_inventory_store_rebuild(ngx_http_inventory_store_t *st,
    uint64_t *events, uint64_t *bad)
{
    int                         rc;
    uint64_t                    seq;
    MDB_txn                    *txn;
    MDB_val                     key, val;
    MDB_cursor                 *cur;
    ngx_http_inventory_slot_t   slot;
    ngx_http_inventory_event_t  ev;

    *events = 0;
    *bad = 0;

    rc = ngx_http_inventory_store_begin(st, &txn);
    if (rc != 0) {
        return ngx_http_inventory_store_rc(rc);
    }

    if ((rc = mdb_drop(txn, st->items, 0)) != 0
        || (rc = mdb_drop(txn, st->item_events, 0)) != 0
        || (rc = mdb_drop(txn, st->low_stock, 0)) != 0
        || (rc = mdb_drop(txn, st->references, 0)) != 0
        || (rc = mdb_drop(txn, st->changes, 0)) != 0
        || (rc = mdb_cursor_open(txn, st->log, &cur)) != 0)
    {
        ngx_http_inventory_store_abort(st, txn);
        return ngx_http_inventory_store_rc(rc);
    }

    memset(&slot, 0, sizeof(ngx_http_inventory_slot_t));

    for (rc = mdb_cursor_get(cur, &key, &val, MDB_FIRST);
         rc == 0;
         rc = mdb_cursor_get(cur, &key, &val, MDB_NEXT))
    {
        rc = ngx_http_inventory_store_log_event(&key, &val, &ev);
        if (rc != 0) {
            *bad = UINT64_MAX;
            break;
        }

        seq = ev.seq;
        slot.sku = ev.sku;
        slot.location = ev.location;

        rc = ngx_http_inventory_store_load(st, txn, &slot);
        if (rc != 0) {
            break;
        }

        if (ngx_http_inventory_event_apply(&slot.item, &ev) != 0) {
            *bad = seq;
            rc = MDB_CORRUPTED;
            break;
        }

        rc = ngx_http_inventory_store_put_item(st, txn, &slot);

        if (rc == 0) {
            rc = ngx_http_inventory_store_put_index(st, txn, &slot, seq,
                                                    ev.version);
        }

        if (rc == 0) {
            rc = ngx_http_inventory_store_put_reference(st, txn, &ev);
        }

        if (rc != 0) {
            break;
        }

        (*events)++;
    }

    mdb_cursor_close(cur);

    if (rc == MDB_NOTFOUND) {
        rc = ngx_http_inventory_store_index_ended(st, txn);
    }

    if (rc != 0) {
        ngx_http_inventory_store_abort(st, txn);
        return ngx_http_inventory_store_rc(rc);
    }

    rc = mdb_txn_commit(txn);
    (void) pthread_rwlock_unlock(&st->remap);

    return ngx_http_inventory_store_rc(rc);
}
