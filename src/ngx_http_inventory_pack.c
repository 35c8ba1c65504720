/*
 * A command's inputs as bytes: a fixed head, then the strings of the head
 * in order, then each line's sku and location.  Everything the store reads
 * of a command before it runs it, nothing it fills in.
 */

#include <stddef.h>
#include <string.h>

#include "ngx_http_inventory_pack.h"


#define NGX_HTTP_INVENTORY_PACK_STRS  9

#define NGX_HTTP_INVENTORY_PACK_MIN_LEVEL  0x01
#define NGX_HTTP_INVENTORY_PACK_IF_MATCH   0x02
#define NGX_HTTP_INVENTORY_PACK_ANY        0x04
#define NGX_HTTP_INVENTORY_PACK_MULTI      0x08
#define NGX_HTTP_INVENTORY_PACK_SAFETY     0x10
#define NGX_HTTP_INVENTORY_PACK_BACKORDER  0x20
#define NGX_HTTP_INVENTORY_PACK_ATOMIC     0x40
#define NGX_HTTP_INVENTORY_PACK_IF_VERSION 0x80


typedef struct {
    uint32_t                    type;
    uint32_t                    flags;
    int64_t                     on_hand;
    int64_t                     min_level;
    int64_t                     delta;
    int64_t                     quantity;
    int64_t                     safety_stock;
    int64_t                     backorder_limit;
    uint32_t                    state;
    uint32_t                    to_state;
    uint64_t                    ttl;
    uint64_t                    if_match[NGX_HTTP_INVENTORY_ETAGS_MAX];
    uint32_t                    if_match_n;
    uint32_t                    nlines;
    uint32_t                    nchanges;
    uint32_t                    len[NGX_HTTP_INVENTORY_PACK_STRS];
    unsigned char               fingerprint[16];
    char                        res_id[NGX_HTTP_INVENTORY_RES_ID_LEN];
} ngx_http_inventory_pack_head_t;


typedef struct {
    int64_t                     quantity;
    uint32_t                    sku_len;
    uint32_t                    location_len;
} ngx_http_inventory_pack_line_t;


/* the command's strings, in the order they are packed */
static const size_t  ngx_http_inventory_pack_strs[] = {
    offsetof(ngx_http_inventory_cmd_t, sku),
    offsetof(ngx_http_inventory_cmd_t, location),
    offsetof(ngx_http_inventory_cmd_t, to),
    offsetof(ngx_http_inventory_cmd_t, reason),
    offsetof(ngx_http_inventory_cmd_t, idem_key),
    offsetof(ngx_http_inventory_cmd_t, res.reference),
    offsetof(ngx_http_inventory_cmd_t, reference),
    offsetof(ngx_http_inventory_cmd_t, actor),
    offsetof(ngx_http_inventory_cmd_t, changes)
};

#define ngx_http_inventory_pack_str(cmd, i)                                  \
    ((ngx_http_inventory_str_t *)                                            \
         ((char *) (cmd) + ngx_http_inventory_pack_strs[i]))


size_t
ngx_http_inventory_pack_size(const ngx_http_inventory_cmd_t *cmd)
{
    size_t  i, size;

    size = sizeof(ngx_http_inventory_pack_head_t);

    for (i = 0; i < NGX_HTTP_INVENTORY_PACK_STRS; i++) {
        size += ngx_http_inventory_pack_str(cmd, i)->len;
    }

    for (i = 0; i < cmd->res.nlines; i++) {
        size += sizeof(ngx_http_inventory_pack_line_t)
                + cmd->res.lines[i].sku.len + cmd->res.lines[i].location.len;
    }

    return size;
}


