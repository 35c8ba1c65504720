/*
 * inventory-admin: offline tool for a store.
 *
 *   inventory-admin verify STORE     replay every item's events and compare
 *                                    with the projections and indexes
 *   inventory-admin rebuild STORE [--take-write-lock]
 *                                    recompute projections and indexes
 *   inventory-admin dump STORE [--after SEQ]
 *                                    the log as JSON lines
 *   inventory-admin stats STORE      counts and sizes, as JSON
 *
 * verify, dump and stats only read (LMDB read transactions), so they are
 * safe while nginx serves.  Exit status: 0 fine, 1 verify found a
 * difference, 2 the command could not run.
 */

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ngx_http_inventory_store.h"
#include "ngx_http_inventory_codec.h"
#include "ngx_http_inventory_render.h"


#define INVENTORY_ADMIN_MAX_PROBLEMS  50


typedef struct {
    ngx_http_inventory_store_t  *st;
    MDB_txn                     *txn;
    unsigned long                problems;
} ngx_http_inventory_verify_t;


static int ngx_http_inventory_admin_verify(ngx_http_inventory_store_t *st);
static void ngx_http_inventory_admin_problem(ngx_http_inventory_verify_t *v,
    const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void ngx_http_inventory_verify_log(ngx_http_inventory_verify_t *v,
    uint64_t *events);
static void ngx_http_inventory_verify_items(ngx_http_inventory_verify_t *v,
    uint64_t *indexed);
static void ngx_http_inventory_verify_item(ngx_http_inventory_verify_t *v,
    ngx_http_inventory_str_t sku, ngx_http_inventory_str_t location,
    const ngx_http_inventory_item_t *stored, uint64_t *indexed);
static void ngx_http_inventory_verify_low_stock(
    ngx_http_inventory_verify_t *v);
static void ngx_http_inventory_verify_reservations(
    ngx_http_inventory_verify_t *v);
static int ngx_http_inventory_admin_rebuild(ngx_http_inventory_store_t *st,
    int force);
static int ngx_http_inventory_admin_dump(ngx_http_inventory_store_t *st,
    uint64_t after);
static int ngx_http_inventory_admin_stats(ngx_http_inventory_store_t *st);
static int ngx_http_inventory_admin_readers(ngx_http_inventory_store_t *st);
static uint64_t ngx_http_inventory_admin_count(MDB_txn *txn, MDB_dbi dbi);
static int ngx_http_inventory_hold_cmp(const void *one, const void *two);
static void ngx_http_inventory_admin_print(void *ctx, const char *s,
    size_t len);
static int ngx_http_inventory_admin_event(void *ctx,
    const ngx_http_inventory_event_t *ev);


int
main(int argc, char **argv)
{
    int                         rc, force;
    char                        file[4096];
    int64_t                     seq;
    unsigned                    flags;
    uint64_t                    after;
    const char                 *cmd, *path;
    ngx_http_inventory_store_t *st;

    if (argc < 3) {
        fprintf(stderr, "usage: %s verify|rebuild|dump|stats STORE "
                        "[--take-write-lock] [--after SEQ]\n", argv[0]);
        return 2;
    }

    cmd = argv[1];
    path = argv[2];
    force = 0;
    after = 0;

    if (argc == 4 && strcmp(argv[3], "--take-write-lock") == 0
        && strcmp(cmd, "rebuild") == 0)
    {
        force = 1;

    } else if (argc == 5 && strcmp(argv[3], "--after") == 0
               && strcmp(cmd, "dump") == 0)
    {
        if (ngx_http_inventory_parse_int(argv[4], strlen(argv[4]), &seq) != 0
            || seq < 0)
        {
            fprintf(stderr, "%s: --after takes a seq, 0 or more\n", argv[0]);
            return 2;
        }

        after = (uint64_t) seq;

    } else if (argc != 3) {
        fprintf(stderr, "%s: unexpected arguments\n", argv[0]);
        return 2;
    }

    /* never create a store: LMDB would, in any directory it is given */
    snprintf(file, sizeof(file), "%s/data.mdb", path);

    if (access(file, R_OK) != 0) {
        fprintf(stderr, "%s: \"%s\" is not a store (no data.mdb)\n",
                argv[0], path);
        return 2;
    }

    st = calloc(1, sizeof(ngx_http_inventory_store_t));
    if (st == NULL) {
        return 2;
    }

    /* map size 0: LMDB takes the size the store was made with */
    flags = strcmp(cmd, "rebuild") == 0 ? 0 : NGX_HTTP_INVENTORY_STORE_RDONLY;

    rc = ngx_http_inventory_store_open(st, path, 0, 1, flags);
    if (rc != 0) {
        fprintf(stderr, "%s: cannot open the store \"%s\": %s\n", argv[0],
                path, ngx_http_inventory_store_strerror(rc));
        free(st);
        return 2;
    }

    if (strcmp(cmd, "verify") == 0) {
        rc = ngx_http_inventory_admin_verify(st);

    } else if (strcmp(cmd, "rebuild") == 0) {
        rc = ngx_http_inventory_admin_rebuild(st, force);

    } else if (strcmp(cmd, "dump") == 0) {
        rc = ngx_http_inventory_admin_dump(st, after);

    } else if (strcmp(cmd, "stats") == 0) {
        rc = ngx_http_inventory_admin_stats(st);

    } else {
        fprintf(stderr, "%s: unknown command \"%s\"\n", argv[0], cmd);
        rc = 2;
    }

    ngx_http_inventory_store_close(st);
    free(st);

    return rc;
}


static int
ngx_http_inventory_admin_verify(ngx_http_inventory_store_t *st)
{
    int                          rc;
    uint64_t                     events, indexed;
    ngx_http_inventory_verify_t  v;

    memset(&v, 0, sizeof(v));
    v.st = st;

    rc = mdb_txn_begin(st->env, NULL, MDB_RDONLY, &v.txn);
    if (rc != 0) {
        fprintf(stderr, "verify: %s\n", mdb_strerror(rc));
        return 2;
    }

    ngx_http_inventory_verify_log(&v, &events);
    ngx_http_inventory_verify_items(&v, &indexed);

    if (indexed != events) {
        ngx_http_inventory_admin_problem(&v, "the log holds %llu events, "
                                         "the item indexes %llu",
                                         (unsigned long long) events,
                                         (unsigned long long) indexed);
    }

    ngx_http_inventory_verify_low_stock(&v);
    ngx_http_inventory_verify_reservations(&v);

    mdb_txn_abort(v.txn);

    if (v.problems) {
        printf("verify: %lu problem(s)\n", v.problems);
        return 1;
    }

    printf("verify: ok, %llu events\n", (unsigned long long) events);

    return 0;
}


static void
ngx_http_inventory_admin_problem(ngx_http_inventory_verify_t *v,
    const char *fmt, ...)
{
    va_list  args;

    if (v->problems++ >= INVENTORY_ADMIN_MAX_PROBLEMS) {
        return;
    }

    va_start(args, fmt);
    printf("problem: ");
    vprintf(fmt, args);
    printf("\n");
    va_end(args);
}


/* seq gap-free from 1, every record readable, time never going back, and
 * every event found in its item's index */

static void
ngx_http_inventory_verify_log(ngx_http_inventory_verify_t *v,
    uint64_t *events)
{
    int                         rc;
    uint64_t                    seq, at;
    MDB_val                     key, val, ikey, ival;
    MDB_cursor                 *cur;
    unsigned char               kbuf[NGX_HTTP_INVENTORY_KEY_MAX];
    ngx_http_inventory_event_t  ev;

    *events = 0;
    at = 0;

    if (mdb_cursor_open(v->txn, v->st->log, &cur) != 0) {
        ngx_http_inventory_admin_problem(v, "the log cannot be read");
        return;
    }

    for (rc = mdb_cursor_get(cur, &key, &val, MDB_FIRST);
         rc == 0;
         rc = mdb_cursor_get(cur, &key, &val, MDB_NEXT))
    {
        seq = key.mv_size == 8 ? ngx_http_inventory_get_u64(key.mv_data) : 0;

        if (seq != *events + 1) {
            ngx_http_inventory_admin_problem(v, "log: seq %llu follows %llu",
                                        (unsigned long long) seq,
                                        (unsigned long long) *events);
        }

        *events = seq;

        if (ngx_http_inventory_event_decode(val.mv_data, val.mv_size, &ev)
            != 0)
        {
            ngx_http_inventory_admin_problem(v, "log: event %llu is "
                                             "unreadable",
                                             (unsigned long long) seq);
            continue;
        }

        if (ev.at < at) {
            ngx_http_inventory_admin_problem(v, "log: event %llu goes back "
                                             "in time",
                                             (unsigned long long) seq);
        }

        at = ev.at;

        ikey.mv_data = kbuf;
        ikey.mv_size = ngx_http_inventory_item_event_key(kbuf, ev.sku,
                                                         ev.location,
                                                         ev.version);

        if (mdb_get(v->txn, v->st->item_events, &ikey, &ival) != 0
            || ival.mv_size != NGX_HTTP_INVENTORY_INDEX_RECORD_LEN
            || ngx_http_inventory_get_u64(ival.mv_data) != seq)
        {
            ngx_http_inventory_admin_problem(v, "log: event %llu (%.*s at "
                                        "%.*s, version %llu) is not indexed",
                                        (unsigned long long) seq,
                                        (int) ev.sku.len, ev.sku.data,
                                        (int) ev.location.len,
                                        ev.location.data,
                                        (unsigned long long) ev.version);
        }
    }

    mdb_cursor_close(cur);
}


static void
ngx_http_inventory_verify_items(ngx_http_inventory_verify_t *v,
    uint64_t *indexed)
{
    int                        rc;
    MDB_val                    key, val;
    MDB_cursor                *cur;
    ngx_http_inventory_str_t   sku, location;
    ngx_http_inventory_item_t  item;

    *indexed = 0;

    if (mdb_cursor_open(v->txn, v->st->items, &cur) != 0) {
        ngx_http_inventory_admin_problem(v, "the items cannot be read");
        return;
    }

    for (rc = mdb_cursor_get(cur, &key, &val, MDB_FIRST);
         rc == 0;
         rc = mdb_cursor_get(cur, &key, &val, MDB_NEXT))
    {
        if (ngx_http_inventory_item_key_split(key.mv_data, key.mv_size, &sku,
                                              &location) != 0
            || ngx_http_inventory_item_decode(val.mv_data, val.mv_size,
                                              &item) != 0)
        {
            ngx_http_inventory_admin_problem(v, "items: an unreadable item");
            continue;
        }

        ngx_http_inventory_verify_item(v, sku, location, &item, indexed);
    }

    mdb_cursor_close(cur);
}


/* the item's events, replayed from the empty state, give its projection */

static void
ngx_http_inventory_verify_item(ngx_http_inventory_verify_t *v,
    ngx_http_inventory_str_t sku, ngx_http_inventory_str_t location,
    const ngx_http_inventory_item_t *stored, uint64_t *indexed)
{
    int                         low_due;
    uint64_t                    version;
    MDB_val                     key, val, lkey, lval;
    unsigned char               kbuf[NGX_HTTP_INVENTORY_KEY_MAX];
    ngx_http_inventory_item_t   item, before, snap;
    ngx_http_inventory_event_t  ev;

    memset(&item, 0, sizeof(item));
    low_due = 0;

    for (version = 1; version <= stored->version; version++) {
        key.mv_data = kbuf;
        key.mv_size = ngx_http_inventory_item_event_key(kbuf, sku, location,
                                                        version);

        if (mdb_get(v->txn, v->st->item_events, &key, &val) != 0
            || val.mv_size != NGX_HTTP_INVENTORY_INDEX_RECORD_LEN)
        {
            ngx_http_inventory_admin_problem(v, "%.*s at %.*s: version %llu "
                                        "is missing from the index",
                                        (int) sku.len, sku.data,
                                        (int) location.len, location.data,
                                        (unsigned long long) version);
            return;
        }

        (*indexed)++;

        lkey.mv_data = val.mv_data;
        lkey.mv_size = 8;

        if (mdb_get(v->txn, v->st->log, &lkey, &lval) != 0
            || ngx_http_inventory_event_decode(lval.mv_data, lval.mv_size,
                                               &ev) != 0
            || ev.version != version
            || ev.sku.len != sku.len || ev.location.len != location.len
            || memcmp(ev.sku.data, sku.data, sku.len) != 0
            || memcmp(ev.location.data, location.data, location.len) != 0)
        {
            ngx_http_inventory_admin_problem(v, "%.*s at %.*s: version %llu "
                                        "points at a wrong event",
                                        (int) sku.len, sku.data,
                                        (int) location.len, location.data,
                                        (unsigned long long) version);
            return;
        }

        if (low_due
            != (ev.type == NGX_HTTP_INVENTORY_EV_LOW_STOCK_DETECTED))
        {
            ngx_http_inventory_admin_problem(v, "%.*s at %.*s: version %llu "
                                        "%s LowStockDetected",
                                        (int) sku.len, sku.data,
                                        (int) location.len, location.data,
                                        (unsigned long long) version,
                                        low_due ? "should be"
                                                : "is an unexpected");
        }

        before = item;

        if (ngx_http_inventory_event_apply(&item, &ev) != 0) {
            ngx_http_inventory_admin_problem(v, "%.*s at %.*s: version %llu "
                                        "does not apply",
                                        (int) sku.len, sku.data,
                                        (int) location.len, location.data,
                                        (unsigned long long) version);
            return;
        }

        low_due = ev.type != NGX_HTTP_INVENTORY_EV_LOW_STOCK_DETECTED
                  && ngx_http_inventory_low_stock_detected(&before, &item);

        if (ngx_http_inventory_item_decode((unsigned char *) val.mv_data + 8,
                                           NGX_HTTP_INVENTORY_ITEM_RECORD_LEN,
                                           &snap) != 0
            || memcmp(&snap, &item, sizeof(item)) != 0)
        {
            ngx_http_inventory_admin_problem(v, "%.*s at %.*s: the index "
                                        "snapshot of version %llu differs "
                                        "from the replay",
                                        (int) sku.len, sku.data,
                                        (int) location.len, location.data,
                                        (unsigned long long) version);
        }
    }

    if (low_due) {
        ngx_http_inventory_admin_problem(v, "%.*s at %.*s: LowStockDetected "
                                    "is missing at the end",
                                    (int) sku.len, sku.data,
                                    (int) location.len, location.data);
    }

    if (memcmp(&item, stored, sizeof(item)) != 0) {
        ngx_http_inventory_admin_problem(v, "%.*s at %.*s: the projection "
                                    "(on_hand %lld, reserved %lld, "
                                    "min_level %lld, version %llu) differs "
                                    "from the replay (on_hand %lld, "
                                    "reserved %lld, min_level %lld, "
                                    "version %llu)",
                                    (int) sku.len, sku.data,
                                    (int) location.len, location.data,
                                    (long long) stored->on_hand,
                                    (long long) stored->reserved,
                                    (long long) stored->min_level,
                                    (unsigned long long) stored->version,
                                    (long long) item.on_hand,
                                    (long long) item.reserved,
                                    (long long) item.min_level,
                                    (unsigned long long) item.version);
    }

    /* no event beyond the projection's version */
    key.mv_data = kbuf;
    key.mv_size = ngx_http_inventory_item_event_key(kbuf, sku, location,
                                                    stored->version + 1);

    if (mdb_get(v->txn, v->st->item_events, &key, &val) == 0) {
        ngx_http_inventory_admin_problem(v, "%.*s at %.*s: the index has "
                                    "events past version %llu",
                                    (int) sku.len, sku.data,
                                    (int) location.len, location.data,
                                    (unsigned long long) stored->version);
    }
}


/* the low-stock index holds exactly the items with low_stock */

static void
ngx_http_inventory_verify_low_stock(ngx_http_inventory_verify_t *v)
{
    int                        rc;
    MDB_val                    key, val, ikey;
    MDB_cursor                *cur;
    unsigned char              kbuf[NGX_HTTP_INVENTORY_KEY_MAX];
    ngx_http_inventory_str_t   sku, location;
    ngx_http_inventory_item_t  item;

    mdb_cursor_open(v->txn, v->st->items, &cur);

    for (rc = mdb_cursor_get(cur, &key, &val, MDB_FIRST);
         rc == 0;
         rc = mdb_cursor_get(cur, &key, &val, MDB_NEXT))
    {
        if (ngx_http_inventory_item_key_split(key.mv_data, key.mv_size, &sku,
                                              &location) != 0
            || ngx_http_inventory_item_decode(val.mv_data, val.mv_size,
                                              &item) != 0)
        {
            continue;
        }

        ikey.mv_data = kbuf;
        ikey.mv_size = ngx_http_inventory_low_key(kbuf, sku, location);

        if ((mdb_get(v->txn, v->st->low_stock, &ikey, &val) == 0)
            != ngx_http_inventory_low_stock(&item))
        {
            ngx_http_inventory_admin_problem(v, "%.*s at %.*s: the low-stock "
                                        "index disagrees with the item",
                                        (int) sku.len, sku.data,
                                        (int) location.len, location.data);
        }
    }

    mdb_cursor_close(cur);

    mdb_cursor_open(v->txn, v->st->low_stock, &cur);

    for (rc = mdb_cursor_get(cur, &key, &val, MDB_FIRST);
         rc == 0;
         rc = mdb_cursor_get(cur, &key, &val, MDB_NEXT))
    {
        if (ngx_http_inventory_item_key_split(key.mv_data, key.mv_size,
                                              &location, &sku) != 0)
        {
            ngx_http_inventory_admin_problem(v, "low-stock: a bad key");
            continue;
        }

        ikey.mv_data = kbuf;
        ikey.mv_size = ngx_http_inventory_item_key(kbuf, sku, location);

        if (mdb_get(v->txn, v->st->items, &ikey, &val) != 0) {
            ngx_http_inventory_admin_problem(v, "low-stock: %.*s at %.*s is "
                                        "not an item",
                                        (int) sku.len, sku.data,
                                        (int) location.len, location.data);
        }
    }

    mdb_cursor_close(cur);
}


/* active reservations are in the expiry index, and hold what items reserve */

typedef struct {
    unsigned char               key[NGX_HTTP_INVENTORY_KEY_MAX];
    size_t                      len;
    int64_t                     quantity;
} ngx_http_inventory_hold_t;


static int
ngx_http_inventory_hold_cmp(const void *one, const void *two)
{
    int                               c;
    const ngx_http_inventory_hold_t  *a = one, *b = two;

    /* LMDB's default order: bytes, then the shorter key first */
    c = memcmp(a->key, b->key, a->len < b->len ? a->len : b->len);

    return c ? c : (a->len > b->len) - (a->len < b->len);
}


static void
ngx_http_inventory_verify_reservations(ngx_http_inventory_verify_t *v)
{
    int                                rc;
    size_t                             i, n, cap, k;
    int64_t                            sum;
    uint64_t                           active, indexed;
    MDB_val                            key, val, ekey, ival;
    MDB_cursor                        *cur;
    unsigned char                      ebuf[NGX_HTTP_INVENTORY_EXPIRY_KEY_LEN];
    ngx_http_inventory_hold_t         *holds, *h;
    ngx_http_inventory_str_t           sku, location;
    ngx_http_inventory_item_t          item;
    ngx_http_inventory_reservation_t  *res;

    res = malloc(sizeof(ngx_http_inventory_reservation_t));
    cap = 1024;
    holds = malloc(cap * sizeof(ngx_http_inventory_hold_t));

    if (res == NULL || holds == NULL) {
        ngx_http_inventory_admin_problem(v, "out of memory");
        free(res);
        free(holds);
        return;
    }

    active = 0;
    n = 0;

    mdb_cursor_open(v->txn, v->st->reservations, &cur);

    for (rc = mdb_cursor_get(cur, &key, &val, MDB_FIRST);
         rc == 0;
         rc = mdb_cursor_get(cur, &key, &val, MDB_NEXT))
    {
        if (key.mv_size != NGX_HTTP_INVENTORY_RES_ID_LEN
            || ngx_http_inventory_reservation_decode(val.mv_data, val.mv_size,
                                                     key.mv_data, res) != 0)
        {
            ngx_http_inventory_admin_problem(v, "reservations: an unreadable "
                                             "reservation");
            continue;
        }

        ekey.mv_data = ebuf;
        ekey.mv_size = ngx_http_inventory_expiry_key(ebuf, res->expires_at,
                                                 res->id,
                                                 NGX_HTTP_INVENTORY_RES_ID_LEN);

        if ((mdb_get(v->txn, v->st->res_expiry, &ekey, &ival) == 0)
            != (res->state == NGX_HTTP_INVENTORY_RES_ACTIVE))
        {
            ngx_http_inventory_admin_problem(v, "reservation %.24s: the "
                                             "expiry index disagrees with "
                                             "its state", res->id);
        }

        if (res->state != NGX_HTTP_INVENTORY_RES_ACTIVE) {
            continue;
        }

        active++;

        for (i = 0; i < res->nlines; i++) {
            if (n == cap) {
                cap *= 2;
                h = realloc(holds, cap * sizeof(ngx_http_inventory_hold_t));

                if (h == NULL) {
                    ngx_http_inventory_admin_problem(v, "out of memory");
                    goto done;
                }

                holds = h;
            }

            holds[n].len = ngx_http_inventory_item_key(holds[n].key,
                                                    res->lines[i].sku,
                                                    res->lines[i].location);
            holds[n].quantity = res->lines[i].quantity;
            n++;
        }
    }

    mdb_cursor_close(cur);

    indexed = ngx_http_inventory_admin_count(v->txn, v->st->res_expiry);

    if (indexed != active) {
        ngx_http_inventory_admin_problem(v, "%llu active reservations, %llu "
                                         "in the expiry index",
                                         (unsigned long long) active,
                                         (unsigned long long) indexed);
    }

    /* walk the held lines and the items together, both in key order */
    qsort(holds, n, sizeof(ngx_http_inventory_hold_t),
          ngx_http_inventory_hold_cmp);

    k = 0;
    mdb_cursor_open(v->txn, v->st->items, &cur);

    for (rc = mdb_cursor_get(cur, &key, &val, MDB_FIRST);
         rc == 0;
         rc = mdb_cursor_get(cur, &key, &val, MDB_NEXT))
    {
        ngx_http_inventory_hold_t  probe;

        if (key.mv_size > NGX_HTTP_INVENTORY_KEY_MAX
            || ngx_http_inventory_item_key_split(key.mv_data, key.mv_size,
                                                 &sku, &location) != 0
            || ngx_http_inventory_item_decode(val.mv_data, val.mv_size,
                                              &item) != 0)
        {
            continue;
        }

        memcpy(probe.key, key.mv_data, key.mv_size);
        probe.len = key.mv_size;

        /* lines on items that do not exist */
        while (k < n && ngx_http_inventory_hold_cmp(&holds[k], &probe) < 0) {
            ngx_http_inventory_admin_problem(v, "an active reservation holds "
                                             "stock of an unknown item");
            k++;
        }

        sum = 0;

        while (k < n && ngx_http_inventory_hold_cmp(&holds[k], &probe) == 0) {
            sum += holds[k++].quantity;
        }

        if (sum != item.reserved) {
            ngx_http_inventory_admin_problem(v, "%.*s at %.*s: reserved %lld, "
                                        "active reservations hold %lld",
                                        (int) sku.len, sku.data,
                                        (int) location.len, location.data,
                                        (long long) item.reserved,
                                        (long long) sum);
        }
    }

done:

    mdb_cursor_close(cur);
    free(holds);
    free(res);
}


/*
 * Recomputes items, the item event index and the low-stock index from the
 * log, in one write transaction: writers wait meanwhile, readers see the
 * old state until it commits.
 */

static int
ngx_http_inventory_admin_rebuild(ngx_http_inventory_store_t *st, int force)
{
    int                         rc, readers;
    uint64_t                    events;
    MDB_txn                    *txn;
    MDB_val                     key, val, ikey, ival;
    MDB_cursor                 *cur;
    unsigned char               kbuf[NGX_HTTP_INVENTORY_KEY_MAX];
    unsigned char               rec[NGX_HTTP_INVENTORY_INDEX_RECORD_LEN];
    ngx_http_inventory_str_t    sku, location;
    ngx_http_inventory_item_t   item;
    ngx_http_inventory_event_t  ev;

    readers = ngx_http_inventory_admin_readers(st);

    if (readers > 0 && !force) {
        fprintf(stderr, "rebuild: the store is in use (%d readers, e.g. a "
                        "running nginx); stop it, or pass --take-write-lock\n",
                readers);
        return 2;
    }

    rc = mdb_txn_begin(st->env, NULL, 0, &txn);
    if (rc != 0) {
        fprintf(stderr, "rebuild: %s\n", mdb_strerror(rc));
        return 2;
    }

    if ((rc = mdb_drop(txn, st->items, 0)) != 0
        || (rc = mdb_drop(txn, st->item_events, 0)) != 0
        || (rc = mdb_drop(txn, st->low_stock, 0)) != 0
        || (rc = mdb_cursor_open(txn, st->log, &cur)) != 0)
    {
        goto failed;
    }

    events = 0;

    for (rc = mdb_cursor_get(cur, &key, &val, MDB_FIRST);
         rc == 0;
         rc = mdb_cursor_get(cur, &key, &val, MDB_NEXT))
    {
        if (key.mv_size != 8
            || ngx_http_inventory_event_decode(val.mv_data, val.mv_size, &ev)
               != 0)
        {
            fprintf(stderr, "rebuild: the log has an unreadable event\n");
            rc = MDB_CORRUPTED;
            break;
        }

        ikey.mv_data = kbuf;
        ikey.mv_size = ngx_http_inventory_item_key(kbuf, ev.sku,
                                                   ev.location);

        rc = mdb_get(txn, st->items, &ikey, &ival);

        if (rc == MDB_NOTFOUND) {
            memset(&item, 0, sizeof(item));

        } else if (rc != 0
                   || ngx_http_inventory_item_decode(ival.mv_data,
                                                     ival.mv_size, &item) != 0)
        {
            rc = rc ? rc : MDB_CORRUPTED;
            break;
        }

        if (ngx_http_inventory_event_apply(&item, &ev) != 0) {
            fprintf(stderr, "rebuild: event %llu does not apply to its "
                            "item\n",
                    (unsigned long long) ngx_http_inventory_get_u64(
                                                              key.mv_data));
            rc = MDB_CORRUPTED;
            break;
        }

        ngx_http_inventory_item_encode(rec, &item);
        ival.mv_data = rec;
        ival.mv_size = NGX_HTTP_INVENTORY_ITEM_RECORD_LEN;

        rc = mdb_put(txn, st->items, &ikey, &ival, 0);
        if (rc != 0) {
            break;
        }

        memcpy(rec, key.mv_data, 8);
        ngx_http_inventory_item_encode(rec + 8, &item);
        ikey.mv_size = ngx_http_inventory_item_event_key(kbuf, ev.sku,
                                                         ev.location,
                                                         ev.version);
        ival.mv_size = NGX_HTTP_INVENTORY_INDEX_RECORD_LEN;

        rc = mdb_put(txn, st->item_events, &ikey, &ival, 0);
        if (rc != 0) {
            break;
        }

        events++;
    }

    mdb_cursor_close(cur);

    if (rc != MDB_NOTFOUND) {
        goto failed;
    }

    /* the low-stock index from the final items */
    rc = mdb_cursor_open(txn, st->items, &cur);
    if (rc != 0) {
        goto failed;
    }

    for (rc = mdb_cursor_get(cur, &key, &val, MDB_FIRST);
         rc == 0;
         rc = mdb_cursor_get(cur, &key, &val, MDB_NEXT))
    {
        if (ngx_http_inventory_item_key_split(key.mv_data, key.mv_size, &sku,
                                              &location) != 0
            || ngx_http_inventory_item_decode(val.mv_data, val.mv_size,
                                              &item) != 0)
        {
            rc = MDB_CORRUPTED;
            break;
        }

        if (!ngx_http_inventory_low_stock(&item)) {
            continue;
        }

        ikey.mv_data = kbuf;
        ikey.mv_size = ngx_http_inventory_low_key(kbuf, sku, location);
        ival.mv_data = NULL;
        ival.mv_size = 0;

        rc = mdb_put(txn, st->low_stock, &ikey, &ival, 0);
        if (rc != 0) {
            break;
        }
    }

    mdb_cursor_close(cur);

    if (rc != MDB_NOTFOUND) {
        goto failed;
    }

    rc = mdb_txn_commit(txn);
    if (rc != 0) {
        fprintf(stderr, "rebuild: %s\n", mdb_strerror(rc));
        return 2;
    }

    printf("rebuild: ok, %llu events replayed\n",
           (unsigned long long) events);

    return 0;

failed:

    mdb_txn_abort(txn);
    fprintf(stderr, "rebuild: %s; nothing was changed\n", mdb_strerror(rc));

    return 2;
}


/* the log as the feed renders it, one event a line */

static int
ngx_http_inventory_admin_dump(ngx_http_inventory_store_t *st, uint64_t after)
{
    int  rc;

    rc = ngx_http_inventory_store_read_begin(st);

    if (rc == 0) {
        rc = ngx_http_inventory_store_log(st, after, SIZE_MAX,
                                          ngx_http_inventory_admin_event,
                                          stdout);
        ngx_http_inventory_store_read_end(st);
    }

    if (rc != 0) {
        fprintf(stderr, "dump: %s\n", mdb_strerror(rc));
        return 2;
    }

    return fflush(stdout) == 0 ? 0 : 2;
}


static int
ngx_http_inventory_admin_event(void *ctx, const ngx_http_inventory_event_t *ev)
{
    yajl_gen  g;

    g = yajl_gen_alloc(NULL);
    if (g == NULL) {
        return ENOMEM;
    }

    yajl_gen_config(g, yajl_gen_print_callback,
                    ngx_http_inventory_admin_print, ctx);
    ngx_http_inventory_render_event(g, ev);
    yajl_gen_free(g);

    return fputc('\n', ctx) == EOF ? EIO : 0;
}


static void
ngx_http_inventory_admin_print(void *ctx, const char *s, size_t len)
{
    fwrite(s, 1, len, ctx);
}


static int
ngx_http_inventory_admin_stats(ngx_http_inventory_store_t *st)
{
    int                              rc, readers;
    MDB_txn                         *txn;
    ngx_http_inventory_store_stat_t  stat;

    /* before this tool takes reader slots of its own */
    readers = ngx_http_inventory_admin_readers(st);

    rc = ngx_http_inventory_store_stat(st, &stat);
    if (rc == 0) {
        rc = mdb_txn_begin(st->env, NULL, MDB_RDONLY, &txn);
    }

    if (rc != 0) {
        fprintf(stderr, "stats: %s\n", mdb_strerror(rc));
        return 2;
    }

    printf("{\"last_seq\":%llu,\"events\":%llu,\"items\":%llu,"
           "\"reservations\":%llu,\"active_reservations\":%llu,"
           "\"low_stock\":%llu,\"idempotency_keys\":%llu,"
           "\"map_size\":%llu,\"used\":%llu,\"readers\":%d}\n",
           (unsigned long long) stat.last_seq,
           (unsigned long long) ngx_http_inventory_admin_count(txn, st->log),
           (unsigned long long) ngx_http_inventory_admin_count(txn,
                                                              st->items),
           (unsigned long long) ngx_http_inventory_admin_count(txn,
                                                         st->reservations),
           (unsigned long long) ngx_http_inventory_admin_count(txn,
                                                           st->res_expiry),
           (unsigned long long) ngx_http_inventory_admin_count(txn,
                                                           st->low_stock),
           (unsigned long long) ngx_http_inventory_admin_count(txn,
                                                           st->idempotency),
           (unsigned long long) stat.map_size,
           (unsigned long long) stat.used, readers);

    mdb_txn_abort(txn);

    return 0;
}


/* reader slots held by live processes: a running nginx holds some */

static int
ngx_http_inventory_admin_readers(ngx_http_inventory_store_t *st)
{
    int  dead;

    (void) mdb_reader_check(st->env, &dead);

    return (int) ngx_http_inventory_store_readers(st);
}


static uint64_t
ngx_http_inventory_admin_count(MDB_txn *txn, MDB_dbi dbi)
{
    MDB_stat  ms;

    if (mdb_stat(txn, dbi, &ms) != 0) {
        return 0;
    }

    return ms.ms_entries;
}
