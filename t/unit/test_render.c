/* Every body the module writes, as render.c writes it. */

#include <stdlib.h>
#include <string.h>

#include "tap.h"
#include "helpers.h"
#include "ngx_http_inventory_render.h"


static int body_is(ngx_http_inventory_buf_t *b, const char *want);
static void *failing_alloc(void *ctx, size_t size);


/* compares and frees a heap buffer */

static int
body_is(ngx_http_inventory_buf_t *b, const char *want)
{
    int  same;

    same = !b->failed && b->len == strlen(want)
           && memcmp(b->data, want, b->len) == 0;

    if (!same) {
        printf("#   got  %.*s\n#   want %s\n", (int) b->len,
               b->data ? (char *) b->data : "", want);
    }

    free(b->data);

    return same;
}


static void *
failing_alloc(void *ctx, size_t size)
{
    (void) ctx;
    (void) size;

    return NULL;
}


static void
test_render_item(void)
{
    yajl_gen                   g;
    ngx_http_inventory_buf_t   b;
    ngx_http_inventory_slot_t  slot;

    memset(&slot, 0, sizeof(slot));
    slot.sku = S("A-1");
    slot.location = S("store-7");
    slot.item.on_hand = 120;
    slot.item.reserved = 5;
    slot.item.min_level = 10;
    slot.item.version = 42;
    slot.item.updated_at = 1795341600123ULL;

    slot.item.damaged = 2;
    slot.item.quality_control = 3;
    slot.item.safety_stock = 10;
    slot.item.incoming = 40;
    slot.item.seq = 1043;

    ngx_http_inventory_buf_init(&b, NULL, NULL);
    ngx_http_inventory_render_item_body(&b, &slot);
    ok(body_is(&b, "{\"sku\":\"A-1\",\"location\":\"store-7\",\"on_hand\":120,"
                   "\"reserved\":5,\"damaged\":2,\"quality_control\":3,"
                   "\"safety_stock\":10,\"incoming\":40,"
                   "\"backorder_limit\":0,\"available\":100,"
                   "\"min_level\":10,\"low_stock\":false,\"seq\":1043,"
                   "\"version\":42,"
                   "\"updated_at\":\"2026-11-22T10:00:00.123Z\"}"),
       "render: an item as the API shows it");

    ngx_http_inventory_buf_init(&b, NULL, NULL);
    g = ngx_http_inventory_gen_open(&b);
    yajl_gen_map_open(g);
    ngx_http_inventory_gen_key_int(g, "a", 0);
    ngx_http_inventory_gen_key_int(g, "b", -1000000000);
    ngx_http_inventory_gen_key_int(g, "c", INT64_MIN);
    ngx_http_inventory_gen_key_int(g, "d", 9007199254740991LL);
    yajl_gen_map_close(g);
    yajl_gen_free(g);
    ok(body_is(&b, "{\"a\":0,\"b\":-1000000000,"
                   "\"c\":-9223372036854775808,\"d\":9007199254740991}"),
       "render: integers exactly");
}


static void
test_render_problem(void)
{
    ngx_http_inventory_buf_t      b;
    ngx_http_inventory_errors_t   errs;
    ngx_http_inventory_problem_t  p;

    errs.n = 0;
    ngx_http_inventory_error_add(&errs, "x\"\n", 3, "unknown member");
    memset(&p, 0, sizeof(p));
    p.code = NGX_HTTP_INVENTORY_P_INVALID_REQUEST;
    p.detail = "bad";
    p.errors = &errs;

    ngx_http_inventory_buf_init(&b, NULL, NULL);
    ngx_http_inventory_render_problem_body(&b, &p);
    ok(body_is(&b, "{\"type\":\"urn:inventory:problem:invalid-request\","
                   "\"title\":\"The request is invalid\",\"status\":400,"
                   "\"detail\":\"bad\",\"code\":\"invalid-request\","
                   "\"errors\":[{\"field\":\"x\\\"\\n\","
                   "\"message\":\"unknown member\"}]}"),
       "render: a problem, its fields escaped");
    is_int(ngx_http_inventory_problem_status(
               NGX_HTTP_INVENTORY_P_STORAGE_FULL), 507, "storage-full is 507");
}


