/*
 * The store's checker (inventory-admin verify), in one read transaction:
 * replays every item's events and compares them with the projections and
 * the indexes; whatever cannot be read is a problem too.  Each problem goes
 * to the caller's handler as a line of text; nothing is written.
 */

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ngx_http_inventory_store_db.h"


#define NGX_HTTP_INVENTORY_VERIFY_LINE  512


typedef struct {
    ngx_http_inventory_store_t  *st;
    MDB_txn                     *txn;
    ngx_http_inventory_problem_pt  handler;
    void                        *ctx;
    unsigned long                problems;
} ngx_http_inventory_verify_t;


static void ngx_http_inventory_verify_report(ngx_http_inventory_verify_t *v,
    const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static MDB_cursor *ngx_http_inventory_verify_open(
    ngx_http_inventory_verify_t *v, MDB_dbi dbi, const char *what);
static void ngx_http_inventory_verify_close(ngx_http_inventory_verify_t *v,
    MDB_cursor *cur, int rc, const char *what);
static void ngx_http_inventory_verify_log(ngx_http_inventory_verify_t *v,
    uint64_t *events, uint64_t *referenced);
static void ngx_http_inventory_verify_items(ngx_http_inventory_verify_t *v,
    uint64_t *indexed);
static void ngx_http_inventory_verify_item(ngx_http_inventory_verify_t *v,
    ngx_http_inventory_str_t sku, ngx_http_inventory_str_t location,
    const ngx_http_inventory_item_t *stored, uint64_t *indexed);
static void ngx_http_inventory_verify_low_items(
    ngx_http_inventory_verify_t *v);
static void ngx_http_inventory_verify_low_index(
    ngx_http_inventory_verify_t *v);
static void ngx_http_inventory_verify_reservations(
    ngx_http_inventory_verify_t *v);
static void ngx_http_inventory_verify_references(
    ngx_http_inventory_verify_t *v, uint64_t referenced);
static void ngx_http_inventory_verify_changes(ngx_http_inventory_verify_t *v);
static void ngx_http_inventory_verify_indexed(ngx_http_inventory_verify_t *v,
    MDB_dbi dbi, uint64_t n, const char *what, const char *index);
static uint64_t ngx_http_inventory_verify_count(MDB_txn *txn, MDB_dbi dbi);
static int ngx_http_inventory_hold_cmp(const void *one, const void *two);


int
ngx_http_inventory_store_verify(ngx_http_inventory_store_t *st,
    ngx_http_inventory_problem_pt handler, void *ctx, uint64_t *events,
    unsigned long *problems)
{
    int                          rc;
    uint64_t                     indexed, referenced;
    ngx_http_inventory_verify_t  v;

    memset(&v, 0, sizeof(v));
    v.st = st;
    v.handler = handler;
    v.ctx = ctx;
    *events = 0;
    *problems = 0;

    rc = mdb_txn_begin(st->env, NULL, MDB_RDONLY, &v.txn);
    if (rc != 0) {
        return ngx_http_inventory_store_rc(rc);
    }

    ngx_http_inventory_verify_log(&v, events, &referenced);
    ngx_http_inventory_verify_items(&v, &indexed);

    if (indexed != *events) {
        ngx_http_inventory_verify_report(&v, "the log holds %llu events, "
                                         "the item indexes %llu",
                                         (unsigned long long) *events,
                                         (unsigned long long) indexed);
    }

    ngx_http_inventory_verify_low_items(&v);
    ngx_http_inventory_verify_low_index(&v);
    ngx_http_inventory_verify_reservations(&v);
    ngx_http_inventory_verify_references(&v, referenced);
    ngx_http_inventory_verify_changes(&v);

    mdb_txn_abort(v.txn);

    *problems = v.problems;

    return NGX_HTTP_INVENTORY_STORE_OK;
}


static void
ngx_http_inventory_verify_report(ngx_http_inventory_verify_t *v,
    const char *fmt, ...)
{
    char     line[NGX_HTTP_INVENTORY_VERIFY_LINE];
    va_list  args;

    va_start(args, fmt);
    (void) vsnprintf(line, sizeof(line), fmt, args);
    va_end(args);

    v->handler(v->ctx, line);
    v->problems++;
}


/* a cursor on the database, or the problem that there is none */

static MDB_cursor *
ngx_http_inventory_verify_open(ngx_http_inventory_verify_t *v, MDB_dbi dbi,
    const char *what)
{
    MDB_cursor  *cur;

    if (mdb_cursor_open(v->txn, dbi, &cur) != 0) {
        ngx_http_inventory_verify_report(v, "%s cannot be read", what);
        return NULL;
    }

    return cur;
}


/* a walk that stopped before the end did not check the rest */

static void
ngx_http_inventory_verify_close(ngx_http_inventory_verify_t *v,
    MDB_cursor *cur, int rc, const char *what)
{
    mdb_cursor_close(cur);

    if (rc != MDB_NOTFOUND) {
        ngx_http_inventory_verify_report(v, "%s cannot be read to the end: "
                                         "%s", what,
                                         ngx_http_inventory_store_strerror(
                                             ngx_http_inventory_store_rc(rc)));
    }
}


/* seq gap-free from 1, every record readable, time never going back, and
 * every event found in its item's index */

static void
ngx_http_inventory_verify_log(ngx_http_inventory_verify_t *v,
    uint64_t *events, uint64_t *referenced)
{
    int                         rc;
    uint64_t                    seq, at;
    MDB_val                     key, val, ikey, ival;
    MDB_cursor                 *cur;
    unsigned char               kbuf[NGX_HTTP_INVENTORY_REF_KEY_MAX];
    ngx_http_inventory_event_t  ev;

    *events = 0;
    *referenced = 0;
    at = 0;

    cur = ngx_http_inventory_verify_open(v, v->st->log, "the log");
    if (cur == NULL) {
        return;
    }

    for (rc = mdb_cursor_get(cur, &key, &val, MDB_FIRST);
         rc == 0;
         rc = mdb_cursor_get(cur, &key, &val, MDB_NEXT))
    {
        seq = key.mv_size == 8 ? ngx_http_inventory_get_u64(key.mv_data) : 0;

        if (seq != *events + 1) {
            ngx_http_inventory_verify_report(v, "log: seq %llu follows %llu",
                                        (unsigned long long) seq,
                                        (unsigned long long) *events);
        }

        *events = seq;

        if (ngx_http_inventory_event_decode(val.mv_data, val.mv_size, &ev)
            != 0)
        {
            ngx_http_inventory_verify_report(v, "log: event %llu is "
                                             "unreadable",
                                             (unsigned long long) seq);
            continue;
        }

        if (ev.at < at) {
            ngx_http_inventory_verify_report(v, "log: event %llu goes back "
                                             "in time",
                                             (unsigned long long) seq);
        }

        at = ev.at;

        ikey.mv_data = kbuf;
        ikey.mv_size = ngx_http_inventory_item_event_key(kbuf, ev.sku,
                                                         ev.location,
                                                         ev.version);

        if (mdb_get(v->txn, v->st->item_events, &ikey, &ival) != 0
            || ival.mv_size < 8
            || ngx_http_inventory_get_u64(ival.mv_data) != seq)
        {
            ngx_http_inventory_verify_report(v, "log: event %llu (%.*s at "
                                        "%.*s, version %llu) is not indexed",
                                        (unsigned long long) seq,
                                        (int) ev.sku.len, ev.sku.data,
                                        (int) ev.location.len,
                                        ev.location.data,
                                        (unsigned long long) ev.version);
        }

        /* indexed as the write path does: only those one can ask for */
        if (!ngx_http_inventory_reference_valid(ev.reference.data,
                                                ev.reference.len))
        {
            continue;
        }

        (*referenced)++;
        ikey.mv_size = ngx_http_inventory_reference_key(kbuf, ev.reference,
                                                        seq);

        if (mdb_get(v->txn, v->st->references, &ikey, &ival) != 0) {
            ngx_http_inventory_verify_report(v, "log: event %llu is missing "
                                             "from the references index",
                                             (unsigned long long) seq);
        }
    }

    ngx_http_inventory_verify_close(v, cur, rc, "the log");
}


/* the references index holds the events that name one, and no other */

static void
ngx_http_inventory_verify_references(ngx_http_inventory_verify_t *v,
    uint64_t referenced)
{
    uint64_t  n;

    n = ngx_http_inventory_verify_count(v->txn, v->st->references);

    if (n != referenced) {
        ngx_http_inventory_verify_report(v, "the references index holds %llu "
                                         "entries, the log %llu events with "
                                         "a reference",
                                         (unsigned long long) n,
                                         (unsigned long long) referenced);
    }
}


/* the changes index holds each item once, under its latest seq */

static void
ngx_http_inventory_verify_changes(ngx_http_inventory_verify_t *v)
{
    int                        rc;
    uint64_t                   n;
    MDB_val                    key, val, ival;
    MDB_cursor                *cur;
    ngx_http_inventory_item_t  item;

    cur = ngx_http_inventory_verify_open(v, v->st->changes,
                                         "the changes index");
    if (cur == NULL) {
        return;
    }

    for (rc = mdb_cursor_get(cur, &key, &val, MDB_FIRST);
         rc == 0;
         rc = mdb_cursor_get(cur, &key, &val, MDB_NEXT))
    {
        if (key.mv_size != 8
            || mdb_get(v->txn, v->st->items, &val, &ival) != 0
            || ngx_http_inventory_store_item_decode(v->st, v->txn, &val,
                                                    &ival, &item)
               != 0
            || item.seq != ngx_http_inventory_get_u64(key.mv_data))
        {
            ngx_http_inventory_verify_report(v, "changes: the entry of seq "
                                    "%llu names no item whose latest event "
                                    "it is",
                                    key.mv_size == 8
                                    ? (unsigned long long)
                                      ngx_http_inventory_get_u64(key.mv_data)
                                    : 0ULL);
        }
    }

    ngx_http_inventory_verify_close(v, cur, rc, "the changes index");

    n = ngx_http_inventory_verify_count(v->txn, v->st->changes);

    if (n != ngx_http_inventory_verify_count(v->txn, v->st->items)) {
        ngx_http_inventory_verify_report(v, "the changes index holds %llu "
                                  "entries, the items %llu",
                                  (unsigned long long) n,
                                  (unsigned long long)
                                  ngx_http_inventory_verify_count(v->txn,
                                                          v->st->items));
    }
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

    cur = ngx_http_inventory_verify_open(v, v->st->items, "the items");
    if (cur == NULL) {
        return;
    }

    for (rc = mdb_cursor_get(cur, &key, &val, MDB_FIRST);
         rc == 0;
         rc = mdb_cursor_get(cur, &key, &val, MDB_NEXT))
    {
        if (ngx_http_inventory_item_key_split(key.mv_data, key.mv_size, &sku,
                                              &location) != 0
            || ngx_http_inventory_store_item_decode(v->st, v->txn, &key,
                                                    &val, &item)
               != 0)
        {
            ngx_http_inventory_verify_report(v, "items: an unreadable item");
            continue;
        }

        ngx_http_inventory_verify_item(v, sku, location, &item, indexed);
    }

    ngx_http_inventory_verify_close(v, cur, rc, "the items");
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
            || val.mv_size < 8)
        {
            ngx_http_inventory_verify_report(v, "%.*s at %.*s: version %llu "
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
            ngx_http_inventory_verify_report(v, "%.*s at %.*s: version %llu "
                                        "points at a wrong event",
                                        (int) sku.len, sku.data,
                                        (int) location.len, location.data,
                                        (unsigned long long) version);
            return;
        }

        if (low_due
            != (ev.type == NGX_HTTP_INVENTORY_EV_LOW_STOCK_DETECTED))
        {
            ngx_http_inventory_verify_report(v, "%.*s at %.*s: version %llu "
                                        "%s LowStockDetected",
                                        (int) sku.len, sku.data,
                                        (int) location.len, location.data,
                                        (unsigned long long) version,
                                        low_due ? "should be"
                                                : "is an unexpected");
        }

        before = item;
        ev.seq = ngx_http_inventory_get_u64(val.mv_data);

        if (ngx_http_inventory_event_apply(&item, &ev) != 0) {
            ngx_http_inventory_verify_report(v, "%.*s at %.*s: version %llu "
                                        "does not apply",
                                        (int) sku.len, sku.data,
                                        (int) location.len, location.data,
                                        (unsigned long long) version);
            return;
        }

        low_due = ev.type != NGX_HTTP_INVENTORY_EV_LOW_STOCK_DETECTED
                  && ngx_http_inventory_low_stock_detected(&before, &item);

        if (ngx_http_inventory_index_decode(val.mv_data, val.mv_size, &snap)
            != 0
            || memcmp(&snap, &item, sizeof(item)) != 0)
        {
            ngx_http_inventory_verify_report(v, "%.*s at %.*s: the index "
                                        "snapshot of version %llu differs "
                                        "from the replay",
                                        (int) sku.len, sku.data,
                                        (int) location.len, location.data,
                                        (unsigned long long) version);
        }
    }

    if (low_due) {
        ngx_http_inventory_verify_report(v, "%.*s at %.*s: LowStockDetected "
                                    "is missing at the end",
                                    (int) sku.len, sku.data,
                                    (int) location.len, location.data);
    }

    if (memcmp(&item, stored, sizeof(item)) != 0) {
        ngx_http_inventory_verify_report(v, "%.*s at %.*s: the projection "
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
        ngx_http_inventory_verify_report(v, "%.*s at %.*s: the index has "
                                    "events past version %llu",
                                    (int) sku.len, sku.data,
                                    (int) location.len, location.data,
                                    (unsigned long long) stored->version);
    }
}


/* the low-stock index holds every item with low_stock, and no other */

static void
ngx_http_inventory_verify_low_items(ngx_http_inventory_verify_t *v)
{
    int                        rc;
    MDB_val                    key, val, ikey;
    MDB_cursor                *cur;
    unsigned char              kbuf[NGX_HTTP_INVENTORY_KEY_MAX];
    ngx_http_inventory_str_t   sku, location;
    ngx_http_inventory_item_t  item;

    cur = ngx_http_inventory_verify_open(v, v->st->items, "the items");
    if (cur == NULL) {
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
            continue;
        }

        ikey.mv_data = kbuf;
        ikey.mv_size = ngx_http_inventory_low_key(kbuf, sku, location);

        if ((mdb_get(v->txn, v->st->low_stock, &ikey, &val) == 0)
            != ngx_http_inventory_low_stock(&item))
        {
            ngx_http_inventory_verify_report(v, "%.*s at %.*s: the low-stock "
                                        "index disagrees with the item",
                                        (int) sku.len, sku.data,
                                        (int) location.len, location.data);
        }
    }

    ngx_http_inventory_verify_close(v, cur, rc, "the items");
}


