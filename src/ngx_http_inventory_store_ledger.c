/*
 * Reads of the two indexes the write path keeps in each transaction: the
 * events that name a reference (references: reference NUL seq -> ""), and
 * the items by their latest event (changes: seq -> sku NUL location), so
 * that a store site catches up with what changed since it last looked.
 * Both read the snapshot of store_read_begin().
 */

#include <string.h>

#include "ngx_http_inventory_store_db.h"


int
ngx_http_inventory_store_reference_events(ngx_http_inventory_store_t *st,
    ngx_http_inventory_str_t reference, uint64_t after, size_t limit,
    ngx_http_inventory_event_pt handler, void *ctx, int *more)
{
    int                         rc;
    size_t                      count, plen;
    MDB_val                     key, val, lkey, lval;
    MDB_cursor                 *cur;
    unsigned char               kbuf[NGX_HTTP_INVENTORY_REF_KEY_MAX];
    ngx_http_inventory_event_t  ev;

    *more = 0;

    if (after == UINT64_MAX) {
        return 0;
    }

    rc = mdb_cursor_open(st->rtxn, st->references, &cur);
    if (rc != 0) {
        return ngx_http_inventory_store_rc(rc);
    }

    key.mv_data = kbuf;
    key.mv_size = ngx_http_inventory_reference_key(kbuf, reference,
                                                   after + 1);
    plen = reference.len + 1;
    count = 0;

    for (rc = mdb_cursor_get(cur, &key, &val, MDB_SET_RANGE);
         rc == 0;
         rc = mdb_cursor_get(cur, &key, &val, MDB_NEXT))
    {
        if (key.mv_size != plen + 8 || memcmp(key.mv_data, kbuf, plen) != 0)
        {
            break;
        }

        if (count == limit) {
            *more = 1;
            break;
        }

        lkey.mv_data = (unsigned char *) key.mv_data + plen;
        lkey.mv_size = 8;

        rc = mdb_get(st->rtxn, st->log, &lkey, &lval);
        if (rc == 0) {
            rc = ngx_http_inventory_store_log_event(&lkey, &lval, &ev);
        }

        if (rc != 0) {
            rc = MDB_CORRUPTED;
            break;
        }

        rc = handler(ctx, &ev);
        if (rc != 0) {
            break;
        }

        count++;
    }

    mdb_cursor_close(cur);

    return rc == MDB_NOTFOUND ? 0 : ngx_http_inventory_store_rc(rc);
}


int
ngx_http_inventory_store_changed_items(ngx_http_inventory_store_t *st,
    uint64_t after, size_t limit, ngx_http_inventory_item_pt handler,
    void *ctx, uint64_t *next)
{
    int                        rc;
    size_t                     count;
    uint64_t                   seq;
    MDB_val                    key, val, ival;
    MDB_cursor                *cur;
    unsigned char              kbuf[8];
    ngx_http_inventory_str_t   sku, location;
    ngx_http_inventory_item_t  item;

    *next = 0;

    if (after == UINT64_MAX) {
        return 0;
    }

    rc = mdb_cursor_open(st->rtxn, st->changes, &cur);
    if (rc != 0) {
        return ngx_http_inventory_store_rc(rc);
    }

    ngx_http_inventory_put_u64(kbuf, after + 1);
    key.mv_data = kbuf;
    key.mv_size = 8;
    count = 0;
    seq = 0;

    for (rc = mdb_cursor_get(cur, &key, &val, MDB_SET_RANGE);
         rc == 0;
         rc = mdb_cursor_get(cur, &key, &val, MDB_NEXT))
    {
        if (count == limit) {
            /* the next page starts after the last item of this one */
            *next = seq;
            break;
        }

        if (key.mv_size != 8
            || ngx_http_inventory_item_key_split(val.mv_data, val.mv_size,
                                                 &sku, &location)
               != 0)
        {
            rc = MDB_CORRUPTED;
            break;
        }

        seq = ngx_http_inventory_get_u64(key.mv_data);

        rc = mdb_get(st->rtxn, st->items, &val, &ival);
        if (rc == 0) {
            rc = ngx_http_inventory_store_item_decode(st, st->rtxn, &val,
                                                      &ival, &item);
        }

        if (rc != 0 || item.seq != seq) {
            rc = MDB_CORRUPTED;
            break;
        }

        rc = handler(ctx, sku, location, &item);
        if (rc != 0) {
            break;
        }

        count++;
    }

    mdb_cursor_close(cur);

    return rc == MDB_NOTFOUND ? 0 : ngx_http_inventory_store_rc(rc);
}
