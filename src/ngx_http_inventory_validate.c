/*
 * Body schemas.  Every member is checked, so that one 400 names every
 * problem of a request; a command is only filled in from a valid body.
 */

#include <stdio.h>
#include <string.h>

#include "ngx_http_inventory_validate.h"
#include "ngx_http_inventory_pack.h"


typedef struct {
    const char                 *name;
    int64_t                     min;
    int64_t                     max;
    unsigned                    required:1;
    unsigned                    nonzero:1;
} ngx_http_inventory_int_rule_t;


static int ngx_http_inventory_check_members(
    const ngx_http_inventory_json_t *root, const char *const *allowed,
    const char *prefix, ngx_http_inventory_errors_t *errs);
static int ngx_http_inventory_get_int(const ngx_http_inventory_json_t *obj,
    const ngx_http_inventory_int_rule_t *rule, int64_t *out,
    ngx_http_inventory_errors_t *errs);
static int ngx_http_inventory_get_int_as(
    const ngx_http_inventory_json_t *obj,
    const ngx_http_inventory_int_rule_t *rule, const char *field,
    int64_t *out, ngx_http_inventory_errors_t *errs);
static int ngx_http_inventory_get_string(const ngx_http_inventory_json_t *obj,
    const char *name, ngx_http_inventory_str_t *out,
    ngx_http_inventory_errors_t *errs);
static int ngx_http_inventory_get_reference(
    const ngx_http_inventory_json_t *obj, ngx_http_inventory_str_t *out,
    ngx_http_inventory_errors_t *errs);
static int ngx_http_inventory_get_state(const ngx_http_inventory_json_t *obj,
    const char *name, int required, unsigned *out,
    ngx_http_inventory_errors_t *errs);
static int ngx_http_inventory_get_id(const ngx_http_inventory_json_t *obj,
    const char *name, const char *field, ngx_http_inventory_str_t *out,
    ngx_http_inventory_errors_t *errs);
static int ngx_http_inventory_batch_from_json(ngx_http_inventory_cmd_t *cmd,
    const ngx_http_inventory_json_t *root, ngx_http_inventory_alloc_pt alloc,
    void *ctx, ngx_http_inventory_errors_t *errs);
static int ngx_http_inventory_change_from_json(ngx_http_inventory_cmd_t *cmd,
    const ngx_http_inventory_json_t *m, size_t i,
    ngx_http_inventory_alloc_pt alloc, void *ctx,
    ngx_http_inventory_errors_t *errs);
static int ngx_http_inventory_get_lines(const ngx_http_inventory_json_t *obj,
    ngx_http_inventory_reservation_t *res, ngx_http_inventory_errors_t *errs);


static const char  *ngx_http_inventory_count_members[] = {
    "on_hand", "min_level", "safety_stock", "backorder_limit", "reason",
    "reference", NULL
};

static const char  *ngx_http_inventory_adjust_members[] = {
    "delta", "state", "reason", "reference", NULL
};

static const char  *ngx_http_inventory_move_members[] = {
    "from", "to", "quantity", "reason", "reference", NULL
};

static const char  *ngx_http_inventory_reserve_members[] = {
    "quantity", "ttl_seconds", "reason", "reference", NULL
};

static const char  *ngx_http_inventory_cart_members[] = {
    "lines", "ttl_seconds", "reason", "reference", NULL
};

static const char  *ngx_http_inventory_line_members[] = {
    "sku", "location", "quantity", NULL
};

static const char  *ngx_http_inventory_query_members[] = {
    "items", NULL
};

static const char  *ngx_http_inventory_item_members[] = {
    "sku", "location", NULL
};

static const char  *ngx_http_inventory_batch_members[] = {
    "changes", "atomic", "reason", "reference", NULL
};

/* what a change has besides the members of its route's body */
static const char  *ngx_http_inventory_change_members[] = {
    "op", "sku", "location", "if_version", NULL
};

static const char  *ngx_http_inventory_ops[] = {
    "count", "adjust", "move", NULL
};

