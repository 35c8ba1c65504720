/* Domain rules: identifiers, integers, time, decisions and event replay. */

#include <stddef.h>
#include <stdlib.h>
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
    is_int(ngx_http_inventory_time_parse("1969-12-31T23:59:59Z", 20, &ms), -2,
           "time parse: before 1970");
    is_int(ngx_http_inventory_time_parse("2026-11-22T10:00:00+24:00", 25, &ms),
           -1, "time parse: offset hour 24");
    is_int(ngx_http_inventory_time_parse("2026-11-22T10:00:00-23:59", 25, &ms),
           0, "time parse: offset -23:59");
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


void test_core_commands(void);


/* cmd_init() zeroes every byte a calloc would, but the two arrays */

static void
test_cmd_init(void)
{
    size_t                     i, lines, lines_end, slots, slots_end, bad;
    unsigned char             *p;
    ngx_http_inventory_cmd_t  *cmd;

    cmd = malloc(sizeof(ngx_http_inventory_cmd_t));
    if (cmd == NULL) {
        ok(0, "cmd_init: memory");
        return;
    }

    memset(cmd, 0xa5, sizeof(ngx_http_inventory_cmd_t));
    ngx_http_inventory_cmd_init(cmd);

    lines = offsetof(ngx_http_inventory_cmd_t, res.lines);
    lines_end = lines + sizeof(cmd->res.lines);
    slots = offsetof(ngx_http_inventory_cmd_t, slots);
    slots_end = slots + sizeof(cmd->slots);
    p = (unsigned char *) cmd;
    bad = 0;

    for (i = 0; i < sizeof(ngx_http_inventory_cmd_t); i++) {
        if ((i >= lines && i < lines_end) || (i >= slots && i < slots_end)) {
            continue;
        }

        /* padding after res.nlines may keep its bytes */
        if (p[i] != 0
            && !(i >= offsetof(ngx_http_inventory_cmd_t, res.nlines)
                      + sizeof(size_t)
                 && i < offsetof(ngx_http_inventory_cmd_t, now)))
        {
            bad++;
        }
    }

    is_int(bad, 0, "cmd_init: every member but the arrays is zero");
    ok(p[lines] == 0xa5 && p[slots] == 0xa5,
       "cmd_init: the arrays are left as they were");

    free(cmd);
}


void
test_core(void)
{
    test_cmd_init();
    test_ids();
    test_ints();
    test_time();
    test_decide();
    test_apply();
    test_core_commands();
}


static void
test_reserve(void)
{
    size_t                      n, slot_of[NGX_HTTP_INVENTORY_MAX_EVENTS];
    unsigned                    rc;
    ngx_http_inventory_cmd_t   *cmd;
    ngx_http_inventory_event_t  ev[NGX_HTTP_INVENTORY_MAX_EVENTS];
    static ngx_http_inventory_cmd_t  c;

    cmd = &c;
    memset(cmd, 0, sizeof(*cmd));
    cmd->type = NGX_HTTP_INVENTORY_CMD_RESERVE;
    cmd->multi_line = 1;
    cmd->now = 1000;
    cmd->ttl = 500;
    memcpy(cmd->res.id, "r_0123456789012345678901", 24);
    cmd->res.lines[0].sku = S("A");
    cmd->res.lines[0].location = S("x");
    cmd->res.lines[0].quantity = 2;
    cmd->res.lines[1].sku = S("B");
    cmd->res.lines[1].location = S("x");
    cmd->res.lines[1].quantity = 1;
    cmd->res.lines[2].sku = S("A");
    cmd->res.lines[2].location = S("x");
    cmd->res.lines[2].quantity = 2;
    cmd->res.nlines = 3;

    ngx_http_inventory_cmd_slots(cmd);
    is_int(cmd->nslots, 2, "reserve: lines on one item share a slot");
    is_int(cmd->slots[0].demand, 4, "reserve: demand adds up");

    cmd->slots[0].exists = 1;
    cmd->slots[0].item.on_hand = 5;
    cmd->slots[0].item.reserved = 2;
    cmd->slots[1].exists = 1;
    cmd->slots[1].item.on_hand = 0;

    rc = ngx_http_inventory_decide(cmd, ev, &n, slot_of);
    is_int(rc, NGX_HTTP_INVENTORY_INSUFFICIENT, "reserve: short items");
    ok(cmd->slots[0].short_stock && cmd->slots[1].short_stock,
       "reserve: every short item is named");
    is_int(n, 0, "reserve: nothing when short");

    cmd->slots[0].short_stock = 0;
    cmd->slots[1].short_stock = 0;
    cmd->slots[0].item.reserved = 1;
    cmd->slots[1].item.on_hand = 1;
    rc = ngx_http_inventory_decide(cmd, ev, &n, slot_of);
    is_int(rc, NGX_HTTP_INVENTORY_CREATED, "reserve: all lines fit");
    is_int(n, 3, "reserve: one event per line");
    ok(slot_of[0] == 0 && slot_of[1] == 1 && slot_of[2] == 0,
       "reserve: events point at their items");
    ok(ev[2].type == NGX_HTTP_INVENTORY_EV_STOCK_RESERVED
       && ev[2].quantity == 2 && ev[2].reservation_id.len == 24,
       "reserve: StockReserved with id and quantity");
    is_int(cmd->res.expires_at, 1500, "reserve: expires after the ttl");

    cmd->slots[1].exists = 0;
    rc = ngx_http_inventory_decide(cmd, ev, &n, slot_of);
    is_int(rc, NGX_HTTP_INVENTORY_NOT_FOUND, "reserve: unknown item");
    is_int(cmd->failed_slot, 1, "reserve: names the unknown item");

    /* the end of the reservation */
    cmd->slots[1].exists = 1;
    cmd->type = NGX_HTTP_INVENTORY_CMD_COMMIT;
    cmd->res.state = NGX_HTTP_INVENTORY_RES_ACTIVE;
    cmd->now = 1499;
    rc = ngx_http_inventory_decide(cmd, ev, &n, slot_of);
    is_int(rc, NGX_HTTP_INVENTORY_OK, "commit before expiry");
    ok(n == 3 && ev[0].type == NGX_HTTP_INVENTORY_EV_RESERVATION_COMMITTED,
       "commit: one event per line");
    is_int(cmd->res.state, NGX_HTTP_INVENTORY_RES_COMMITTED, "committed");

    rc = ngx_http_inventory_decide(cmd, ev, &n, slot_of);
    is_int(rc, NGX_HTTP_INVENTORY_NOT_ACTIVE, "no second commit");

    cmd->res.state = NGX_HTTP_INVENTORY_RES_ACTIVE;
    cmd->type = NGX_HTTP_INVENTORY_CMD_RELEASE;
    cmd->now = 1500;
    rc = ngx_http_inventory_decide(cmd, ev, &n, slot_of);
    is_int(rc, NGX_HTTP_INVENTORY_NOT_ACTIVE, "no release past expires_at");

    cmd->type = NGX_HTTP_INVENTORY_CMD_EXPIRE;
    cmd->now = 1499;
    rc = ngx_http_inventory_decide(cmd, ev, &n, slot_of);
    is_int(rc, NGX_HTTP_INVENTORY_NOT_ACTIVE, "no expiry before its time");

    cmd->now = 1500;
    rc = ngx_http_inventory_decide(cmd, ev, &n, slot_of);
    is_int(rc, NGX_HTTP_INVENTORY_OK, "expiry at its time");
    ok(ev[1].type == NGX_HTTP_INVENTORY_EV_RESERVATION_EXPIRED,
       "ReservationExpired");
    is_int(cmd->res.state, NGX_HTTP_INVENTORY_RES_EXPIRED, "expired");
}


