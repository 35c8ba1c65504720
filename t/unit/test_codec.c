/* Key and record encoding. */

#include <string.h>

#include "tap.h"
#include "helpers.h"
#include "ngx_http_inventory_codec.h"


static int
keycmp(const char *sku1, const char *loc1, const char *sku2,
    const char *loc2)
{
    int            c;
    size_t         n1, n2;
    unsigned char  a[NGX_HTTP_INVENTORY_KEY_MAX], b[NGX_HTTP_INVENTORY_KEY_MAX];

    n1 = ngx_http_inventory_item_key(a, S(sku1), S(loc1));
    n2 = ngx_http_inventory_item_key(b, S(sku2), S(loc2));
    c = memcmp(a, b, n1 < n2 ? n1 : n2);

    return c ? c : (int) n1 - (int) n2;
}


void
test_codec(void)
{
    size_t                      n;
    unsigned char               buf[NGX_HTTP_INVENTORY_EVENT_RECORD_MAX];
    unsigned char               k1[NGX_HTTP_INVENTORY_KEY_MAX];
    unsigned char               k2[NGX_HTTP_INVENTORY_KEY_MAX];
    ngx_http_inventory_str_t    sku, loc;
    ngx_http_inventory_item_t   item, back;
    ngx_http_inventory_event_t  ev, dec;

    ngx_http_inventory_put_u64(buf, 0x0102030405060708ULL);
    ok(buf[0] == 1 && buf[7] == 8, "u64 is big-endian");
    ok(ngx_http_inventory_get_u64(buf) == 0x0102030405060708ULL, "u64 back");

    ok(keycmp("A", "z", "A-1", "a") < 0, "key: sku A sorts before A-1");
    ok(keycmp("A", "a", "A", "b") < 0, "key: location order within a sku");
    ok(keycmp("B", "a", "A", "z") > 0, "key: sku first");

    n = ngx_http_inventory_item_event_key(k1, S("A"), S("x"), 9);
    ngx_http_inventory_item_event_key(k2, S("A"), S("x"), 10);
    ok(memcmp(k1, k2, n) < 0, "item event keys sort by version");

    n = ngx_http_inventory_item_key(k1, S("A-1"), S("store-7"));
    ok(ngx_http_inventory_item_key_split(k1, n, &sku, &loc) == 0
       && sku.len == 3 && loc.len == 7
       && memcmp(loc.data, "store-7", 7) == 0, "item key splits");
    ok(ngx_http_inventory_item_key_split(k1, 3, &sku, &loc) != 0,
       "a key without NUL does not split");

    item.on_hand = 120;
    item.reserved = 5;
    item.min_level = 10;
    item.version = 42;
    item.updated_at = 1795341600123ULL;
    ngx_http_inventory_item_encode(buf, &item);
    ok(ngx_http_inventory_item_decode(buf, NGX_HTTP_INVENTORY_ITEM_RECORD_LEN,
                                      &back) == 0
       && memcmp(&item, &back, sizeof(item)) == 0, "item round trip");
    ok(ngx_http_inventory_item_decode(buf, 39, &back) != 0,
       "short item record refused");

    memset(&ev, 0, sizeof(ev));
    ev.type = NGX_HTTP_INVENTORY_EV_TRANSFERRED_OUT;
    ev.version = 3;
    ev.at = 77;
    ev.quantity = 2;
    ev.delta = -5;
    ev.sku = S("A-1");
    ev.location = S("store-7");
    ev.reason = S("move \"it\"");
    ev.other_location = S("wh-1");
    n = ngx_http_inventory_event_encode(buf, &ev);
    ok(ngx_http_inventory_event_decode(buf, n, &dec) == 0, "event decodes");
    ok(dec.type == ev.type && dec.version == 3 && dec.at == 77
       && dec.quantity == 2 && dec.delta == -5
       && dec.reason.len == ev.reason.len
       && memcmp(dec.other_location.data, "wh-1", 4) == 0
       && dec.reservation_id.len == 0, "event round trip");
    ok(ngx_http_inventory_event_decode(buf, n - 1, &dec) != 0,
       "truncated event refused");
    ok(ngx_http_inventory_event_decode(buf, 10, &dec) != 0,
       "short event refused");
    buf[0] = 0;
    ok(ngx_http_inventory_event_decode(buf, n, &dec) != 0,
       "event of unknown type refused");
}