static const unsigned  ngx_http_inventory_op_types[] = {
    NGX_HTTP_INVENTORY_CMD_COUNT, NGX_HTTP_INVENTORY_CMD_ADJUST,
    NGX_HTTP_INVENTORY_CMD_MOVE
};

static const char  *ngx_http_inventory_transfer_members[] = {
    "sku", "from", "to", "quantity", "reason", "reference", NULL
};

/* a reservation's commit or release */
static const char  *ngx_http_inventory_end_members[] = {
    "reason", "reference", NULL
};

static const ngx_http_inventory_int_rule_t
    ngx_http_inventory_on_hand_rule = {
    "on_hand", 0, NGX_HTTP_INVENTORY_QTY_MAX, 1, 0
};

static const ngx_http_inventory_int_rule_t
    ngx_http_inventory_min_level_rule = {
    "min_level", 0, NGX_HTTP_INVENTORY_QTY_MAX, 0, 0
};

static const ngx_http_inventory_int_rule_t
    ngx_http_inventory_safety_stock_rule = {
    "safety_stock", 0, NGX_HTTP_INVENTORY_QTY_MAX, 0, 0
};

static const ngx_http_inventory_int_rule_t
    ngx_http_inventory_backorder_limit_rule = {
    "backorder_limit", 0, NGX_HTTP_INVENTORY_QTY_MAX, 0, 0
};

static const ngx_http_inventory_int_rule_t
    ngx_http_inventory_quantity_rule = {
    "quantity", 1, NGX_HTTP_INVENTORY_REQ_QTY_MAX, 1, 0
};

static const ngx_http_inventory_int_rule_t
    ngx_http_inventory_if_version_rule = {
    "if_version", 1, NGX_HTTP_INVENTORY_QTY_MAX, 0, 0
};

static const ngx_http_inventory_int_rule_t
    ngx_http_inventory_ttl_rule = {
    "ttl_seconds", 1, NGX_HTTP_INVENTORY_TTL_MAX, 0, 0
};

static const ngx_http_inventory_int_rule_t
    ngx_http_inventory_delta_rule = {
    "delta", -NGX_HTTP_INVENTORY_REQ_QTY_MAX, NGX_HTTP_INVENTORY_REQ_QTY_MAX,
    1, 1
};


void
ngx_http_inventory_error_add(ngx_http_inventory_errors_t *errs,
    const char *field, size_t field_len, const char *message)
{
    ngx_http_inventory_field_error_t  *e;

    if (errs->n == NGX_HTTP_INVENTORY_MAX_ERRORS) {
        return;
    }

    e = &errs->e[errs->n++];

    if (field_len >= NGX_HTTP_INVENTORY_FIELD_LEN) {
        /* a client's member name: cut it at a UTF-8 character boundary */
        field_len = NGX_HTTP_INVENTORY_FIELD_LEN - 1;

        while (field_len && ((unsigned char) field[field_len] & 0xc0) == 0x80)
        {
            field_len--;
        }
    }

    memcpy(e->field, field, field_len);
    e->field[field_len] = '\0';
    e->field_len = field_len;
    snprintf(e->message, NGX_HTTP_INVENTORY_MESSAGE_LEN, "%s", message);
}


void
ngx_http_inventory_validate_id(ngx_http_inventory_errors_t *errs,
    const char *field, ngx_http_inventory_str_t id)
{
    if (!ngx_http_inventory_id_valid(id.data, id.len)) {
        ngx_http_inventory_error_add(errs, field, strlen(field),
                                     "must be 1 to 64 characters from "
                                     "A-Z a-z 0-9 . _ - :");
    }
}


