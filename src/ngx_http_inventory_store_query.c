/*
 * The store's reads: items, a SKU's locations, reservations and the due
 * ones, an item's events and its state at a time, the global log, and
 * the low-stock index with its cursor.  The public functions read the
 * process's read transaction (store_read_begin()); the internal ones take
 * a transaction, so that the write path reads with them too.
 */

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "ngx_http_inventory_store_db.h"


int
ngx_http_inventory_store_get_item(ngx_http_inventory_store_t *st,
    ngx_http_inventory_str_t sku, ngx_http_inventory_str_t location,
    ngx_http_inventory_item_t *item)
{
    return ngx_http_inventory_store_rc(
               ngx_http_inventory_store_item(st, st->rtxn, sku, location,
                                             item));
}


int
ngx_http_inventory_store_item(ngx_http_inventory_store_t *st, MDB_txn *txn,
    ngx_http_inventory_str_t sku, ngx_http_inventory_str_t location,
    ngx_http_inventory_item_t *item)
{
    int            rc;
    MDB_val        key, val;
    unsigned char  kbuf[NGX_HTTP_INVENTORY_KEY_MAX];

    key.mv_data = kbuf;
    key.mv_size = ngx_http_inventory_item_key(kbuf, sku, location);

    rc = mdb_get(txn, st->items, &key, &val);
    if (rc != 0) {
        return rc;
    }

    return ngx_http_inventory_store_item_decode(st, txn, &key, &val, item);
}


/* calls handler for every location of a SKU, in location order */

int
ngx_http_inventory_store_sku_items(ngx_http_inventory_store_t *st,
    ngx_http_inventory_str_t sku, ngx_http_inventory_item_pt handler,
    void *ctx)
{
    int                        rc;
    size_t                     plen;
    MDB_val                    key, val;
    MDB_cursor                *cur;
    unsigned char              prefix[NGX_HTTP_INVENTORY_KEY_MAX];
    ngx_http_inventory_str_t   s, loc;
    ngx_http_inventory_item_t  item;

    rc = mdb_cursor_open(st->rtxn, st->items, &cur);
    if (rc != 0) {
        return ngx_http_inventory_store_rc(rc);
    }

    plen = ngx_http_inventory_sku_prefix(prefix, sku);
    key.mv_data = prefix;
    key.mv_size = plen;

    for (rc = mdb_cursor_get(cur, &key, &val, MDB_SET_RANGE);
         rc == 0;
         rc = mdb_cursor_get(cur, &key, &val, MDB_NEXT))
    {
        if (key.mv_size <= plen || memcmp(key.mv_data, prefix, plen) != 0) {
            break;
        }

        if (ngx_http_inventory_item_key_split(key.mv_data, key.mv_size,
                                              &s, &loc) != 0
            || ngx_http_inventory_store_item_decode(st, st->rtxn, &key, &val,
                                                    &item) != 0)
        {
            rc = MDB_CORRUPTED;
            break;
        }

        rc = handler(ctx, s, loc, &item);
        if (rc != 0) {
            break;
        }
    }

    mdb_cursor_close(cur);

    return rc == MDB_NOTFOUND ? 0 : ngx_http_inventory_store_rc(rc);
}


int
ngx_http_inventory_store_last_seq(ngx_http_inventory_store_t *st,
    uint64_t *seq)
{
    int                         rc;
    ngx_http_inventory_clock_t  clock;

    rc = ngx_http_inventory_store_clock(st, st->rtxn, &clock);
    *seq = clock.seq;

    return ngx_http_inventory_store_rc(rc);
}


int
ngx_http_inventory_store_get_reservation(ngx_http_inventory_store_t *st,
    const char *id, ngx_http_inventory_reservation_t *res)
{
    return ngx_http_inventory_store_rc(
               ngx_http_inventory_store_reservation(st, st->rtxn, id, res));
}


int
ngx_http_inventory_store_reservation(ngx_http_inventory_store_t *st,
    MDB_txn *txn, const char *id, ngx_http_inventory_reservation_t *res)
{
    int      rc;
    MDB_val  key, val;

    key.mv_data = (void *) id;
    key.mv_size = NGX_HTTP_INVENTORY_RES_ID_LEN;

    rc = mdb_get(txn, st->reservations, &key, &val);
    if (rc != 0) {
        return rc;
    }

    if (ngx_http_inventory_reservation_decode(val.mv_data, val.mv_size, id,
                                              res)
        != 0)
    {
        return MDB_CORRUPTED;
    }

    return 0;
}


/* ids of active reservations whose time has come, in due order */

