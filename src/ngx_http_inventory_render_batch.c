/*
 * The answer to a batch (POST {prefix}batch): each change's item, or the
 * problem that refused it (not atomic); or, for an atomic batch refused,
 * one problem of the first refused change's kind naming every refused
 * change by its index.
 */

#include "ngx_http_inventory_render.h"


static void ngx_http_inventory_render_results(yajl_gen g,
    const ngx_http_inventory_cmd_t *cmd);


void
ngx_http_inventory_render_batch(yajl_gen g, ngx_http_inventory_cmd_t *cmd)
{
    char                                detail[256];
    size_t                              i;
    ngx_http_inventory_problem_t        p;
    const ngx_http_inventory_result_t  *res;

    cmd->etag = 0;

    if (cmd->outcome == NGX_HTTP_INVENTORY_OK) {
        cmd->status = 200;
        ngx_http_inventory_render_results(g, cmd);
        return;
    }

    for (i = 0; i < cmd->nchanges; i++) {
        res = &cmd->results[i];

        if (res->outcome != NGX_HTTP_INVENTORY_OK
            && res->outcome != NGX_HTTP_INVENTORY_CREATED)
        {
            break;
        }
    }

    ngx_http_inventory_change_problem(&cmd->results[i], &p, detail,
                                      sizeof(detail));
    p.detail = "the batch is atomic, and a change was refused: none "
               "was applied (errors names each refused change)";
    p.has_available = 0;
    p.has_version = 0;
    p.refused = cmd;
    cmd->status = ngx_http_inventory_problem_status(p.code);
    ngx_http_inventory_render_problem(g, &p);
}


/* {"results":[{"status", "item"} or {"status", "problem"}, ...]} */

static void
ngx_http_inventory_render_results(yajl_gen g,
    const ngx_http_inventory_cmd_t *cmd)
{
    char                                detail[256];
    size_t                              i;
    ngx_http_inventory_problem_t        p;
    const ngx_http_inventory_result_t  *res;

    yajl_gen_map_open(g);
    ngx_http_inventory_gen_str(g, "results");
    yajl_gen_array_open(g);

    for (i = 0; i < cmd->nchanges; i++) {
        res = &cmd->results[i];

        yajl_gen_map_open(g);

        if (res->outcome == NGX_HTTP_INVENTORY_OK
            || res->outcome == NGX_HTTP_INVENTORY_CREATED)
        {
            ngx_http_inventory_gen_key_int(g, "status",
                                  res->outcome == NGX_HTTP_INVENTORY_CREATED
                                  ? 201 : 200);
            ngx_http_inventory_gen_str(g, "item");
            ngx_http_inventory_render_item(g, res->sku, res->location,
                                           &res->item);

        } else {
            ngx_http_inventory_change_problem(res, &p, detail,
                                              sizeof(detail));
            ngx_http_inventory_gen_key_int(g, "status",
                                   ngx_http_inventory_problem_status(p.code));
            ngx_http_inventory_gen_str(g, "problem");
            ngx_http_inventory_render_problem(g, &p);
        }

        yajl_gen_map_close(g);
    }

    yajl_gen_array_close(g);
    yajl_gen_map_close(g);
}