/* and every entry of the index is an item */

static void
ngx_http_inventory_verify_low_index(ngx_http_inventory_verify_t *v)
{
    int                        rc;
    MDB_val                    key, val, ikey;
    MDB_cursor                *cur;
    unsigned char              kbuf[NGX_HTTP_INVENTORY_KEY_MAX];
    ngx_http_inventory_str_t   sku, location;

    cur = ngx_http_inventory_verify_open(v, v->st->low_stock,
                                         "the low-stock index");
    if (cur == NULL) {
        return;
    }

    for (rc = mdb_cursor_get(cur, &key, &val, MDB_FIRST);
         rc == 0;
         rc = mdb_cursor_get(cur, &key, &val, MDB_NEXT))
    {
        if (ngx_http_inventory_item_key_split(key.mv_data, key.mv_size,
                                              &location, &sku) != 0)
        {
            ngx_http_inventory_verify_report(v, "low-stock: a bad key");
            continue;
        }

        ikey.mv_data = kbuf;
        ikey.mv_size = ngx_http_inventory_item_key(kbuf, sku, location);

        if (mdb_get(v->txn, v->st->items, &ikey, &val) != 0) {
            ngx_http_inventory_verify_report(v, "low-stock: %.*s at %.*s is "
                                        "not an item",
                                        (int) sku.len, sku.data,
                                        (int) location.len, location.data);
        }
    }

    ngx_http_inventory_verify_close(v, cur, rc, "the low-stock index");
}