size_t
ngx_http_inventory_pack(const ngx_http_inventory_cmd_t *cmd,
    unsigned char *buf)
{
    size_t                            i;
    unsigned char                    *p;
    const ngx_http_inventory_str_t   *s;
    const ngx_http_inventory_line_t  *line;
    ngx_http_inventory_pack_head_t    h;
    ngx_http_inventory_pack_line_t    pl;

    memset(&h, 0, sizeof(h));
    h.type = cmd->type;
    h.flags = (cmd->has_min_level ? NGX_HTTP_INVENTORY_PACK_MIN_LEVEL : 0)
              | (cmd->has_if_match ? NGX_HTTP_INVENTORY_PACK_IF_MATCH : 0)
              | (cmd->if_match_any ? NGX_HTTP_INVENTORY_PACK_ANY : 0)
              | (cmd->multi_line ? NGX_HTTP_INVENTORY_PACK_MULTI : 0)
              | (cmd->has_safety_stock ? NGX_HTTP_INVENTORY_PACK_SAFETY : 0)
              | (cmd->has_backorder_limit ? NGX_HTTP_INVENTORY_PACK_BACKORDER
                                          : 0)
              | (cmd->atomic ? NGX_HTTP_INVENTORY_PACK_ATOMIC : 0);
    h.nchanges = (uint32_t) cmd->nchanges;
    h.on_hand = cmd->on_hand;
    h.safety_stock = cmd->safety_stock;
    h.backorder_limit = cmd->backorder_limit;
    h.state = cmd->state;
    h.to_state = cmd->to_state;
    h.min_level = cmd->min_level;
    h.delta = cmd->delta;
    h.quantity = cmd->quantity;
    h.ttl = cmd->ttl;
    h.if_match_n = (uint32_t) cmd->if_match_n;
    memcpy(h.if_match, cmd->if_match, cmd->if_match_n * sizeof(uint64_t));
    h.nlines = (uint32_t) cmd->res.nlines;
    memcpy(h.fingerprint, cmd->fingerprint, sizeof(h.fingerprint));
    memcpy(h.res_id, cmd->res.id, sizeof(h.res_id));

    for (i = 0; i < NGX_HTTP_INVENTORY_PACK_STRS; i++) {
        h.len[i] = (uint32_t) ngx_http_inventory_pack_str(cmd, i)->len;
    }

    memcpy(buf, &h, sizeof(h));
    p = buf + sizeof(h);

    for (i = 0; i < NGX_HTTP_INVENTORY_PACK_STRS; i++) {
        s = ngx_http_inventory_pack_str(cmd, i);

        if (s->len) {
            memcpy(p, s->data, s->len);
            p += s->len;
        }
    }

    for (i = 0; i < cmd->res.nlines; i++) {
        line = &cmd->res.lines[i];

        pl.quantity = line->quantity;
        pl.sku_len = (uint32_t) line->sku.len;
        pl.location_len = (uint32_t) line->location.len;

        memcpy(p, &pl, sizeof(pl));
        p += sizeof(pl);
        memcpy(p, line->sku.data, line->sku.len);
        p += line->sku.len;
        memcpy(p, line->location.data, line->location.len);
        p += line->location.len;
    }

    return (size_t) (p - buf);
}


int
ngx_http_inventory_unpack(ngx_http_inventory_cmd_t *cmd,
    const unsigned char *buf, size_t len)
{
    size_t                           i, left;
    const unsigned char             *p;
    ngx_http_inventory_str_t        *s;
    ngx_http_inventory_line_t       *line;
    ngx_http_inventory_pack_head_t   h;
    ngx_http_inventory_pack_line_t   pl;

    if (len < sizeof(h)) {
        return -1;
    }

    memcpy(&h, buf, sizeof(h));

    if (h.if_match_n > NGX_HTTP_INVENTORY_ETAGS_MAX
        || h.nlines > NGX_HTTP_INVENTORY_MAX_LINES)
    {
        return -1;
    }

    ngx_http_inventory_cmd_init(cmd);

    cmd->type = h.type;
    cmd->has_min_level = (h.flags & NGX_HTTP_INVENTORY_PACK_MIN_LEVEL) != 0;
    cmd->has_if_match = (h.flags & NGX_HTTP_INVENTORY_PACK_IF_MATCH) != 0;
    cmd->if_match_any = (h.flags & NGX_HTTP_INVENTORY_PACK_ANY) != 0;
    cmd->multi_line = (h.flags & NGX_HTTP_INVENTORY_PACK_MULTI) != 0;
    cmd->has_safety_stock = (h.flags & NGX_HTTP_INVENTORY_PACK_SAFETY) != 0;
    cmd->has_backorder_limit = (h.flags & NGX_HTTP_INVENTORY_PACK_BACKORDER)
                               != 0;
    cmd->atomic = (h.flags & NGX_HTTP_INVENTORY_PACK_ATOMIC) != 0;
    cmd->nchanges = h.nchanges;
    cmd->on_hand = h.on_hand;
    cmd->safety_stock = h.safety_stock;
    cmd->backorder_limit = h.backorder_limit;
    cmd->state = h.state;
    cmd->to_state = h.to_state;
    cmd->min_level = h.min_level;
    cmd->delta = h.delta;
    cmd->quantity = h.quantity;
    cmd->ttl = h.ttl;
    cmd->if_match_n = h.if_match_n;
    memcpy(cmd->if_match, h.if_match, h.if_match_n * sizeof(uint64_t));
    memcpy(cmd->fingerprint, h.fingerprint, sizeof(h.fingerprint));
    memcpy(cmd->res.id, h.res_id, sizeof(h.res_id));

    p = buf + sizeof(h);
    left = len - sizeof(h);

    for (i = 0; i < NGX_HTTP_INVENTORY_PACK_STRS; i++) {
        if (h.len[i] > left) {
            return -1;
        }

        s = ngx_http_inventory_pack_str(cmd, i);
        s->data = (const char *) p;
        s->len = h.len[i];
        p += h.len[i];
        left -= h.len[i];
    }

    for (i = 0; i < h.nlines; i++) {
        if (left < sizeof(pl)) {
            return -1;
        }

        memcpy(&pl, p, sizeof(pl));
        p += sizeof(pl);
        left -= sizeof(pl);

        if (pl.sku_len > left || pl.location_len > left - pl.sku_len) {
            return -1;
        }

        line = &cmd->res.lines[i];
        line->quantity = pl.quantity;
        line->sku.data = (const char *) p;
        line->sku.len = pl.sku_len;
        line->location.data = (const char *) p + pl.sku_len;
        line->location.len = pl.location_len;

        p += pl.sku_len + pl.location_len;
        left -= pl.sku_len + pl.location_len;
    }

    cmd->res.nlines = h.nlines;

    return left == 0 ? 0 : -1;
}