static void
test_render_reads(void)
{
    ngx_http_inventory_buf_t     b;
    ngx_http_inventory_row_t     rows[2];
    ngx_http_inventory_health_t  h;

    memset(rows, 0, sizeof(rows));
    rows[0].location = S("s1");
    rows[0].item.on_hand = 10;
    rows[0].item.reserved = 3;
    rows[0].item.version = 1;
    rows[1].location = S("s2");
    rows[1].item.on_hand = 5;
    rows[1].item.min_level = 6;
    rows[1].item.version = 2;

    ngx_http_inventory_buf_init(&b, NULL, NULL);
    ngx_http_inventory_render_aggregate(&b, S("A"), rows, 2);
    ok(body_is(&b, "{\"sku\":\"A\",\"on_hand\":15,\"reserved\":3,"
                   "\"available\":12,\"locations\":["
                   "{\"sku\":\"A\",\"location\":\"s1\",\"on_hand\":10,"
                   "\"reserved\":3,\"damaged\":0,\"quality_control\":0,"
                   "\"safety_stock\":0,\"incoming\":0,\"backorder_limit\":0,"
                   "\"available\":7,\"min_level\":0,"
                   "\"low_stock\":false,\"seq\":0,\"version\":1,"
                   "\"updated_at\":\"1970-01-01T00:00:00.000Z\"},"
                   "{\"sku\":\"A\",\"location\":\"s2\",\"on_hand\":5,"
                   "\"reserved\":0,\"damaged\":0,\"quality_control\":0,"
                   "\"safety_stock\":0,\"incoming\":0,\"backorder_limit\":0,"
                   "\"available\":5,\"min_level\":6,"
                   "\"low_stock\":true,\"seq\":0,\"version\":2,"
                   "\"updated_at\":\"1970-01-01T00:00:00.000Z\"}]}"),
       "render: an aggregate sums its locations");

    memset(&h, 0, sizeof(h));
    h.map_size = 1048576;
    h.used = 32768;
    h.last_seq = 7;
    h.readers = 3;
    h.max_readers = 256;
    h.sync = 1;
    h.role = "primary";
    strcpy(h.store_id, "00112233445566778899aabbccddeeff");
    h.epoch = 1;
    h.followers = 2;
    h.sync_replicas = 1;

    ngx_http_inventory_buf_init(&b, NULL, NULL);
    ngx_http_inventory_render_health(&b, &h);
    ok(body_is(&b, "{\"status\":\"ok\",\"role\":\"primary\","
                   "\"store_id\":\"00112233445566778899aabbccddeeff\","
                   "\"epoch\":1,\"followers\":2,\"sync_replicas\":1,"
                   "\"store\":{\"map_size\":1048576,"
                   "\"used\":32768,\"last_seq\":7,\"readers\":3,"
                   "\"max_readers\":256,\"sync\":true}}"),
       "render: health");

    h.role = "follower";
    h.followers = 0;
    h.sync_replicas = 0;
    h.primary = "http://10.0.0.1:8080/replication/";
    h.primary_len = strlen(h.primary);
    h.connected = 1;
    h.applied_seq = 7;
    h.primary_seq = 9;
    h.lag_ms = 12;

    ngx_http_inventory_buf_init(&b, NULL, NULL);
    ngx_http_inventory_render_health(&b, &h);
    ok(body_is(&b, "{\"status\":\"ok\",\"role\":\"follower\","
                   "\"store_id\":\"00112233445566778899aabbccddeeff\","
                   "\"epoch\":1,\"followers\":0,\"sync_replicas\":0,"
                   "\"store\":{\"map_size\":1048576,"
                   "\"used\":32768,\"last_seq\":7,\"readers\":3,"
                   "\"max_readers\":256,\"sync\":true},"
                   "\"replication\":{\"primary\":"
                   "\"http://10.0.0.1:8080/replication/\","
                   "\"connected\":true,\"applied_seq\":7,"
                   "\"primary_seq\":9,\"lag_ms\":12}}"),
       "render: a follower's health");

    {
        ngx_http_inventory_count_t  counts[] = {
            { "last_seq", 7, NULL }, { "events", 7, NULL },
            { "readers", 0, NULL }, { "role", 0, "primary" }
        };

        ngx_http_inventory_buf_init(&b, NULL, NULL);
        ngx_http_inventory_render_counts(&b, counts, 3);
        ok(body_is(&b, "{\"last_seq\":7,\"events\":7,\"readers\":0}"),
           "render: counts, as inventory-admin stats prints them");

        ngx_http_inventory_buf_init(&b, NULL, NULL);
        ngx_http_inventory_render_counts(&b, counts, 4);
        ok(body_is(&b, "{\"last_seq\":7,\"events\":7,\"readers\":0,"
                       "\"role\":\"primary\"}"),
           "render: counts with a text, as inventory-admin info prints them");
    }
}