static void
test_transfer(void)
{
    size_t                      n, slot_of[NGX_HTTP_INVENTORY_MAX_EVENTS];
    unsigned                    rc;
    ngx_http_inventory_event_t  ev[NGX_HTTP_INVENTORY_MAX_EVENTS];
    static ngx_http_inventory_cmd_t  cmd;

    memset(&cmd, 0, sizeof(cmd));
    cmd.type = NGX_HTTP_INVENTORY_CMD_TRANSFER;
    cmd.sku = S("A");
    cmd.location = S("x");
    cmd.to = S("y");
    cmd.quantity = 3;
    ngx_http_inventory_cmd_slots(&cmd);
    is_int(cmd.nslots, 2, "transfer: two items");

    rc = ngx_http_inventory_decide(&cmd, ev, &n, slot_of);
    is_int(rc, NGX_HTTP_INVENTORY_NOT_FOUND, "transfer from nowhere");

    cmd.slots[0].exists = 1;
    cmd.slots[0].item.on_hand = 5;
    cmd.slots[0].item.reserved = 3;
    rc = ngx_http_inventory_decide(&cmd, ev, &n, slot_of);
    is_int(rc, NGX_HTTP_INVENTORY_INSUFFICIENT, "reserved stock stays");
    is_int(cmd.available, 2, "transfer: available reported");

    cmd.slots[0].item.reserved = 2;
    rc = ngx_http_inventory_decide(&cmd, ev, &n, slot_of);
    is_int(rc, NGX_HTTP_INVENTORY_OK, "transfer");
    ok(n == 2 && ev[0].type == NGX_HTTP_INVENTORY_EV_TRANSFERRED_OUT
       && ev[1].type == NGX_HTTP_INVENTORY_EV_TRANSFERRED_IN
       && ev[0].other_location.len == 1 && ev[0].other_location.data[0] == 'y'
       && ev[1].other_location.data[0] == 'x' && slot_of[1] == 1,
       "transfer: out of one, into the other");
}


void
test_core_commands(void)
{
    char  id[NGX_HTTP_INVENTORY_RES_ID_LEN], id2[NGX_HTTP_INVENTORY_RES_ID_LEN];
    char  id3[NGX_HTTP_INVENTORY_RES_ID_LEN];

    test_reserve();
    test_transfer();

    ok(ngx_http_inventory_reservation_id(id, 1795000000000) == 0
       && ngx_http_inventory_reservation_id(id2, 1795000000000) == 0
       && id[0] == 'r' && id[1] == '_' && memcmp(id, id2, sizeof(id)) != 0,
       "reservation ids: r_ prefix, not repeated");

    ok(memcmp(id, id2, 10) == 0 && memcmp(id, "r_0VbK14RE", 10) == 0,
       "reservation ids: the same ms gives the same time digits");

    ok(ngx_http_inventory_reservation_id(id3, 1795000000001) == 0
       && memcmp(id3, id, 10) > 0 && memcmp(id3, id2, 10) > 0,
       "reservation ids sort by creation time");
}