int
ngx_http_inventory_store_due(ngx_http_inventory_store_t *st, uint64_t now,
    char (*ids)[NGX_HTTP_INVENTORY_RES_ID_LEN], size_t max, size_t *n)
{
    int          rc;
    MDB_val      key, val;
    MDB_cursor  *cur;

    *n = 0;

    rc = mdb_cursor_open(st->rtxn, st->res_expiry, &cur);
    if (rc != 0) {
        return ngx_http_inventory_store_rc(rc);
    }

    for (rc = mdb_cursor_get(cur, &key, &val, MDB_FIRST);
         rc == 0 && *n < max;
         rc = mdb_cursor_get(cur, &key, &val, MDB_NEXT))
    {
        if (key.mv_size != NGX_HTTP_INVENTORY_EXPIRY_KEY_LEN) {
            rc = MDB_CORRUPTED;
            break;
        }

        if (ngx_http_inventory_get_u64(key.mv_data) > now) {
            break;
        }

        memcpy(ids[(*n)++], (unsigned char *) key.mv_data + 8,
               NGX_HTTP_INVENTORY_RES_ID_LEN);
    }

    mdb_cursor_close(cur);

    return rc == MDB_NOTFOUND ? 0 : ngx_http_inventory_store_rc(rc);
}


/*
 * Calls handler for the item's events after version "after", at most
 * limit of them; *more tells whether others follow.
 */

int
ngx_http_inventory_store_item_events(ngx_http_inventory_store_t *st,
    ngx_http_inventory_str_t sku, ngx_http_inventory_str_t location,
    uint64_t after, size_t limit, ngx_http_inventory_event_pt handler,
    void *ctx, int *more)
{
    int                         rc;
    size_t                      plen, count;
    MDB_val                     key, val, lkey, lval;
    MDB_cursor                 *cur;
    unsigned char               kbuf[NGX_HTTP_INVENTORY_KEY_MAX];
    ngx_http_inventory_event_t  ev;

    *more = 0;

    if (after == UINT64_MAX) {
        return 0;
    }

    rc = mdb_cursor_open(st->rtxn, st->item_events, &cur);
    if (rc != 0) {
        return ngx_http_inventory_store_rc(rc);
    }

    key.mv_data = kbuf;
    key.mv_size = ngx_http_inventory_item_event_key(kbuf, sku, location,
                                                    after + 1);
    plen = key.mv_size - 8;
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

        if (val.mv_size < 8) {
            rc = MDB_CORRUPTED;
            break;
        }

        lkey.mv_data = val.mv_data;
        lkey.mv_size = 8;
        rc = mdb_get(st->rtxn, st->log, &lkey, &lval);

        if (rc == 0
            && ngx_http_inventory_event_decode(lval.mv_data, lval.mv_size,
                                               &ev) != 0)
        {
            rc = MDB_CORRUPTED;
        }

        if (rc != 0) {
            break;
        }

        ev.seq = ngx_http_inventory_get_u64(val.mv_data);

        rc = handler(ctx, &ev);
        if (rc != 0) {
            break;
        }

        count++;
    }

    mdb_cursor_close(cur);

    return rc == MDB_NOTFOUND ? 0 : ngx_http_inventory_store_rc(rc);
}


/* the global log after seq "after": at most limit events */

