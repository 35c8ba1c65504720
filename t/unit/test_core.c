/* Domain rules: identifiers, integers, time, decisions and event replay. */

#include <string.h>

#include "tap.h"
#include "helpers.h"
#include "ngx_http_inventory_core.h"


static unsigned
decide(ngx_http_inventory_cmd_t *cmd, ngx_http_inventory_item_t *item,
    int exists, ngx_http_inventory_event_t *ev, size_t *n)
{
    size_t  slot_of[NGX_HTTP_INVENTORY_MAX_EVENTS];

    cmd->sku = S("A-1");
    cmd->location = S("store-7");
    ngx_http_inventory_cmd_slots(cmd);
    cmd->slots[0].item = *item;
    cmd->slots[0].exists = exists;

    return ngx_http_inventory_decide(cmd, ev, n, slot_of);
}


static void
test_ids(void)
{
    char  buf[80];

    ok(ngx_http_inventory_id_valid("A-1.b_c:D", 9), "id: all classes");
    ok(!ngx_http_inventory_id_valid("", 0), "id: empty");
    ok(!ngx_http_inventory_id_valid("a b", 3), "id: space");
    ok(!ngx_http_inventory_id_valid("a/b", 3), "id: slash");
    ok(!ngx_http_inventory_id_valid("a\0b", 3), "id: NUL");
    ok(!ngx_http_inventory_id_valid("\xc3\xa4", 2), "id: UTF-8");
    memset(buf, 'x', sizeof(buf));
    ok(ngx_http_inventory_id_valid(buf, 64), "id: 64 chars");
    ok(!ngx_http_inventory_id_valid(buf, 65), "id: 65 chars");
}


static void
test_ints(void)
{
    int64_t  v;

    is_int(ngx_http_inventory_parse_int("0", 1, &v), 0, "int: 0");
    is_int(v, 0, "int: 0 value");
    is_int(ngx_http_inventory_parse_int("-42", 3, &v), 0, "int: -42");
    is_int(v, -42, "int: -42 value");
    is_int(ngx_http_inventory_parse_int("9223372036854775807", 19, &v), 0,
           "int: INT64_MAX");
    is_int(v, INT64_MAX, "int: INT64_MAX value");
    is_int(ngx_http_inventory_parse_int("-9223372036854775808", 20, &v), 0,
           "int: INT64_MIN");
    ok(v == INT64_MIN, "int: INT64_MIN value");
    is_int(ngx_http_inventory_parse_int("9223372036854775808", 19, &v), -2,
           "int: INT64_MAX + 1 overflows");
    is_int(ngx_http_inventory_parse_int("99999999999999999999999", 23, &v),
           -2, "int: huge overflows");
    is_int(ngx_http_inventory_parse_int("1.5", 3, &v), -1, "int: 1.5");
    is_int(ngx_http_inventory_parse_int("1.0", 3, &v), -1, "int: 1.0");
    is_int(ngx_http_inventory_parse_int("1e3", 3, &v), -1, "int: 1e3");
    is_int(ngx_http_inventory_parse_int("99999999999999999999e1", 22, &v),
           -1, "int: huge with exponent is not an integer");
    is_int(ngx_http_inventory_parse_int("-", 1, &v), -1, "int: -");
    is_int(ngx_http_inventory_parse_int("01", 2, &v), -1, "int: 01");
    is_int(ngx_http_inventory_parse_int("", 0, &v), -1, "int: empty");
}


