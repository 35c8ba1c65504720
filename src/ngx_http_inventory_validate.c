/*
 * Body schemas.  Every member is checked, so that one 400 names every
 * problem of a request; a command is only filled in from a valid body.
 */

#include <stdio.h>
#include <string.h>

#include "ngx_http_inventory_validate.h"


typedef struct {
    const char                 *name;
    int64_t                     min;
    int64_t                     max;
    unsigned                    required:1;
    unsigned                    nonzero:1;
} ngx_http_inventory_int_rule_t;


static int ngx_http_inventory_check_members(
    const ngx_http_inventory_json_t *root, const char *const *allowed,
    ngx_http_inventory_errors_t *errs);
static int ngx_http_inventory_get_int(const ngx_http_inventory_json_t *obj,
    const ngx_http_inventory_int_rule_t *rule, int64_t *out,
    ngx_http_inventory_errors_t *errs);
static int ngx_http_inventory_get_reason(const ngx_http_inventory_json_t *obj,
    ngx_http_inventory_str_t *out, ngx_http_inventory_errors_t *errs);


static const char  *ngx_http_inventory_count_members[] = {
    "on_hand", "min_level", "reason", NULL
};

static const char  *ngx_http_inventory_adjust_members[] = {
    "delta", "reason", NULL
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
            ngx_http_inventory_error_add(errs, "body", 4, err);
        }

        return -1;
    }

    return ngx_http_inventory_cmd_from_json(cmd, root, errs);
}


int
ngx_http_inventory_cmd_from_json(ngx_http_inventory_cmd_t *cmd,
    const ngx_http_inventory_json_t *root, ngx_http_inventory_errors_t *errs)
{
    int  ok;

    if (root->type != NGX_HTTP_INVENTORY_JSON_OBJECT) {
        ngx_http_inventory_error_add(errs, "body", 4,
                                     "must be a JSON object");
        return -1;
    }

    switch (cmd->type) {

    case NGX_HTTP_INVENTORY_CMD_COUNT:
        ok = ngx_http_inventory_check_members(root,
                                         ngx_http_inventory_count_members,
                                         errs);

        ok &= ngx_http_inventory_get_int(root,
                                         &ngx_http_inventory_on_hand_rule,
                                         &cmd->on_hand, errs);
        cmd->has_min_level =
            ngx_http_inventory_json_get(root, "min_level") != NULL;
        ok &= ngx_http_inventory_get_int(root,
                                         &ngx_http_inventory_min_level_rule,
                                         &cmd->min_level, errs);
        break;

    case NGX_HTTP_INVENTORY_CMD_ADJUST:
        ok = ngx_http_inventory_check_members(root,
                                         ngx_http_inventory_adjust_members,
                                         errs);

        ok &= ngx_http_inventory_get_int(root, &ngx_http_inventory_delta_rule,
                                         &cmd->delta, errs);
        break;

    default:
        ngx_http_inventory_error_add(errs, "body", 4, "unexpected body");
        return -1;
    }

    ok &= ngx_http_inventory_get_reason(root, &cmd->reason, errs);

    return ok ? 0 : -1;
}


/* adds an error for every member the object may not have */

static int
ngx_http_inventory_check_members(const ngx_http_inventory_json_t *root,
    const char *const *allowed, ngx_http_inventory_errors_t *errs)
{
    int                         ok;
    size_t                      i;
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
            ngx_http_inventory_error_add(errs, m->key, m->key_len,
                                         "unknown member");
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
    char                        msg[NGX_HTTP_INVENTORY_MESSAGE_LEN];
    int64_t                     v;
    ngx_http_inventory_json_t  *m;

    m = ngx_http_inventory_json_get(obj, rule->name);

    if (m == NULL) {
        if (rule->required) {
            ngx_http_inventory_error_add(errs, rule->name, strlen(rule->name),
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
    ngx_http_inventory_error_add(errs, rule->name, strlen(rule->name), msg);

    return 0;
}


static int
ngx_http_inventory_get_reason(const ngx_http_inventory_json_t *obj,
    ngx_http_inventory_str_t *out, ngx_http_inventory_errors_t *errs)
{
    ngx_http_inventory_json_t  *m;

    m = ngx_http_inventory_json_get(obj, "reason");

    if (m == NULL) {
        out->data = NULL;
        out->len = 0;
        return 1;
    }

    if (m->type != NGX_HTTP_INVENTORY_JSON_STRING
        || m->len > NGX_HTTP_INVENTORY_REASON_MAX)
    {
        ngx_http_inventory_error_add(errs, "reason", 6,
                                     "must be a string of at most 256 bytes");
        return 0;
    }

    out->data = m->str;
    out->len = m->len;

    return 1;
}