/*
 * One change of a batch (a count, an adjustment or a move, as a command
 * of its own): a fixed head, then its sku, location, reason and reference.
 * A batch's changes are these, one after another, in cmd->changes.
 */

typedef struct {
    uint32_t                    type;
    uint32_t                    state;
    uint32_t                    to_state;
    uint32_t                    flags;
    int64_t                     on_hand;
    int64_t                     min_level;
    int64_t                     safety_stock;
    int64_t                     backorder_limit;
    int64_t                     delta;
    int64_t                     quantity;
    uint64_t                    if_version;
    uint32_t                    len[4];
} ngx_http_inventory_change_head_t;


size_t
ngx_http_inventory_change_size_max(void)
{
    return sizeof(ngx_http_inventory_change_head_t)
           + 2 * NGX_HTTP_INVENTORY_ID_MAX + NGX_HTTP_INVENTORY_REASON_MAX
           + NGX_HTTP_INVENTORY_REFERENCE_MAX;
}


size_t
ngx_http_inventory_change_pack(const ngx_http_inventory_cmd_t *change,
    unsigned char *buf)
{
    size_t                             i;
    unsigned char                     *p;
    ngx_http_inventory_str_t           s[4];
    ngx_http_inventory_change_head_t   h;

    s[0] = change->sku;
    s[1] = change->location;
    s[2] = change->reason;
    s[3] = change->reference;

    memset(&h, 0, sizeof(h));
    h.type = change->type;
    h.state = change->state;
    h.to_state = change->to_state;
    h.flags = (change->has_min_level ? NGX_HTTP_INVENTORY_PACK_MIN_LEVEL : 0)
              | (change->has_safety_stock ? NGX_HTTP_INVENTORY_PACK_SAFETY
                                          : 0)
              | (change->has_backorder_limit
                 ? NGX_HTTP_INVENTORY_PACK_BACKORDER : 0)
              | (change->has_if_match ? NGX_HTTP_INVENTORY_PACK_IF_VERSION
                                      : 0);
    h.on_hand = change->on_hand;
    h.min_level = change->min_level;
    h.safety_stock = change->safety_stock;
    h.backorder_limit = change->backorder_limit;
    h.delta = change->delta;
    h.quantity = change->quantity;
    h.if_version = change->if_match[0];

    for (i = 0; i < 4; i++) {
        h.len[i] = (uint32_t) s[i].len;
    }

    memcpy(buf, &h, sizeof(h));
    p = buf + sizeof(h);

    for (i = 0; i < 4; i++) {
        if (s[i].len) {
            memcpy(p, s[i].data, s[i].len);
            p += s[i].len;
        }
    }

    return (size_t) (p - buf);
}


/*
 * The change at *p into cmd (a command of its own, cmd_init()ed here), *p
 * then past it; -1 if the bytes are not a change.
 */

int
ngx_http_inventory_change_unpack(ngx_http_inventory_cmd_t *cmd,
    const unsigned char **p, const unsigned char *end)
{
    size_t                             i;
    const unsigned char               *q;
    ngx_http_inventory_str_t          *s[4];
    ngx_http_inventory_change_head_t   h;

    if ((size_t) (end - *p) < sizeof(h)) {
        return -1;
    }

    memcpy(&h, *p, sizeof(h));
    q = *p + sizeof(h);

    ngx_http_inventory_cmd_init(cmd);

    s[0] = &cmd->sku;
    s[1] = &cmd->location;
    s[2] = &cmd->reason;
    s[3] = &cmd->reference;

    for (i = 0; i < 4; i++) {
        if (h.len[i] > (size_t) (end - q)) {
            return -1;
        }

        s[i]->data = (const char *) q;
        s[i]->len = h.len[i];
        q += h.len[i];
    }

    cmd->type = h.type;
    cmd->state = h.state;
    cmd->to_state = h.to_state;
    cmd->has_min_level = (h.flags & NGX_HTTP_INVENTORY_PACK_MIN_LEVEL) != 0;
    cmd->has_safety_stock = (h.flags & NGX_HTTP_INVENTORY_PACK_SAFETY) != 0;
    cmd->has_backorder_limit = (h.flags & NGX_HTTP_INVENTORY_PACK_BACKORDER)
                               != 0;
    cmd->has_if_match = (h.flags & NGX_HTTP_INVENTORY_PACK_IF_VERSION) != 0;
    cmd->if_match[0] = h.if_version;
    cmd->if_match_n = cmd->has_if_match ? 1 : 0;
    cmd->on_hand = h.on_hand;
    cmd->min_level = h.min_level;
    cmd->safety_stock = h.safety_stock;
    cmd->backorder_limit = h.backorder_limit;
    cmd->delta = h.delta;
    cmd->quantity = h.quantity;

    *p = q;

    return 0;
}