static void
test_time(void)
{
    char      buf[NGX_HTTP_INVENTORY_TIME_LEN + 1];
    size_t    n;
    uint64_t  ms;

    n = ngx_http_inventory_time_format(0, buf);
    buf[n] = '\0';
    ok(strcmp(buf, "1970-01-01T00:00:00.000Z") == 0, "time: epoch %s", buf);

    n = ngx_http_inventory_time_format(1795341600123ULL, buf);
    buf[n] = '\0';
    ok(strcmp(buf, "2026-11-22T10:00:00.123Z") == 0, "time: %s", buf);

    n = ngx_http_inventory_time_format(951782400000ULL, buf);
    buf[n] = '\0';
    ok(strcmp(buf, "2000-02-29T00:00:00.000Z") == 0, "time: leap day %s",
       buf);

    is_int(ngx_http_inventory_time_parse("2026-11-22T10:00:00.123Z", 24, &ms),
           0, "time parse: ms");
    ok(ms == 1795341600123ULL, "time parse: value");
    is_int(ngx_http_inventory_time_parse("2026-11-22T10:00:00Z", 20, &ms), 0,
           "time parse: no fraction");
    ok(ms == 1795341600000ULL, "time parse: no fraction value");
    is_int(ngx_http_inventory_time_parse("2026-11-22T11:00:00.1239+01:00",
                                         30, &ms),
           0, "time parse: offset, long fraction");
    ok(ms == 1795341600123ULL, "time parse: offset value");
    is_int(ngx_http_inventory_time_parse("2026-02-29T00:00:00Z", 20, &ms), -1,
           "time parse: no 29 Feb 2026");
    is_int(ngx_http_inventory_time_parse("2026-11-22 10:00:00Z", 20, &ms), -1,
           "time parse: space");
    is_int(ngx_http_inventory_time_parse("2026-11-22T10:00:00", 19, &ms), -1,
           "time parse: no zone");
    is_int(ngx_http_inventory_time_parse("1969-12-31T23:59:59Z", 20, &ms), -1,
           "time parse: before 1970");
}


static void
test_decide(void)
{
    size_t                      n;
    unsigned                    rc;
    ngx_http_inventory_cmd_t    cmd;
    ngx_http_inventory_item_t   item, before;
    ngx_http_inventory_event_t  ev[NGX_HTTP_INVENTORY_MAX_EVENTS];

    memset(&item, 0, sizeof(item));

    memset(&cmd, 0, sizeof(cmd));
    cmd.type = NGX_HTTP_INVENTORY_CMD_COUNT;
    cmd.on_hand = 5;
    rc = decide(&cmd, &item, 0, ev, &n);
    is_int(rc, NGX_HTTP_INVENTORY_CREATED, "count new: created");
    is_int(n, 1, "count new: one event");
    is_int(ev[0].type, NGX_HTTP_INVENTORY_EV_STOCK_COUNTED, "StockCounted");
    is_int(ev[0].min_level, 0, "count new: min_level 0");

    item.on_hand = 10;
    item.reserved = 4;
    item.min_level = 3;
    item.version = 7;

    memset(&cmd, 0, sizeof(cmd));
    cmd.type = NGX_HTTP_INVENTORY_CMD_COUNT;
    cmd.on_hand = 3;
    rc = decide(&cmd, &item, 1, ev, &n);
    is_int(rc, NGX_HTTP_INVENTORY_INSUFFICIENT, "count below reserved");
    is_int(cmd.available, 6, "count below reserved: available");
    is_int(n, 0, "count below reserved: no event");

    cmd.on_hand = 4;
    rc = decide(&cmd, &item, 1, ev, &n);
    is_int(rc, NGX_HTTP_INVENTORY_OK, "count to reserved");
    is_int(ev[0].min_level, 3, "count keeps min_level when omitted");

    memset(&cmd, 0, sizeof(cmd));
    cmd.type = NGX_HTTP_INVENTORY_CMD_ADJUST;
    cmd.delta = -7;
    rc = decide(&cmd, &item, 1, ev, &n);
    is_int(rc, NGX_HTTP_INVENTORY_INSUFFICIENT, "adjust below reserved");

    cmd.delta = -6;
    rc = decide(&cmd, &item, 1, ev, &n);
    is_int(rc, NGX_HTTP_INVENTORY_OK, "adjust to reserved");

    cmd.delta = -1;
    rc = decide(&cmd, &item, 0, ev, &n);
    is_int(rc, NGX_HTTP_INVENTORY_NOT_FOUND, "negative adjust on unknown");

    before = item;
    item.on_hand = NGX_HTTP_INVENTORY_QTY_MAX;
    cmd.delta = 1;
    rc = decide(&cmd, &item, 1, ev, &n);
    is_int(rc, NGX_HTTP_INVENTORY_OUT_OF_RANGE, "adjust past 2^53-1");
    item = before;

    cmd.has_if_match = 1;
    cmd.if_match[0] = 6;
    cmd.if_match_n = 1;
    rc = decide(&cmd, &item, 1, ev, &n);
    is_int(rc, NGX_HTTP_INVENTORY_VERSION_MISMATCH, "If-Match mismatch");

    cmd.if_match[1] = 7;
    cmd.if_match_n = 2;
    rc = decide(&cmd, &item, 1, ev, &n);
    is_int(rc, NGX_HTTP_INVENTORY_OK, "If-Match list with the version");

    cmd.if_match_any = 1;
    rc = decide(&cmd, &item, 0, ev, &n);
    is_int(rc, NGX_HTTP_INVENTORY_VERSION_MISMATCH, "If-Match * on unknown");
}


