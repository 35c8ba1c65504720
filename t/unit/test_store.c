/*
 * The LMDB store: commands applied in one transaction, events and
 * projections written together, replay equal to the projection, a batch with
 * a rejected command, and a full map that changes nothing.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tap.h"
#include "helpers.h"
#include "ngx_http_inventory_store.h"
#include "ngx_http_inventory_codec.h"


static void
cmd_init(ngx_http_inventory_cmd_t *cmd, unsigned type, const char *sku,
    const char *loc)
{
    memset(cmd, 0, sizeof(*cmd));
    cmd->type = type;
    cmd->sku = S(sku);
    cmd->location = S(loc);
}


static unsigned
run(ngx_http_inventory_store_t *st, ngx_http_inventory_cmd_t *cmd,
    uint64_t now)
{
    int                        rc;
    ngx_http_inventory_cmd_t  *p = cmd;

    rc = ngx_http_inventory_store_execute(st, &p, 1, now);
    free(cmd->body);
    cmd->body = NULL;

    return rc ? 1000 + cmd->outcome : cmd->outcome;
}


/* replays every event of the log, checking seq and per-item versions */

static int
replay_matches(ngx_http_inventory_store_t *st, uint64_t *events)
{
    int                         rc, ok;
    MDB_txn                    *txn;
    MDB_val                     key, val, ikey, ival;
    MDB_cursor                 *cur;
    uint64_t                    seq, expect;
    unsigned char               kbuf[NGX_HTTP_INVENTORY_KEY_MAX];
    ngx_http_inventory_item_t  *items, stored;
    char                      (*names)[140];
    size_t                      nitems, i, max;
    ngx_http_inventory_event_t  ev;

    max = 100000;
    items = calloc(max, sizeof(items[0]));
    names = calloc(max, sizeof(names[0]));
    nitems = 0;
    ok = 1;
    expect = 1;

    mdb_txn_begin(st->env, NULL, MDB_RDONLY, &txn);
    mdb_cursor_open(txn, st->log, &cur);

    for (rc = mdb_cursor_get(cur, &key, &val, MDB_FIRST);
         rc == 0;
         rc = mdb_cursor_get(cur, &key, &val, MDB_NEXT))
    {
        seq = ngx_http_inventory_get_u64(key.mv_data);

        if (seq != expect++
            || ngx_http_inventory_event_decode(val.mv_data, val.mv_size, &ev)
               != 0)
        {
            ok = 0;
            break;
        }

        snprintf(names[nitems], sizeof(names[0]), "%.*s/%.*s",
                 (int) ev.sku.len, ev.sku.data,
                 (int) ev.location.len, ev.location.data);

        for (i = 0; i < nitems; i++) {
            if (strcmp(names[i], names[nitems]) == 0) {
                break;
            }
        }

        if (i == nitems) {
            if (nitems == max) {
                ok = 0;
                break;
            }

            memset(&items[nitems++], 0, sizeof(items[0]));
        }

        if (ngx_http_inventory_event_apply(&items[i], &ev) != 0) {
            ok = 0;
            break;
        }

        /* the per-item index points back at this seq */
        ikey.mv_data = kbuf;
        ikey.mv_size = ngx_http_inventory_item_event_key(kbuf, ev.sku,
                                                         ev.location,
                                                         ev.version);
        if (mdb_get(txn, st->item_events, &ikey, &ival) != 0
            || ngx_http_inventory_get_u64(ival.mv_data) != seq)
        {
            ok = 0;
            break;
        }

        ikey.mv_size = ngx_http_inventory_item_key(kbuf, ev.sku, ev.location);

        if (mdb_get(txn, st->items, &ikey, &ival) != 0) {
            ok = 0;
            break;
        }
    }

    mdb_cursor_close(cur);

    /* every projection equals the replay of its events */
    for (i = 0; ok && i < nitems; i++) {
        char  *slash = strchr(names[i], '/');

        *slash = '\0';
        ikey.mv_data = kbuf;
        ikey.mv_size = ngx_http_inventory_item_key(kbuf, S(names[i]),
                                                   S(slash + 1));
        if (mdb_get(txn, st->items, &ikey, &ival) != 0
            || ngx_http_inventory_item_decode(ival.mv_data, ival.mv_size,
                                              &stored) != 0
            || memcmp(&stored, &items[i], sizeof(stored)) != 0)
        {
            ok = 0;
        }
    }

    mdb_txn_abort(txn);
    free(items);
    free(names);
    *events = expect - 1;

    return ok;
}