static void
test_render_pages(void)
{
    ngx_http_inventory_buf_t    b;
    ngx_http_inventory_page_t   pg;
    ngx_http_inventory_item_t   item;
    ngx_http_inventory_event_t  ev;
    static const char           event[] =
        "{\"seq\":9,\"type\":\"StockAdjusted\",\"sku\":\"A\","
        "\"location\":\"s1\",\"version\":2,"
        "\"at\":\"1970-01-01T00:00:01.000Z\","
        "\"data\":{\"delta\":-4,\"state\":\"available\","
        "\"reason\":\"damaged\"}}";
    char                        want[512];

    memset(&ev, 0, sizeof(ev));
    ev.seq = 9;
    ev.version = 2;
    ev.at = 1000;
    ev.type = NGX_HTTP_INVENTORY_EV_STOCK_ADJUSTED;
    ev.sku = S("A");
    ev.location = S("s1");
    ev.delta = -4;
    ev.reason = S("damaged");

    ngx_http_inventory_buf_init(&b, NULL, NULL);
    ngx_http_inventory_render_event_body(&b, &ev);
    ok(body_is(&b, event), "render: an event");

    ngx_http_inventory_buf_init(&b, NULL, NULL);
    ngx_http_inventory_page_open(&pg, &b, "events");
    ngx_http_inventory_page_event(&pg, &ev);
    ngx_http_inventory_page_event(&pg, &ev);
    is_int(pg.count, 2, "page: counts what it holds");
    ngx_http_inventory_page_close_int(&pg, "next_after_version", 1, 2);
    snprintf(want, sizeof(want), "{\"events\":[%s,%s],"
             "\"next_after_version\":2}", event, event);
    ok(body_is(&b, want), "page: events, then where the next page starts");

    ngx_http_inventory_buf_init(&b, NULL, NULL);
    ngx_http_inventory_page_open(&pg, &b, "events");
    ngx_http_inventory_page_close_int(&pg, "next_after_version", 0, 5);
    ok(body_is(&b, "{\"events\":[],\"next_after_version\":null}"),
       "page: empty, and no page follows");

    memset(&item, 0, sizeof(item));
    item.min_level = 1;

    ngx_http_inventory_buf_init(&b, NULL, NULL);
    ngx_http_inventory_page_open(&pg, &b, "items");
    ngx_http_inventory_page_item(&pg, S("B"), S("s2"), &item);
    ngx_http_inventory_page_close_str(&pg, "next_cursor",
                                      (const unsigned char *) "czIAQgA", 7);
    ok(body_is(&b, "{\"items\":[{\"sku\":\"B\",\"location\":\"s2\","
                   "\"on_hand\":0,\"reserved\":0,\"damaged\":0,"
                   "\"quality_control\":0,\"safety_stock\":0,"
                   "\"incoming\":0,\"backorder_limit\":0,\"available\":0,"
                   "\"min_level\":1,\"low_stock\":true,\"seq\":0,"
                   "\"version\":0,"
                   "\"updated_at\":\"1970-01-01T00:00:00.000Z\"}],"
                   "\"next_cursor\":\"czIAQgA\"}"),
       "page: items and a cursor");

    ngx_http_inventory_buf_init(&b, NULL, NULL);
    ngx_http_inventory_page_open(&pg, &b, "items");
    ngx_http_inventory_page_close_str(&pg, "next_cursor", NULL, 0);
    ok(body_is(&b, "{\"items\":[],\"next_cursor\":null}"),
       "page: items, no cursor");

    /* no memory: the body says it failed, and nothing else happens */
    ngx_http_inventory_buf_init(&b, failing_alloc, NULL);
    ngx_http_inventory_page_open(&pg, &b, "events");
    ngx_http_inventory_page_event(&pg, &ev);
    ngx_http_inventory_page_close_int(&pg, "last_seq", 1, 9);
    ok(b.failed && b.len == 0 && pg.count == 0,
       "page: a failed allocation is reported");

    ngx_http_inventory_buf_init(&b, failing_alloc, NULL);
    ngx_http_inventory_render_event_body(&b, &ev);
    ok(b.failed && b.len == 0, "render: a failed allocation is reported");
}


void
test_render(void)
{
    test_render_item();
    test_render_problem();
    test_render_reads();
    test_render_pages();
}