int
ngx_http_inventory_cmd_from_body(ngx_http_inventory_cmd_t *cmd,
    const char *body, size_t len, ngx_http_inventory_alloc_pt alloc,
    void *ctx, ngx_http_inventory_errors_t *errs)
{
    char                        err[NGX_HTTP_INVENTORY_JSON_ERR_LEN];
    size_t                      dup_len;
    const char                 *dup;
    ngx_http_inventory_json_t  *root;

    root = ngx_http_inventory_json_parse(body, len, alloc, ctx, err, &dup,
                                         &dup_len);
    if (root == NULL) {
        if (dup) {
            ngx_http_inventory_error_add(errs, dup, dup_len,
                                         "duplicate member");

        } else {
            ngx_http_inventory_error_set(errs, "body", err);
        }

        return -1;
    }

    if (cmd->type == NGX_HTTP_INVENTORY_CMD_BATCH) {
        return ngx_http_inventory_batch_from_json(cmd, root, alloc, ctx,
                                                  errs);
    }

    return ngx_http_inventory_cmd_from_json(cmd, root, errs);
}


int
ngx_http_inventory_cmd_from_json(ngx_http_inventory_cmd_t *cmd,
    const ngx_http_inventory_json_t *root, ngx_http_inventory_errors_t *errs)
{
    int                         ok;
    int64_t                     ttl;
    const char *const          *members;
    ngx_http_inventory_line_t  *line;

    if (root->type != NGX_HTTP_INVENTORY_JSON_OBJECT) {
        ngx_http_inventory_error_set(errs, "body",
                                     "must be a JSON object");
        return -1;
    }

    switch (cmd->type) {
    case NGX_HTTP_INVENTORY_CMD_COUNT:
        members = ngx_http_inventory_count_members;
        break;
    case NGX_HTTP_INVENTORY_CMD_ADJUST:
        members = ngx_http_inventory_adjust_members;
        break;
    case NGX_HTTP_INVENTORY_CMD_RESERVE:
        members = cmd->multi_line ? ngx_http_inventory_cart_members
                                  : ngx_http_inventory_reserve_members;
        break;
    case NGX_HTTP_INVENTORY_CMD_TRANSFER:
        members = ngx_http_inventory_transfer_members;
        break;
    case NGX_HTTP_INVENTORY_CMD_MOVE:
        members = ngx_http_inventory_move_members;
        break;
    default:
        members = ngx_http_inventory_end_members;
        break;
    }

    ok = ngx_http_inventory_check_members(root, members, NULL, errs);

    /* every write: why, and which document (a reservation's is its own) */
    ok &= ngx_http_inventory_get_string(root, "reason", &cmd->reason, errs);
    ok &= ngx_http_inventory_get_reference(root, &cmd->reference, errs);

    switch (cmd->type) {

    case NGX_HTTP_INVENTORY_CMD_COUNT:
        ok &= ngx_http_inventory_get_int(root,
                                         &ngx_http_inventory_on_hand_rule,
                                         &cmd->on_hand, errs);
        cmd->has_min_level =
            ngx_http_inventory_json_get(root, "min_level") != NULL;
        ok &= ngx_http_inventory_get_int(root,
                                         &ngx_http_inventory_min_level_rule,
                                         &cmd->min_level, errs);
        cmd->has_safety_stock =
            ngx_http_inventory_json_get(root, "safety_stock") != NULL;
        ok &= ngx_http_inventory_get_int(root,
                                     &ngx_http_inventory_safety_stock_rule,
                                     &cmd->safety_stock, errs);
        cmd->has_backorder_limit =
            ngx_http_inventory_json_get(root, "backorder_limit") != NULL;
        ok &= ngx_http_inventory_get_int(root,
                                     &ngx_http_inventory_backorder_limit_rule,
                                     &cmd->backorder_limit, errs);
        break;

    case NGX_HTTP_INVENTORY_CMD_ADJUST:
        ok &= ngx_http_inventory_get_int(root, &ngx_http_inventory_delta_rule,
                                         &cmd->delta, errs);
        ok &= ngx_http_inventory_get_state(root, "state", 0, &cmd->state,
                                           errs);
        break;

    case NGX_HTTP_INVENTORY_CMD_MOVE:
        ok &= ngx_http_inventory_get_state(root, "from", 1, &cmd->state,
                                           errs);
        ok &= ngx_http_inventory_get_state(root, "to", 1, &cmd->to_state,
                                           errs);
        ok &= ngx_http_inventory_get_int(root,
                                         &ngx_http_inventory_quantity_rule,
                                         &cmd->quantity, errs);

        if (cmd->to_state == NGX_HTTP_INVENTORY_STATE_INCOMING) {
            ngx_http_inventory_error_set(errs, "to",
                                         "must be available, damaged or "
                                         "quality_control: stock becomes "
                                         "incoming by an adjustment");
            ok = 0;

        } else if (cmd->state && cmd->state == cmd->to_state) {
            ngx_http_inventory_error_set(errs, "to",
                                         "must differ from \"from\"");
            ok = 0;
        }

        break;

    case NGX_HTTP_INVENTORY_CMD_RESERVE:
        if (cmd->multi_line) {
            ok &= ngx_http_inventory_get_lines(root, &cmd->res, errs);

        } else {
            line = &cmd->res.lines[0];
            line->sku = cmd->sku;
            line->location = cmd->location;
            cmd->res.nlines = 1;
            ok &= ngx_http_inventory_get_int(root,
                                         &ngx_http_inventory_quantity_rule,
                                         &line->quantity, errs);
        }

        ttl = 0;
        ok &= ngx_http_inventory_get_int(root, &ngx_http_inventory_ttl_rule,
                                         &ttl, errs);
        if (ttl) {
            cmd->ttl = (uint64_t) ttl * 1000;
        }

        cmd->res.reference = cmd->reference;
        break;

    case NGX_HTTP_INVENTORY_CMD_TRANSFER:
        ok &= ngx_http_inventory_get_id(root, "sku", "sku", &cmd->sku, errs);
        ok &= ngx_http_inventory_get_id(root, "from", "from", &cmd->location,
                                        errs);
        ok &= ngx_http_inventory_get_id(root, "to", "to", &cmd->to, errs);
        ok &= ngx_http_inventory_get_int(root,
                                         &ngx_http_inventory_quantity_rule,
                                         &cmd->quantity, errs);

        if (ok && cmd->location.len == cmd->to.len
            && memcmp(cmd->location.data, cmd->to.data, cmd->to.len) == 0)
        {
            ngx_http_inventory_error_set(errs, "to",
                                         "must differ from \"from\"");
            ok = 0;
        }

        break;

    default:
        break;
    }

    return ok ? 0 : -1;
}


