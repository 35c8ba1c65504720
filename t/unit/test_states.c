/*
 * The quantity states: decisions and replay of adjustments of a state,
 * moves, backorders and commits; items and events of the layouts before
 * them; a batch's changes packed and back.
 */

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "tap.h"
#include "helpers.h"
#include "ngx_http_inventory_core.h"
#include "ngx_http_inventory_codec.h"
#include "ngx_http_inventory_pack.h"


static ngx_http_inventory_cmd_t  *cmd;


/* decides cmd on item; applies its events to item when it succeeds */

static unsigned
run(unsigned type, ngx_http_inventory_item_t *item, int exists)
{
    size_t                      i, n;
    unsigned                    rc;
    size_t                      slot_of[NGX_HTTP_INVENTORY_MAX_EVENTS];
    ngx_http_inventory_event_t  ev[NGX_HTTP_INVENTORY_MAX_EVENTS];

    cmd->type = type;
    cmd->sku = S("A-1");
    cmd->location = S("store-7");
    ngx_http_inventory_cmd_slots(cmd);
    cmd->slots[0].item = *item;
    cmd->slots[0].exists = exists;

    rc = ngx_http_inventory_decide(cmd, ev, &n, slot_of);

    if (rc != NGX_HTTP_INVENTORY_OK && rc != NGX_HTTP_INVENTORY_CREATED) {
        return rc;
    }

    for (i = 0; i < n; i++) {
        ev[i].version = item->version + 1;
        ev[i].seq = 100 + item->version;

        if (ngx_http_inventory_event_apply(item, &ev[i]) != 0) {
            return 999;
        }
    }

    return rc;
}


static void
adjust(unsigned state, int64_t delta)
{
    ngx_http_inventory_cmd_init(cmd);
    cmd->delta = delta;
    cmd->state = state;
}


static void
move(unsigned from, unsigned to, int64_t q)
{
    ngx_http_inventory_cmd_init(cmd);
    cmd->state = from;
    cmd->to_state = to;
    cmd->quantity = q;
}


static void
test_state_rules(void)
{
    ngx_http_inventory_item_t  it;

    memset(&it, 0, sizeof(it));
    it.on_hand = 20;
    it.version = 1;

    adjust(NGX_HTTP_INVENTORY_STATE_DAMAGED, 2);
    is_int(run(NGX_HTTP_INVENTORY_CMD_ADJUST, &it, 1), NGX_HTTP_INVENTORY_OK,
           "states: damaged +2");
    ok(it.on_hand == 22 && it.damaged == 2
       && ngx_http_inventory_available(&it) == 20 && it.seq == 101,
       "states: on_hand and damaged grow, available does not; seq kept");

    adjust(NGX_HTTP_INVENTORY_STATE_INCOMING, 40);
    run(NGX_HTTP_INVENTORY_CMD_ADJUST, &it, 1);
    ok(it.on_hand == 22 && it.incoming == 40, "states: incoming not on hand");

    move(NGX_HTTP_INVENTORY_STATE_INCOMING,
         NGX_HTTP_INVENTORY_STATE_AVAILABLE, 30);
    is_int(run(NGX_HTTP_INVENTORY_CMD_MOVE, &it, 1), NGX_HTTP_INVENTORY_OK,
           "states: a receipt");
    ok(it.on_hand == 52 && it.incoming == 10, "states: incoming -> on hand");

    move(NGX_HTTP_INVENTORY_STATE_AVAILABLE,
         NGX_HTTP_INVENTORY_STATE_QUALITY_CONTROL, 5);
    run(NGX_HTTP_INVENTORY_CMD_MOVE, &it, 1);
    ok(it.on_hand == 52 && it.quality_control == 5
       && ngx_http_inventory_available(&it) == 45,
       "states: available -> quality_control keeps on_hand");

    move(NGX_HTTP_INVENTORY_STATE_DAMAGED,
         NGX_HTTP_INVENTORY_STATE_AVAILABLE, 3);
    is_int(run(NGX_HTTP_INVENTORY_CMD_MOVE, &it, 1),
           NGX_HTTP_INVENTORY_INSUFFICIENT,
           "states: more than damaged holds: refused");

    adjust(NGX_HTTP_INVENTORY_STATE_AVAILABLE, -46);
    is_int(run(NGX_HTTP_INVENTORY_CMD_ADJUST, &it, 1),
           NGX_HTTP_INVENTORY_INSUFFICIENT,
           "states: on_hand below damaged + quality_control: refused");

    ngx_http_inventory_cmd_init(cmd);
    cmd->on_hand = 100;
    cmd->safety_stock = 10;
    cmd->has_safety_stock = 1;
    cmd->backorder_limit = 4;
    cmd->has_backorder_limit = 1;
    run(NGX_HTTP_INVENTORY_CMD_COUNT, &it, 1);
    ok(it.safety_stock == 10 && it.backorder_limit == 4
       && ngx_http_inventory_available(&it) == 100 - 2 - 5 - 10,
       "states: a count sets the settings; available takes them off");

    ngx_http_inventory_cmd_init(cmd);
    cmd->on_hand = 6;
    is_int(run(NGX_HTTP_INVENTORY_CMD_COUNT, &it, 1),
           NGX_HTTP_INVENTORY_INSUFFICIENT,
           "states: a count below damaged + quality_control: refused");
}