int
ngx_http_inventory_store_log(ngx_http_inventory_store_t *st, uint64_t after,
    size_t limit, ngx_http_inventory_event_pt handler, void *ctx)
{
    int                         rc;
    size_t                      count;
    MDB_val                     key, val;
    MDB_cursor                 *cur;
    unsigned char               kbuf[8];
    ngx_http_inventory_event_t  ev;

    if (after == UINT64_MAX) {
        return 0;
    }

    rc = mdb_cursor_open(st->rtxn, st->log, &cur);
    if (rc != 0) {
        return ngx_http_inventory_store_rc(rc);
    }

    ngx_http_inventory_put_u64(kbuf, after + 1);
    key.mv_data = kbuf;
    key.mv_size = 8;
    count = 0;

    for (rc = mdb_cursor_get(cur, &key, &val, MDB_SET_RANGE);
         rc == 0 && count < limit;
         rc = mdb_cursor_get(cur, &key, &val, MDB_NEXT))
    {
        rc = ngx_http_inventory_store_log_event(&key, &val, &ev);
        if (rc != 0) {
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


/*
 * The item as it was at time "at": a binary search over the item's event
 * index, whose entries keep the item as each event left it.  MDB_NOTFOUND
 * if the item had no event yet.
 */

int
ngx_http_inventory_store_item_as_of(ngx_http_inventory_store_t *st,
    ngx_http_inventory_str_t sku, ngx_http_inventory_str_t location,
    uint64_t at, ngx_http_inventory_item_t *item)
{
    int                        rc;
    uint64_t                   lo, hi, mid;
    MDB_val                    key, val;
    unsigned char              kbuf[NGX_HTTP_INVENTORY_KEY_MAX];
    ngx_http_inventory_item_t  now, snap;

    rc = ngx_http_inventory_store_item(st, st->rtxn, sku, location, &now);
    if (rc != 0) {
        return ngx_http_inventory_store_rc(rc);
    }

    if (now.updated_at <= at) {
        *item = now;
        return 0;
    }

    /* the answer is the last version whose event is not after "at" */
    lo = 0;
    hi = now.version;

    while (lo < hi) {
        mid = lo + (hi - lo + 1) / 2;

        key.mv_data = kbuf;
        key.mv_size = ngx_http_inventory_item_event_key(kbuf, sku, location,
                                                        mid);
        rc = mdb_get(st->rtxn, st->item_events, &key, &val);

        if (rc == 0
            && ngx_http_inventory_index_decode(val.mv_data, val.mv_size,
                                               &snap) != 0)
        {
            rc = MDB_CORRUPTED;
        }

        if (rc != 0) {
            return ngx_http_inventory_store_rc(rc == MDB_NOTFOUND
                                               ? MDB_CORRUPTED : rc);
        }

        if (snap.updated_at <= at) {
            lo = mid;
            *item = snap;

        } else {
            hi = mid - 1;
        }
    }

    return lo ? NGX_HTTP_INVENTORY_STORE_OK
              : NGX_HTTP_INVENTORY_STORE_NOT_FOUND;
}


/*
 * A cursor is the low-stock index key of the last item of a page: its
 * location, NUL, its sku.
 */

int
ngx_http_inventory_store_cursor_valid(const unsigned char *cursor,
    size_t len)
{
    ngx_http_inventory_str_t  sku, location;

    return len <= NGX_HTTP_INVENTORY_STORE_CURSOR_MAX
           && ngx_http_inventory_item_key_split(cursor, len, &location, &sku)
              == 0;
}


/*
 * Items with low_stock, in (location, sku) order, after the cursor "from"
 * (none: from the start) and within "location" when given.
 */

int
ngx_http_inventory_store_low_stock(ngx_http_inventory_store_t *st,
    ngx_http_inventory_str_t location, const unsigned char *from,
    size_t from_len, size_t limit, ngx_http_inventory_item_pt handler,
    void *ctx, unsigned char *next, size_t *next_len)
{
    int                        rc;
    size_t                     plen, count, last;
    MDB_val                    key, val;
    MDB_cursor                *cur;
    unsigned char              prefix[NGX_HTTP_INVENTORY_KEY_MAX];
    ngx_http_inventory_str_t   sku, loc;
    ngx_http_inventory_item_t  item;

    *next_len = 0;
    plen = 0;
    last = 0;

    if (location.len) {
        plen = ngx_http_inventory_sku_prefix(prefix, location);
    }

    rc = mdb_cursor_open(st->rtxn, st->low_stock, &cur);
    if (rc != 0) {
        return ngx_http_inventory_store_rc(rc);
    }

    if (from_len) {
        key.mv_data = (void *) from;
        key.mv_size = from_len;
        rc = mdb_cursor_get(cur, &key, &val, MDB_SET_RANGE);

        /* the cursor names the last item of the previous page */
        if (rc == 0 && key.mv_size == from_len
            && memcmp(key.mv_data, from, from_len) == 0)
        {
            rc = mdb_cursor_get(cur, &key, &val, MDB_NEXT);
        }

    } else if (plen) {
        key.mv_data = prefix;
        key.mv_size = plen;
        rc = mdb_cursor_get(cur, &key, &val, MDB_SET_RANGE);

    } else {
        rc = mdb_cursor_get(cur, &key, &val, MDB_FIRST);
    }

    for (count = 0; rc == 0; rc = mdb_cursor_get(cur, &key, &val, MDB_NEXT)) {

        if (plen && (key.mv_size <= plen
                     || memcmp(key.mv_data, prefix, plen) != 0))
        {
            break;
        }

        if (count == limit) {
            *next_len = last;
            break;
        }

        /* the index key is location NUL sku: a valid one fits in next */
        if (ngx_http_inventory_item_key_split(key.mv_data, key.mv_size, &loc,
                                              &sku)
            != 0)
        {
            rc = MDB_CORRUPTED;
            break;
        }

        rc = ngx_http_inventory_store_item(st, st->rtxn, sku, loc, &item);
        if (rc != 0) {
            rc = (rc == MDB_NOTFOUND) ? MDB_CORRUPTED : rc;
            break;
        }

        rc = handler(ctx, sku, loc, &item);
        if (rc != 0) {
            break;
        }

        memcpy(next, key.mv_data, key.mv_size);
        last = key.mv_size;
        count++;
    }

    mdb_cursor_close(cur);

    return rc == MDB_NOTFOUND ? 0 : ngx_http_inventory_store_rc(rc);
}