/*
 * Active reservations are in the expiry index and hold what items reserve;
 * ended ones are in the index of ended reservations, under their end.
 */

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
    uint64_t                           active, ended;
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
        ngx_http_inventory_verify_report(v, "out of memory");
        free(res);
        free(holds);
        return;
    }

    active = 0;
    ended = 0;
    n = 0;

    cur = ngx_http_inventory_verify_open(v, v->st->reservations,
                                         "the reservations");
    if (cur == NULL) {
        free(holds);
        free(res);
        return;
    }

    for (rc = mdb_cursor_get(cur, &key, &val, MDB_FIRST);
         rc == 0;
         rc = mdb_cursor_get(cur, &key, &val, MDB_NEXT))
    {
        if (key.mv_size != NGX_HTTP_INVENTORY_RES_ID_LEN
            || ngx_http_inventory_reservation_decode(val.mv_data, val.mv_size,
                                                     key.mv_data, res) != 0)
        {
            ngx_http_inventory_verify_report(v, "reservations: an unreadable "
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
            ngx_http_inventory_verify_report(v, "reservation %.24s: the "
                                             "expiry index disagrees with "
                                             "its state", res->id);
        }

        ekey.mv_size = ngx_http_inventory_expiry_key(ebuf, res->ended_at,
                                                 res->id,
                                                 NGX_HTTP_INVENTORY_RES_ID_LEN);

        if ((mdb_get(v->txn, v->st->res_ended, &ekey, &ival) == 0)
            != (res->state != NGX_HTTP_INVENTORY_RES_ACTIVE))
        {
            ngx_http_inventory_verify_report(v, "reservation %.24s: the "
                                             "index of ended reservations "
                                             "disagrees with its state",
                                             res->id);
        }

        if (res->state != NGX_HTTP_INVENTORY_RES_ACTIVE) {
            ended++;
            continue;
        }

        active++;

        for (i = 0; i < res->nlines; i++) {
            if (n == cap) {
                cap *= 2;
                h = realloc(holds, cap * sizeof(ngx_http_inventory_hold_t));

                if (h == NULL) {
                    ngx_http_inventory_verify_report(v, "out of memory");
                    mdb_cursor_close(cur);
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

    ngx_http_inventory_verify_close(v, cur, rc, "the reservations");

    /* with the above, every entry of each index is a reservation's */
    ngx_http_inventory_verify_indexed(v, v->st->res_expiry, active,
                                      "active reservations",
                                      "the expiry index");
    ngx_http_inventory_verify_indexed(v, v->st->res_ended, ended,
                                      "ended reservations",
                                      "the index of ended ones");

    /* walk the held lines and the items together, both in key order */
    qsort(holds, n, sizeof(ngx_http_inventory_hold_t),
          ngx_http_inventory_hold_cmp);

    k = 0;
    cur = ngx_http_inventory_verify_open(v, v->st->items, "the items");
    if (cur == NULL) {
        goto done;
    }

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
            ngx_http_inventory_verify_report(v, "an active reservation holds "
                                             "stock of an unknown item");
            k++;
        }

        sum = 0;

        while (k < n && ngx_http_inventory_hold_cmp(&holds[k], &probe) == 0) {
            sum += holds[k++].quantity;
        }

        if (sum != item.reserved) {
            ngx_http_inventory_verify_report(v, "%.*s at %.*s: reserved %lld, "
                                        "active reservations hold %lld",
                                        (int) sku.len, sku.data,
                                        (int) location.len, location.data,
                                        (long long) item.reserved,
                                        (long long) sum);
        }
    }

    ngx_http_inventory_verify_close(v, cur, rc, "the items");

    /* lines on items that would sort after the last one there is */
    while (k < n) {
        ngx_http_inventory_verify_report(v, "an active reservation holds "
                                         "stock of an unknown item");
        k++;
    }

done:

    free(holds);
    free(res);
}


/* the index holds as many entries as there are of what it indexes */

static void
ngx_http_inventory_verify_indexed(ngx_http_inventory_verify_t *v,
    MDB_dbi dbi, uint64_t n, const char *what, const char *index)
{
    uint64_t  indexed;

    indexed = ngx_http_inventory_verify_count(v->txn, dbi);

    if (indexed != n) {
        ngx_http_inventory_verify_report(v, "%llu %s, %llu in %s",
                                         (unsigned long long) n, what,
                                         (unsigned long long) indexed,
                                         index);
    }
}


static uint64_t
ngx_http_inventory_verify_count(MDB_txn *txn, MDB_dbi dbi)
{
    MDB_stat  ms;

    if (mdb_stat(txn, dbi, &ms) != 0) {
        return 0;
    }

    return ms.ms_entries;
}