/* adds an error for every member the object may not have */

static int
ngx_http_inventory_check_members(const ngx_http_inventory_json_t *root,
    const char *const *allowed, const char *prefix,
    ngx_http_inventory_errors_t *errs)
{
    int                         ok;
    char                        field[NGX_HTTP_INVENTORY_FIELD_LEN];
    size_t                      i, n, len;
    ngx_http_inventory_json_t  *m;

    ok = 1;

    for (m = root->child; m; m = m->next) {
        for (i = 0; allowed[i]; i++) {
            if (m->key_len == strlen(allowed[i])
                && memcmp(m->key, allowed[i], m->key_len) == 0)
            {
                break;
            }
        }

        if (allowed[i] == NULL) {
            if (prefix) {
                /* the name as it is, NULs too (%.*s would stop at one) */
                n = (size_t) snprintf(field, sizeof(field), "%s.", prefix);
                len = m->key_len < sizeof(field) - n ? m->key_len
                                                     : sizeof(field) - n;
                memcpy(field + n, m->key, len);
                ngx_http_inventory_error_add(errs, field, n + len,
                                             "unknown member");

            } else {
                ngx_http_inventory_error_add(errs, m->key, m->key_len,
                                             "unknown member");
            }

            ok = 0;
        }
    }

    return ok;
}


static int
ngx_http_inventory_get_int(const ngx_http_inventory_json_t *obj,
    const ngx_http_inventory_int_rule_t *rule, int64_t *out,
    ngx_http_inventory_errors_t *errs)
{
    return ngx_http_inventory_get_int_as(obj, rule, rule->name, out, errs);
}