static void
test_backorders(void)
{
    ngx_http_inventory_item_t  it;
    ngx_http_inventory_line_t  *line;

    memset(&it, 0, sizeof(it));
    it.on_hand = 2;
    it.backorder_limit = 5;
    it.version = 1;

    ngx_http_inventory_cmd_init(cmd);
    line = &cmd->res.lines[0];
    line->sku = S("A-1");
    line->location = S("store-7");
    line->quantity = 7;
    cmd->res.nlines = 1;
    memcpy(cmd->res.id, "r_0000000000000000000001", 24);

    is_int(run(NGX_HTTP_INVENTORY_CMD_RESERVE, &it, 1),
           NGX_HTTP_INVENTORY_CREATED, "backorders: 7 of 2 + 5: held");
    is_int(ngx_http_inventory_available(&it), -5, "backorders: available -5");

    cmd->res.lines[0].quantity = 1;
    cmd->type = NGX_HTTP_INVENTORY_CMD_RESERVE;
    is_int(run(NGX_HTTP_INVENTORY_CMD_RESERVE, &it, 1),
           NGX_HTTP_INVENTORY_INSUFFICIENT, "backorders: one past: refused");

    /* the commit of the 7 with 2 on hand */
    cmd->res.lines[0].quantity = 7;
    cmd->res.state = NGX_HTTP_INVENTORY_RES_ACTIVE;
    cmd->res.expires_at = UINT64_MAX;
    cmd->now = 1;
    is_int(run(NGX_HTTP_INVENTORY_CMD_COMMIT, &it, 1),
           NGX_HTTP_INVENTORY_INSUFFICIENT,
           "backorders: a commit needs the stock on hand");
    ok(cmd->slots[0].short_stock, "backorders: ... the item named short");

    it.on_hand = 9;
    cmd->res.state = NGX_HTTP_INVENTORY_RES_ACTIVE;
    is_int(run(NGX_HTTP_INVENTORY_CMD_COMMIT, &it, 1), NGX_HTTP_INVENTORY_OK,
           "backorders: once there, it ships");
    ok(it.on_hand == 2 && it.reserved == 0, "backorders: ... and takes it");
}


static void
test_old_layouts(void)
{
    size_t                      len;
    unsigned char               rec[NGX_HTTP_INVENTORY_EVENT_RECORD_MAX];
    unsigned char               old[NGX_HTTP_INVENTORY_ITEM_RECORD_LEN];
    ngx_http_inventory_item_t   it, back;
    ngx_http_inventory_event_t  ev, got;

    memset(&it, 0, sizeof(it));
    it.on_hand = 5;
    it.reserved = 1;
    it.damaged = 2;
    it.seq = 77;
    it.version = 3;

    ngx_http_inventory_item_encode(old, &it);
    is_int(ngx_http_inventory_item_decode(old,
                                          NGX_HTTP_INVENTORY_ITEM_RECORD_V1,
                                          &back), 0,
           "layouts: an item of 40 bytes reads");
    ok(back.on_hand == 5 && back.reserved == 1 && back.damaged == 0
       && back.seq == 0 && back.version == 3,
       "layouts: ... its first fields, the new ones 0");
    is_int(ngx_http_inventory_item_decode(old, 41, &back), -1,
           "layouts: an item of another length does not");

    memset(&ev, 0, sizeof(ev));
    ev.type = NGX_HTTP_INVENTORY_EV_STOCK_ADJUSTED;
    ev.sku = S("A-1");
    ev.location = S("w");
    ev.delta = 3;
    ev.state = NGX_HTTP_INVENTORY_STATE_DAMAGED;
    ev.reference = S("po:1");
    ev.actor = S("alice");

    len = ngx_http_inventory_event_encode(rec, &ev);
    ok(ngx_http_inventory_event_decode(rec, len, &got) == 0
       && got.state == ev.state && got.reference.len == 4
       && got.actor.len == 5, "layouts: an event with its trailer");

    /* an event of before: the five strings, no trailer */
    len -= 2 + 16 + 2 + 4 + 2 + 5;
    ok(ngx_http_inventory_event_decode(rec, len, &got) == 0
       && got.state == 0 && got.reference.len == 0,
       "layouts: an event without a trailer reads");
    is_int(ngx_http_inventory_event_decode(rec, len + 3, &got), -1,
           "layouts: a cut trailer does not");
}


static void
test_changes_packed(void)
{
    size_t                    len;
    unsigned char             buf[4096];
    const unsigned char      *p;
    ngx_http_inventory_cmd_t  *back;

    back = calloc(1, sizeof(ngx_http_inventory_cmd_t));

    move(NGX_HTTP_INVENTORY_STATE_INCOMING,
         NGX_HTTP_INVENTORY_STATE_DAMAGED, 4);
    cmd->type = NGX_HTTP_INVENTORY_CMD_MOVE;
    cmd->sku = S("A-1");
    cmd->location = S("w");
    cmd->reference = S("po:9");
    cmd->has_if_match = 1;
    cmd->if_match[0] = 12;

    len = ngx_http_inventory_change_pack(cmd, buf);
    ok(len <= ngx_http_inventory_change_size_max(),
       "changes: within the bound");

    p = buf;
    ok(ngx_http_inventory_change_unpack(back, &p, buf + len) == 0
       && p == buf + len && back->type == NGX_HTTP_INVENTORY_CMD_MOVE
       && back->state == NGX_HTTP_INVENTORY_STATE_INCOMING
       && back->to_state == NGX_HTTP_INVENTORY_STATE_DAMAGED
       && back->quantity == 4 && back->has_if_match
       && back->if_match[0] == 12 && back->if_match_n == 1
       && back->reference.len == 4 && back->sku.len == 3,
       "changes: packed and back");

    p = buf;
    is_int(ngx_http_inventory_change_unpack(back, &p, buf + len - 1), -1,
           "changes: one byte short is refused");

    free(back);
}


void
test_states(void)
{
    cmd = calloc(1, sizeof(ngx_http_inventory_cmd_t));

    test_state_rules();
    test_backorders();
    test_old_layouts();
    test_changes_packed();

    free(cmd);
}
