/*
 * Bodies of reads: a SKU at every location, pages of a list (items,
 * events), many items at once, health, counts, and a planned handover.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ngx_http_inventory_render.h"


typedef struct {
    ngx_http_inventory_str_t         sku;
    const ngx_http_inventory_row_t  *rows;
    size_t                           n;
} ngx_http_inventory_rows_t;


typedef struct {
    const ngx_http_inventory_count_t  *counts;
    size_t                             n;
} ngx_http_inventory_counts_t;


typedef struct {
    const ngx_http_inventory_found_t  *found;
    size_t                             n;
} ngx_http_inventory_query_t;


static void ngx_http_inventory_render_aggregate_cb(yajl_gen g,
    const void *data);
static void ngx_http_inventory_render_health_cb(yajl_gen g,
    const void *data);
static void ngx_http_inventory_render_handover_cb(yajl_gen g,
    const void *data);
static void ngx_http_inventory_render_counts_cb(yajl_gen g,
    const void *data);
static void ngx_http_inventory_render_query_cb(yajl_gen g, const void *data);
static int ngx_http_inventory_page_last(ngx_http_inventory_page_t *pg,
    const char *key);
static void ngx_http_inventory_page_close(ngx_http_inventory_page_t *pg);


void
ngx_http_inventory_render_aggregate(ngx_http_inventory_buf_t *b,
    ngx_http_inventory_str_t sku, const ngx_http_inventory_row_t *rows,
    size_t n)
{
    ngx_http_inventory_rows_t  a;

    a.sku = sku;
    a.rows = rows;
    a.n = n;

    ngx_http_inventory_render_body(b, ngx_http_inventory_render_aggregate_cb,
                                   &a);
}


static void
ngx_http_inventory_render_aggregate_cb(yajl_gen g, const void *data)
{
    const ngx_http_inventory_rows_t  *a = data;

    size_t   i;
    int64_t  on_hand, reserved, available;

    on_hand = 0;
    reserved = 0;
    available = 0;

    /* the sums of the locations' (available may be below zero) */
    for (i = 0; i < a->n; i++) {
        on_hand += a->rows[i].item.on_hand;
        reserved += a->rows[i].item.reserved;
        available += ngx_http_inventory_available(&a->rows[i].item);
    }

    yajl_gen_map_open(g);
    ngx_http_inventory_gen_key_str(g, "sku", a->sku.data, a->sku.len);
    ngx_http_inventory_gen_key_int(g, "on_hand", on_hand);
    ngx_http_inventory_gen_key_int(g, "reserved", reserved);
    ngx_http_inventory_gen_key_int(g, "available", available);
    ngx_http_inventory_gen_str(g, "locations");
    yajl_gen_array_open(g);

    for (i = 0; i < a->n; i++) {
        ngx_http_inventory_render_item(g, a->sku, a->rows[i].location,
                                       &a->rows[i].item);
    }

    yajl_gen_array_close(g);
    yajl_gen_map_close(g);
}


void
ngx_http_inventory_render_handover(ngx_http_inventory_buf_t *b,
    const ngx_http_inventory_handover_t *h)
{
    ngx_http_inventory_render_body(b, ngx_http_inventory_render_handover_cb,
                                   h);
}


static void
ngx_http_inventory_render_handover_cb(yajl_gen g, const void *data)
{
    const ngx_http_inventory_handover_t  *h = data;

    yajl_gen_map_open(g);
    ngx_http_inventory_gen_key_str(g, "handed_over_to", h->name,
                                   h->name_len);
    ngx_http_inventory_gen_key_str(g, "primary", h->primary, h->primary_len);
    ngx_http_inventory_gen_key_int(g, "seq", (int64_t) h->seq);
    yajl_gen_map_close(g);
}


void
ngx_http_inventory_render_health(ngx_http_inventory_buf_t *b,
    const ngx_http_inventory_health_t *h)
{
    ngx_http_inventory_render_body(b, ngx_http_inventory_render_health_cb, h);
}


static void
ngx_http_inventory_render_health_cb(yajl_gen g, const void *data)
{
    const ngx_http_inventory_health_t  *h = data;

    yajl_gen_map_open(g);
    ngx_http_inventory_gen_key_str(g, "status", "ok", sizeof("ok") - 1);
    ngx_http_inventory_gen_key_str(g, "role", h->role, strlen(h->role));
    ngx_http_inventory_gen_key_str(g, "store_id", h->store_id,
                                   strlen(h->store_id));
    ngx_http_inventory_gen_key_int(g, "epoch", (int64_t) h->epoch);
    ngx_http_inventory_gen_key_int(g, "followers", (int64_t) h->followers);
    ngx_http_inventory_gen_key_int(g, "sync_replicas",
                                   (int64_t) h->sync_replicas);
    ngx_http_inventory_gen_str(g, "store");
    yajl_gen_map_open(g);
    ngx_http_inventory_gen_key_int(g, "map_size", (int64_t) h->map_size);
    ngx_http_inventory_gen_key_int(g, "used", (int64_t) h->used);
    ngx_http_inventory_gen_key_int(g, "last_seq", (int64_t) h->last_seq);
    ngx_http_inventory_gen_key_int(g, "readers", h->readers);
    ngx_http_inventory_gen_key_int(g, "max_readers", h->max_readers);
    ngx_http_inventory_gen_str(g, "sync");
    yajl_gen_bool(g, h->sync);
    yajl_gen_map_close(g);

    if (h->primary) {
        ngx_http_inventory_gen_str(g, "replication");
        yajl_gen_map_open(g);
        ngx_http_inventory_gen_key_str(g, "primary", h->primary,
                                       h->primary_len);
        ngx_http_inventory_gen_str(g, "connected");
        yajl_gen_bool(g, h->connected);
        ngx_http_inventory_gen_key_int(g, "applied_seq",
                                       (int64_t) h->applied_seq);
        ngx_http_inventory_gen_key_int(g, "primary_seq",
                                       (int64_t) h->primary_seq);
        ngx_http_inventory_gen_key_int(g, "lag_ms", (int64_t) h->lag_ms);
        yajl_gen_map_close(g);
    }

    yajl_gen_map_close(g);
}