static int
ngx_http_inventory_get_int_as(const ngx_http_inventory_json_t *obj,
    const ngx_http_inventory_int_rule_t *rule, const char *field,
    int64_t *out, ngx_http_inventory_errors_t *errs)
{
    char                        msg[NGX_HTTP_INVENTORY_MESSAGE_LEN];
    int64_t                     v;
    ngx_http_inventory_json_t  *m;

    m = ngx_http_inventory_json_get(obj, rule->name);

    if (m == NULL) {
        if (rule->required) {
            ngx_http_inventory_error_add(errs, field, strlen(field),
                                         "is required");
            return 0;
        }

        return 1;
    }

    if (m->type == NGX_HTTP_INVENTORY_JSON_NUMBER
        && ngx_http_inventory_parse_int(m->str, m->len, &v) == 0
        && v >= rule->min && v <= rule->max
        && !(rule->nonzero && v == 0))
    {
        *out = v;
        return 1;
    }

    snprintf(msg, sizeof(msg), "must be a%s integer from %lld to %lld",
             rule->nonzero ? " nonzero" : "n",
             (long long) rule->min, (long long) rule->max);
    ngx_http_inventory_error_add(errs, field, strlen(field), msg);

    return 0;
}


static int
ngx_http_inventory_get_string(const ngx_http_inventory_json_t *obj,
    const char *name, ngx_http_inventory_str_t *out,
    ngx_http_inventory_errors_t *errs)
{
    char                        msg[NGX_HTTP_INVENTORY_MESSAGE_LEN];
    ngx_http_inventory_json_t  *m;

    m = ngx_http_inventory_json_get(obj, name);

    if (m == NULL) {
        out->data = NULL;
        out->len = 0;
        return 1;
    }

    if (m->type != NGX_HTTP_INVENTORY_JSON_STRING
        || m->len > NGX_HTTP_INVENTORY_REASON_MAX)
    {
        snprintf(msg, sizeof(msg), "must be a string of at most %d bytes",
                 NGX_HTTP_INVENTORY_REASON_MAX);
        ngx_http_inventory_error_add(errs, name, strlen(name), msg);
        return 0;
    }

    out->data = m->str;
    out->len = m->len;

    return 1;
}


/* an optional reference: 1 to 255 visible ASCII characters */

static int
ngx_http_inventory_get_reference(const ngx_http_inventory_json_t *obj,
    ngx_http_inventory_str_t *out, ngx_http_inventory_errors_t *errs)
{
    ngx_http_inventory_json_t  *m;

    m = ngx_http_inventory_json_get(obj, "reference");

    if (m == NULL) {
        out->data = NULL;
        out->len = 0;
        return 1;
    }

    if (m->type != NGX_HTTP_INVENTORY_JSON_STRING
        || !ngx_http_inventory_reference_valid(m->str, m->len))
    {
        ngx_http_inventory_error_set(errs, "reference",
                                     "must be 1 to 255 visible ASCII "
                                     "characters");
        return 0;
    }

    out->data = m->str;
    out->len = m->len;

    return 1;
}


/* a quantity state by name: available, damaged, quality_control, incoming */

static int
ngx_http_inventory_get_state(const ngx_http_inventory_json_t *obj,
    const char *name, int required, unsigned *out,
    ngx_http_inventory_errors_t *errs)
{
    ngx_http_inventory_json_t  *m;

    m = ngx_http_inventory_json_get(obj, name);
    *out = 0;

    if (m == NULL && !required) {
        return 1;
    }

    if (m != NULL && m->type == NGX_HTTP_INVENTORY_JSON_STRING) {
        *out = ngx_http_inventory_state_of(m->str, m->len);
    }

    if (*out == 0) {
        ngx_http_inventory_error_add(errs, name, strlen(name),
                                     m == NULL ? "is required"
                                     : "must be one of available, damaged, "
                                       "quality_control, incoming");
        return 0;
    }

    return 1;
}


/* a required identifier member; field names it in errors */