static void
test_apply(void)
{
    ngx_http_inventory_item_t   item, before;
    ngx_http_inventory_event_t  ev;

    memset(&item, 0, sizeof(item));
    memset(&ev, 0, sizeof(ev));

    ev.type = NGX_HTTP_INVENTORY_EV_STOCK_COUNTED;
    ev.version = 1;
    ev.at = 1000;
    ev.on_hand = 5;
    ev.min_level = 10;
    before = item;
    is_int(ngx_http_inventory_event_apply(&item, &ev), 0, "apply counted");
    is_int(item.on_hand, 5, "apply counted: on_hand");
    is_int(item.version, 1, "apply counted: version");
    ok(ngx_http_inventory_low_stock_detected(&before, &item),
       "low stock detected on a new item below min_level");

    ev.version = 3;
    is_int(ngx_http_inventory_event_apply(&item, &ev), -1,
           "apply refuses a version gap");

    memset(&ev, 0, sizeof(ev));
    ev.type = NGX_HTTP_INVENTORY_EV_STOCK_RESERVED;
    ev.version = 2;
    ev.quantity = 5;
    is_int(ngx_http_inventory_event_apply(&item, &ev), 0, "apply reserved");
    is_int(item.reserved, 5, "apply reserved: reserved");

    ev.type = NGX_HTTP_INVENTORY_EV_STOCK_RESERVED;
    ev.version = 3;
    ev.quantity = 1;
    is_int(ngx_http_inventory_event_apply(&item, &ev), -1,
           "apply refuses reserved > on_hand");
    is_int(item.reserved, 5, "refused event leaves the item");

    ev.type = NGX_HTTP_INVENTORY_EV_RESERVATION_COMMITTED;
    ev.quantity = 2;
    is_int(ngx_http_inventory_event_apply(&item, &ev), 0, "apply committed");
    is_int(item.on_hand, 3, "committed: on_hand");
    is_int(item.reserved, 3, "committed: reserved");

    ev.type = NGX_HTTP_INVENTORY_EV_STOCK_ADJUSTED;
    ev.version = 4;
    ev.quantity = 0;
    ev.delta = -1;
    is_int(ngx_http_inventory_event_apply(&item, &ev), -1,
           "apply refuses on_hand < reserved");

    ev.type = 99;
    is_int(ngx_http_inventory_event_apply(&item, &ev), -1,
           "apply refuses an unknown type");
    ok(ngx_http_inventory_event_name(99) == NULL, "no name for type 99");
    ok(strcmp(ngx_http_inventory_event_name(
                  NGX_HTTP_INVENTORY_EV_LOW_STOCK_DETECTED),
              "LowStockDetected") == 0, "event name");
}


void
test_core(void)
{
    test_ids();
    test_ints();
    test_time();
    test_decide();
    test_apply();
}
