/*
 * Older layouts: records written before the current schema, read as they
 * are; and schema upgrades, run in the transaction that opens a store of
 * an older schema for nginx.  They only rewrite what every copy derives
 * alike from the same data, and are not recorded for followers: each copy
 * upgrades itself, so copies stay the same bytes.
 *
 * 1 -> 2: items in the 88-byte layout (the quantity states, all 0, and
 * the seq of their latest event, from its index record), and the changes
 * index (an item's seq -> its key).  The references index starts empty:
 * no event of schema 1 has a reference.
 *
 * 2 -> 3: the index of ended reservations, from the reservations.
 */

#include <string.h>

#include "ngx_http_inventory_store_db.h"


static int ngx_http_inventory_store_upgrade_items(
    ngx_http_inventory_store_t *st, MDB_txn *txn);


/*
 * An item's record (key and value of "items"), decoded.  One written
 * before the quantity states holds no seq: its latest index record does.
 */

int
ngx_http_inventory_store_item_decode(ngx_http_inventory_store_t *st,
    MDB_txn *txn, const MDB_val *key, const MDB_val *val,
    ngx_http_inventory_item_t *item)
{
    int                       rc;
    MDB_val                   ikey, ival;
    unsigned char             kbuf[NGX_HTTP_INVENTORY_KEY_MAX];
    ngx_http_inventory_str_t  sku, location;

    if (ngx_http_inventory_item_decode(val->mv_data, val->mv_size, item)
        != 0)
    {
        return MDB_CORRUPTED;
    }

    if (val->mv_size != NGX_HTTP_INVENTORY_ITEM_RECORD_V1) {
        return 0;
    }

    if (ngx_http_inventory_item_key_split(key->mv_data, key->mv_size, &sku,
                                          &location)
        != 0)
    {
        return MDB_CORRUPTED;
    }

    ikey.mv_data = kbuf;
    ikey.mv_size = ngx_http_inventory_item_event_key(kbuf, sku, location,
                                                     item->version);

    rc = mdb_get(txn, st->item_events, &ikey, &ival);
    if (rc != 0 || ival.mv_size < 8) {
        return MDB_CORRUPTED;
    }

    item->seq = ngx_http_inventory_get_u64(ival.mv_data);

    return 0;
}


int
ngx_http_inventory_store_upgrade(ngx_http_inventory_store_t *st,
    MDB_txn *txn, uint64_t from)
{
    int  rc;

    if (from != 1 && from != 2) {
        return MDB_INCOMPATIBLE;
    }

    rc = (from == 1) ? ngx_http_inventory_store_upgrade_items(st, txn) : 0;

    if (rc == 0) {
        rc = ngx_http_inventory_store_index_ended(st, txn);
    }

    return rc;
}


/* 1 -> 2 */

static int
ngx_http_inventory_store_upgrade_items(ngx_http_inventory_store_t *st,
    MDB_txn *txn)
{
    int                        rc;
    MDB_val                    key, val, skey;
    MDB_cursor                *cur;
    unsigned char              rec[NGX_HTTP_INVENTORY_ITEM_RECORD_LEN];
    unsigned char              seq[8], kbuf[NGX_HTTP_INVENTORY_KEY_MAX];
    ngx_http_inventory_item_t  item;

    rc = mdb_cursor_open(txn, st->items, &cur);
    if (rc != 0) {
        return rc;
    }

    for (rc = mdb_cursor_get(cur, &key, &val, MDB_FIRST);
         rc == 0;
         rc = mdb_cursor_get(cur, &key, &val, MDB_NEXT))
    {
        rc = ngx_http_inventory_store_item_decode(st, txn, &key, &val,
                                                  &item);
        if (rc != 0 || key.mv_size > sizeof(kbuf)) {
            rc = rc ? rc : MDB_CORRUPTED;
            break;
        }

        /*
         * The key points into the page, which a value of another size
         * rewrites (a delete, then an insert): it is used from a copy.
         */
        memcpy(kbuf, key.mv_data, key.mv_size);
        key.mv_data = kbuf;

        ngx_http_inventory_item_encode(rec, &item);
        val.mv_data = rec;
        val.mv_size = sizeof(rec);

        rc = mdb_cursor_put(cur, &key, &val, MDB_CURRENT);
        if (rc != 0) {
            break;
        }

        ngx_http_inventory_put_u64(seq, item.seq);
        skey.mv_data = seq;
        skey.mv_size = sizeof(seq);

        rc = mdb_put(txn, st->changes, &skey, &key, 0);
        if (rc != 0) {
            break;
        }
    }

    mdb_cursor_close(cur);

    return rc == MDB_NOTFOUND ? 0 : rc;
}