static int
ngx_http_inventory_get_id(const ngx_http_inventory_json_t *obj,
    const char *name, const char *field, ngx_http_inventory_str_t *out,
    ngx_http_inventory_errors_t *errs)
{
    ngx_http_inventory_json_t  *m;

    m = ngx_http_inventory_json_get(obj, name);

    if (m == NULL) {
        ngx_http_inventory_error_add(errs, field, strlen(field),
                                     "is required");
        return 0;
    }

    if (m->type != NGX_HTTP_INVENTORY_JSON_STRING
        || !ngx_http_inventory_id_valid(m->str, m->len))
    {
        ngx_http_inventory_error_add(errs, field, strlen(field),
                                     "must be 1 to 64 characters from "
                                     "A-Z a-z 0-9 . _ - :");
        return 0;
    }

    out->data = m->str;
    out->len = m->len;

    return 1;
}


/* "lines": 1 to 100 objects {sku, location, quantity} */

static int
ngx_http_inventory_get_lines(const ngx_http_inventory_json_t *obj,
    ngx_http_inventory_reservation_t *res, ngx_http_inventory_errors_t *errs)
{
    int                         ok;
    char                        field[NGX_HTTP_INVENTORY_FIELD_LEN];
    size_t                      i;
    ngx_http_inventory_json_t  *lines, *m;
    ngx_http_inventory_line_t  *line;

    lines = ngx_http_inventory_json_get(obj, "lines");

    if (lines == NULL || lines->type != NGX_HTTP_INVENTORY_JSON_ARRAY
        || lines->count == 0 || lines->count > NGX_HTTP_INVENTORY_MAX_LINES)
    {
        ngx_http_inventory_error_set(errs, "lines",
                                     lines ? "must be an array of 1 to 100 "
                                             "lines"
                                           : "is required");
        return 0;
    }

    ok = 1;
    i = 0;

    for (m = lines->child; m; m = m->next, i++) {
        line = &res->lines[i];

        snprintf(field, sizeof(field), "lines[%zu]", i);

        if (m->type != NGX_HTTP_INVENTORY_JSON_OBJECT) {
            ngx_http_inventory_error_add(errs, field, strlen(field),
                                         "must be an object");
            ok = 0;
            continue;
        }

        ok &= ngx_http_inventory_check_members(m,
                                          ngx_http_inventory_line_members,
                                          field, errs);

        snprintf(field, sizeof(field), "lines[%zu].sku", i);
        ok &= ngx_http_inventory_get_id(m, "sku", field, &line->sku, errs);

        snprintf(field, sizeof(field), "lines[%zu].location", i);
        ok &= ngx_http_inventory_get_id(m, "location", field,
                                        &line->location, errs);

        snprintf(field, sizeof(field), "lines[%zu].quantity", i);
        ok &= ngx_http_inventory_get_int_as(m,
                                            &ngx_http_inventory_quantity_rule,
                                            field, &line->quantity, errs);
    }

    res->nlines = lines->count;

    return ok;
}


/*
 * The body of a query of many items, {"items":[{"sku","location"}, ...]}
 * with 1 to max of them, into items[] (quantity unused).  0, or -1 with
 * errs filled in.
 */

int
ngx_http_inventory_query_from_json(const ngx_http_inventory_json_t *root,
    ngx_http_inventory_line_t *items, size_t max, size_t *n,
    ngx_http_inventory_errors_t *errs)
{
    int                         ok;
    char                        field[NGX_HTTP_INVENTORY_FIELD_LEN];
    char                        msg[NGX_HTTP_INVENTORY_MESSAGE_LEN];
    size_t                      i;
    ngx_http_inventory_json_t  *list, *m;

    *n = 0;

    if (root->type != NGX_HTTP_INVENTORY_JSON_OBJECT) {
        ngx_http_inventory_error_set(errs, "body", "must be a JSON object");
        return -1;
    }

    ok = ngx_http_inventory_check_members(root,
                                          ngx_http_inventory_query_members,
                                          NULL, errs);

    list = ngx_http_inventory_json_get(root, "items");

    if (list == NULL || list->type != NGX_HTTP_INVENTORY_JSON_ARRAY
        || list->count == 0 || list->count > max)
    {
        snprintf(msg, sizeof(msg), "must be an array of 1 to %zu items", max);
        ngx_http_inventory_error_set(errs, "items",
                                     list ? msg : "is required");
        return -1;
    }

    i = 0;

    for (m = list->child; m; m = m->next, i++) {
        snprintf(field, sizeof(field), "items[%zu]", i);

        if (m->type != NGX_HTTP_INVENTORY_JSON_OBJECT) {
            ngx_http_inventory_error_add(errs, field, strlen(field),
                                         "must be an object");
            ok = 0;
            continue;
        }

        ok &= ngx_http_inventory_check_members(m,
                                          ngx_http_inventory_item_members,
                                          field, errs);

        snprintf(field, sizeof(field), "items[%zu].sku", i);
        ok &= ngx_http_inventory_get_id(m, "sku", field, &items[i].sku, errs);

        snprintf(field, sizeof(field), "items[%zu].location", i);
        ok &= ngx_http_inventory_get_id(m, "location", field,
                                        &items[i].location, errs);
        items[i].quantity = 0;
    }

    *n = list->count;

    return ok ? 0 : -1;
}