/* {"name": value, ...}: what inventory-admin stats prints */

void
ngx_http_inventory_render_counts(ngx_http_inventory_buf_t *b,
    const ngx_http_inventory_count_t *counts, size_t n)
{
    ngx_http_inventory_counts_t  c;

    c.counts = counts;
    c.n = n;

    ngx_http_inventory_render_body(b, ngx_http_inventory_render_counts_cb, &c);
}


static void
ngx_http_inventory_render_counts_cb(yajl_gen g, const void *data)
{
    const ngx_http_inventory_counts_t  *c = data;

    size_t  i;

    yajl_gen_map_open(g);

    for (i = 0; i < c->n; i++) {
        if (c->counts[i].text) {
            ngx_http_inventory_gen_key_str(g, c->counts[i].name,
                                           c->counts[i].text,
                                           strlen(c->counts[i].text));
            continue;
        }

        ngx_http_inventory_gen_key_int(g, c->counts[i].name,
                                       (int64_t) c->counts[i].value);
    }

    yajl_gen_map_close(g);
}


void
ngx_http_inventory_page_open(ngx_http_inventory_page_t *pg,
    ngx_http_inventory_buf_t *b, const char *list)
{
    pg->count = 0;
    pg->gen = ngx_http_inventory_gen_open(b);

    if (pg->gen == NULL) {
        b->failed = 1;
        return;
    }

    yajl_gen_map_open(pg->gen);
    ngx_http_inventory_gen_str(pg->gen, list);
    yajl_gen_array_open(pg->gen);
}


void
ngx_http_inventory_page_item(ngx_http_inventory_page_t *pg,
    ngx_http_inventory_str_t sku, ngx_http_inventory_str_t location,
    const ngx_http_inventory_item_t *item)
{
    if (pg->gen) {
        ngx_http_inventory_render_item(pg->gen, sku, location, item);
        pg->count++;
    }
}


void
ngx_http_inventory_page_event(ngx_http_inventory_page_t *pg,
    const ngx_http_inventory_event_t *ev)
{
    if (pg->gen) {
        ngx_http_inventory_render_event(pg->gen, ev);
        pg->count++;
    }
}


/* the list's end, then key: value, or null when has is 0 */

void
ngx_http_inventory_page_close_int(ngx_http_inventory_page_t *pg,
    const char *key, int has, uint64_t value)
{
    if (!ngx_http_inventory_page_last(pg, key)) {
        return;
    }

    if (has) {
        yajl_gen_integer(pg->gen, (long long) value);

    } else {
        yajl_gen_null(pg->gen);
    }

    ngx_http_inventory_page_close(pg);
}


/* the list's end, then key: the string, or null when s is NULL */

void
ngx_http_inventory_page_close_str(ngx_http_inventory_page_t *pg,
    const char *key, const unsigned char *s, size_t len)
{
    if (!ngx_http_inventory_page_last(pg, key)) {
        return;
    }

    if (s) {
        yajl_gen_string(pg->gen, s, len);

    } else {
        yajl_gen_null(pg->gen);
    }

    ngx_http_inventory_page_close(pg);
}


/* ends the list and opens the last member; 0 if the page failed */

static int
ngx_http_inventory_page_last(ngx_http_inventory_page_t *pg, const char *key)
{
    if (pg->gen == NULL) {
        return 0;
    }

    yajl_gen_array_close(pg->gen);
    ngx_http_inventory_gen_str(pg->gen, key);

    return 1;
}


static void
ngx_http_inventory_page_close(ngx_http_inventory_page_t *pg)
{
    yajl_gen_map_close(pg->gen);
    yajl_gen_free(pg->gen);
    pg->gen = NULL;
}


/* the items found, in the order asked, then those not found */

void
ngx_http_inventory_render_query(ngx_http_inventory_buf_t *b,
    const ngx_http_inventory_found_t *found, size_t n)
{
    ngx_http_inventory_query_t  q;

    q.found = found;
    q.n = n;

    ngx_http_inventory_render_body(b, ngx_http_inventory_render_query_cb, &q);
}


static void
ngx_http_inventory_render_query_cb(yajl_gen g, const void *data)
{
    const ngx_http_inventory_query_t  *q = data;

    size_t                             i;
    const ngx_http_inventory_found_t  *f;

    yajl_gen_map_open(g);
    ngx_http_inventory_gen_str(g, "items");
    yajl_gen_array_open(g);

    for (i = 0; i < q->n; i++) {
        f = &q->found[i];

        if (f->found) {
            ngx_http_inventory_render_item(g, f->sku, f->location, &f->item);
        }
    }

    yajl_gen_array_close(g);
    ngx_http_inventory_gen_str(g, "missing");
    yajl_gen_array_open(g);

    for (i = 0; i < q->n; i++) {
        f = &q->found[i];

        if (!f->found) {
            yajl_gen_map_open(g);
            ngx_http_inventory_gen_key_str(g, "sku", f->sku.data, f->sku.len);
            ngx_http_inventory_gen_key_str(g, "location", f->location.data,
                                           f->location.len);
            yajl_gen_map_close(g);
        }
    }

    yajl_gen_array_close(g);
    yajl_gen_map_close(g);
}