void
test_store(void)
{
    int                          rc;
    char                         dir[] = "/tmp/inventory-unit-XXXXXX";
    char                         cmdline[128];
    uint64_t                     events;
    ngx_http_inventory_cmd_t     a, b, c, *batch[3];
    ngx_http_inventory_item_t    item;
    ngx_http_inventory_store_t   st;
    ngx_http_inventory_store_stat_t  stat;

    if (mkdtemp(dir) == NULL) {
        ok(0, "mkdtemp");
        return;
    }

    rc = ngx_http_inventory_store_open(&st, dir, 1024 * 1024, 0,
                                       NGX_HTTP_INVENTORY_STORE_CREATE);
    is_int(rc, 0, "store opens and creates");

    cmd_init(&a, NGX_HTTP_INVENTORY_CMD_COUNT, "A-1", "store-7");
    a.on_hand = 5;
    a.min_level = 10;
    a.has_min_level = 1;
    is_int(run(&st, &a, 1000), NGX_HTTP_INVENTORY_CREATED, "count creates");
    is_int(a.appended, 2, "StockCounted + LowStockDetected");
    is_int(a.last_seq, 2, "seq 2");
    is_int(a.slots[0].item.version, 2, "version 2");

    cmd_init(&a, NGX_HTTP_INVENTORY_CMD_ADJUST, "A-1", "store-7");
    a.delta = 100;
    is_int(run(&st, &a, 500), NGX_HTTP_INVENTORY_OK, "adjust");
    is_int(a.slots[0].item.on_hand, 105, "adjust: on_hand");
    ok(a.slots[0].item.updated_at == 1000, "event time never goes back");

    /* one batch: a good command, a rejected one, a good one */
    cmd_init(&a, NGX_HTTP_INVENTORY_CMD_ADJUST, "A-1", "store-7");
    a.delta = -5;
    cmd_init(&b, NGX_HTTP_INVENTORY_CMD_ADJUST, "A-1", "nowhere");
    b.delta = -1;
    cmd_init(&c, NGX_HTTP_INVENTORY_CMD_ADJUST, "A-1", "store-7");
    c.delta = -3;
    batch[0] = &a;
    batch[1] = &b;
    batch[2] = &c;
    is_int(ngx_http_inventory_store_execute(&st, batch, 3, 2000), 0,
           "batch commits");
    ok(a.status == 200 && b.status == 404 && c.status == 200 && b.body_len,
       "batch: each command has its response");
    free(a.body);
    free(b.body);
    free(c.body);
    is_int(a.outcome, NGX_HTTP_INVENTORY_OK, "batch: first applied");
    is_int(b.outcome, NGX_HTTP_INVENTORY_NOT_FOUND, "batch: second rejected");
    is_int(c.outcome, NGX_HTTP_INVENTORY_OK, "batch: third applied");
    is_int(c.slots[0].item.on_hand, 97, "batch: effects in order");
    is_int(c.last_seq, a.last_seq + 1, "batch: seq has no gap");

    ok(ngx_http_inventory_store_read_begin(&st) == 0, "read begins");
    is_int(ngx_http_inventory_store_get_item(&st, S("A-1"), S("store-7"),
                                             &item), 0, "get item");
    is_int(item.on_hand, 97, "read sees the write");
    is_int(ngx_http_inventory_store_get_item(&st, S("A-1"), S("nowhere"),
                                             &item),
           MDB_NOTFOUND, "unknown item");
    ngx_http_inventory_store_read_end(&st);

    ok(replay_matches(&st, &events), "replay equals projections");
    is_int(events, 5, "five events");

    /* fill the 1 MiB map: the failing command changes nothing */
    for (rc = 0; rc < 100000; rc++) {
        char  loc[32];

        snprintf(loc, sizeof(loc), "loc-%d", rc);
        cmd_init(&a, NGX_HTTP_INVENTORY_CMD_COUNT, "FILL", loc);
        a.on_hand = 1;

        if (run(&st, &a, 3000) != NGX_HTTP_INVENTORY_CREATED) {
            break;
        }
    }

    ok(a.outcome == NGX_HTTP_INVENTORY_STORAGE_FULL,
       "a full map answers storage-full after %d items", rc);
    ok(replay_matches(&st, &events), "replay still equals projections");
    is_int(events, 5 + rc, "no event of the failed command");

    is_int(ngx_http_inventory_store_stat(&st, &stat), 0, "stat");
    is_int(stat.last_seq, 5 + rc, "stat: last seq");

    ngx_http_inventory_store_close(&st);

    /* reopened with a larger map, the store goes on */
    rc = ngx_http_inventory_store_open(&st, dir, 4 * 1024 * 1024, 1, 0);
    is_int(rc, 0, "store reopens with a larger map");
    cmd_init(&a, NGX_HTTP_INVENTORY_CMD_ADJUST, "A-1", "store-7");
    a.delta = 1;
    is_int(run(&st, &a, 4000), NGX_HTTP_INVENTORY_OK, "write after growth");
    is_int(a.last_seq, events + 1, "seq continues");
    ngx_http_inventory_store_close(&st);

    snprintf(cmdline, sizeof(cmdline), "rm -rf %s", dir);
    if (system(cmdline) != 0) {
        ok(0, "cleanup");
    }
}