/*
 * A batch, {"changes":[...], "atomic"?, "reason"?, "reference"?}: each
 * change is validated as the body of its route (its errors named
 * "changes[i].field") and packed into cmd->changes, with the batch's
 * reason and reference where it has none of its own.
 */

static int
ngx_http_inventory_batch_from_json(ngx_http_inventory_cmd_t *cmd,
    const ngx_http_inventory_json_t *root, ngx_http_inventory_alloc_pt alloc,
    void *ctx, ngx_http_inventory_errors_t *errs)
{
    int                         ok;
    char                        msg[NGX_HTTP_INVENTORY_MESSAGE_LEN];
    size_t                      i, len;
    unsigned char              *buf;
    ngx_http_inventory_cmd_t   *change;
    ngx_http_inventory_json_t  *list, *atomic, *m;

    if (root->type != NGX_HTTP_INVENTORY_JSON_OBJECT) {
        ngx_http_inventory_error_set(errs, "body", "must be a JSON object");
        return -1;
    }

    ok = ngx_http_inventory_check_members(root,
                                          ngx_http_inventory_batch_members,
                                          NULL, errs);
    ok &= ngx_http_inventory_get_string(root, "reason", &cmd->reason, errs);
    ok &= ngx_http_inventory_get_reference(root, &cmd->reference, errs);

    atomic = ngx_http_inventory_json_get(root, "atomic");
    cmd->atomic = 1;

    if (atomic) {
        if (atomic->type != NGX_HTTP_INVENTORY_JSON_BOOL) {
            ngx_http_inventory_error_set(errs, "atomic",
                                         "must be true or false");
            ok = 0;

        } else {
            cmd->atomic = atomic->boolean ? 1 : 0;
        }
    }

    list = ngx_http_inventory_json_get(root, "changes");

    if (list == NULL || list->type != NGX_HTTP_INVENTORY_JSON_ARRAY
        || list->count == 0
        || list->count > NGX_HTTP_INVENTORY_BATCH_CHANGES)
    {
        snprintf(msg, sizeof(msg), "must be an array of 1 to %d changes",
                 NGX_HTTP_INVENTORY_BATCH_CHANGES);
        ngx_http_inventory_error_set(errs, "changes",
                                     list ? msg : "is required");
        return -1;
    }

    buf = alloc(ctx, list->count * ngx_http_inventory_change_size_max());
    change = alloc(ctx, sizeof(ngx_http_inventory_cmd_t));

    if (buf == NULL || change == NULL) {
        ngx_http_inventory_error_set(errs, "body", "is too large");
        return -1;
    }

    len = 0;
    i = 0;

    for (m = list->child; m; m = m->next, i++) {
        if (ngx_http_inventory_change_from_json(change, m, i, alloc, ctx,
                                                errs)
            != 0)
        {
            ok = 0;
            continue;
        }

        /* the batch's, unless the change names its own ("" too) */
        if (ngx_http_inventory_json_get(m, "reason") == NULL) {
            change->reason = cmd->reason;
        }

        if (ngx_http_inventory_json_get(m, "reference") == NULL) {
            change->reference = cmd->reference;
        }

        len += ngx_http_inventory_change_pack(change, buf + len);
    }

    cmd->changes.data = (const char *) buf;
    cmd->changes.len = len;
    cmd->nchanges = list->count;

    return ok ? 0 : -1;
}


/* changes[i]: op, sku, location and if_version, then its route's body */

static int
ngx_http_inventory_change_from_json(ngx_http_inventory_cmd_t *cmd,
    const ngx_http_inventory_json_t *m, size_t i,
    ngx_http_inventory_alloc_pt alloc, void *ctx,
    ngx_http_inventory_errors_t *errs)
{
    int                          ok;
    char                         field[NGX_HTTP_INVENTORY_FIELD_LEN];
    size_t                       k, n, len;
    int64_t                      version;
    ngx_http_inventory_json_t   *op, *c, *body, **last;
    ngx_http_inventory_errors_t  own;

    ngx_http_inventory_cmd_init(cmd);
    snprintf(field, sizeof(field), "changes[%zu]", i);

    if (m->type != NGX_HTTP_INVENTORY_JSON_OBJECT) {
        ngx_http_inventory_error_add(errs, field, strlen(field),
                                     "must be an object");
        return -1;
    }

    ok = 1;
    op = ngx_http_inventory_json_get(m, "op");

    for (k = 0; op && op->type == NGX_HTTP_INVENTORY_JSON_STRING
                && ngx_http_inventory_ops[k]; k++)
    {
        if (strlen(ngx_http_inventory_ops[k]) == op->len
            && memcmp(ngx_http_inventory_ops[k], op->str, op->len) == 0)
        {
            cmd->type = ngx_http_inventory_op_types[k];
            break;
        }
    }

    if (cmd->type == 0) {
        snprintf(field, sizeof(field), "changes[%zu].op", i);
        ngx_http_inventory_error_add(errs, field, strlen(field),
                                     "must be count, adjust or move");
        return -1;
    }

    snprintf(field, sizeof(field), "changes[%zu].sku", i);
    ok &= ngx_http_inventory_get_id(m, "sku", field, &cmd->sku, errs);
    snprintf(field, sizeof(field), "changes[%zu].location", i);
    ok &= ngx_http_inventory_get_id(m, "location", field, &cmd->location,
                                    errs);

    version = 0;
    snprintf(field, sizeof(field), "changes[%zu].if_version", i);
    ok &= ngx_http_inventory_get_int_as(m,
                                        &ngx_http_inventory_if_version_rule,
                                        field, &version, errs);

    if (version) {
        cmd->has_if_match = 1;
        cmd->if_match[0] = (uint64_t) version;
        cmd->if_match_n = 1;
    }

    /* the route's body: the change's other members, checked as there */
    body = alloc(ctx, sizeof(ngx_http_inventory_json_t));
    if (body == NULL) {
        return -1;
    }

    *body = *m;
    body->child = NULL;
    body->count = 0;
    last = &body->child;

    for (c = m->child; c; c = c->next) {
        for (k = 0; ngx_http_inventory_change_members[k]; k++) {
            if (strlen(ngx_http_inventory_change_members[k]) == c->key_len
                && memcmp(ngx_http_inventory_change_members[k], c->key,
                          c->key_len) == 0)
            {
                break;
            }
        }

        if (ngx_http_inventory_change_members[k]) {
            continue;
        }

        *last = alloc(ctx, sizeof(ngx_http_inventory_json_t));
        if (*last == NULL) {
            return -1;
        }

        **last = *c;
        (*last)->next = NULL;
        body->last = *last;
        body->count++;
        last = &(*last)->next;
    }

    own.n = 0;
    ok &= ngx_http_inventory_cmd_from_json(cmd, body, &own) == 0;

    /* each named changes[i].field, a member's name as it is */
    for (n = 0; n < own.n; n++) {
        k = (size_t) snprintf(field, sizeof(field), "changes[%zu].", i);
        len = own.e[n].field_len < sizeof(field) - k
              ? own.e[n].field_len : sizeof(field) - k;
        memcpy(field + k, own.e[n].field, len);
        ngx_http_inventory_error_add(errs, field, k + len, own.e[n].message);
    }

    return ok ? 0 : -1;
}

