/*
 * The files a node keeps beside its store, outside LMDB so that neither a
 * snapshot nor a replicated transaction carries them: "role" (what the
 * store is served as, for inventory-admin info) and "node_id" (the node's
 * name among its primary's followers, for inventory_sync_replicas).  Both
 * written by the master when the configuration is read.
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <sys/random.h>

#include "ngx_http_inventory_module.h"


static ngx_int_t ngx_http_inventory_node_id(ngx_conf_t *cf,
    ngx_http_inventory_main_conf_t *imcf);
static u_char *ngx_http_inventory_node_path(ngx_conf_t *cf,
    ngx_http_inventory_main_conf_t *imcf, const char *file);
static ngx_int_t ngx_http_inventory_node_write(ngx_conf_t *cf, u_char *name,
    u_char *data, size_t len);


ngx_int_t
ngx_http_inventory_node_files(ngx_conf_t *cf,
    ngx_http_inventory_main_conf_t *imcf)
{
    u_char     *name;
    ngx_str_t   role;

    if (imcf->role_follower) {
        ngx_str_set(&role, "follower\n");

    } else {
        ngx_str_set(&role, "primary\n");
    }

    name = ngx_http_inventory_node_path(cf, imcf, "role");

    if (name == NULL
        || ngx_http_inventory_node_write(cf, name, role.data, role.len)
           != NGX_OK)
    {
        return NGX_ERROR;
    }

    return ngx_http_inventory_node_id(cf, imcf);
}


/*
 * Whether the store was served as a follower before this configuration:
 * its "role" file says so.
 */

ngx_uint_t
ngx_http_inventory_node_was_follower(ngx_conf_t *cf,
    ngx_http_inventory_main_conf_t *imcf)
{
    u_char    *name, buf[16];
    ssize_t    n;
    ngx_fd_t   fd;

    name = ngx_http_inventory_node_path(cf, imcf, "role");
    if (name == NULL) {
        return 0;
    }

    fd = ngx_open_file(name, NGX_FILE_RDONLY, NGX_FILE_OPEN, 0);
    if (fd == NGX_INVALID_FILE) {
        return 0;
    }

    n = ngx_read_fd(fd, buf, sizeof(buf));
    (void) ngx_close_file(fd);

    return n >= (ssize_t) sizeof("follower") - 1
           && ngx_strncmp(buf, "follower", sizeof("follower") - 1) == 0;
}


/*
 * The node's id, made at random at the first start.  A store directory
 * copied with it gives two nodes one name: a primary counts them as one
 * follower, never as two.
 */

static ngx_int_t
ngx_http_inventory_node_id(ngx_conf_t *cf,
    ngx_http_inventory_main_conf_t *imcf)
{
    u_char      *name, hex[33];
    ssize_t      n;
    ngx_fd_t     fd;
    ngx_int_t    b;
    ngx_uint_t   i;

    name = ngx_http_inventory_node_path(cf, imcf, "node_id");
    if (name == NULL) {
        return NGX_ERROR;
    }

    fd = ngx_open_file(name, NGX_FILE_RDONLY, NGX_FILE_OPEN, 0);

    if (fd != NGX_INVALID_FILE) {
        n = ngx_read_fd(fd, hex, sizeof(hex));
        (void) ngx_close_file(fd);

        for (i = 0; n >= 32 && i < 16; i++) {
            b = ngx_hextoi(hex + 2 * i, 2);
            if (b == NGX_ERROR) {
                break;
            }

            imcf->node_id[i] = (u_char) b;
        }

        if (n >= 32 && i == 16) {
            return NGX_OK;
        }

        ngx_log_error(NGX_LOG_WARN, cf->log, 0,
                      "\"%s\" is not a node id: a new one replaces it",
                      name);
    }

    if (getrandom(imcf->node_id, sizeof(imcf->node_id), 0)
        != (ssize_t) sizeof(imcf->node_id))
    {
        ngx_log_error(NGX_LOG_EMERG, cf->log, ngx_errno,
                      "getrandom() failed");
        return NGX_ERROR;
    }

    ngx_hex_dump(hex, imcf->node_id, sizeof(imcf->node_id));
    hex[32] = '\n';

    return ngx_http_inventory_node_write(cf, name, hex, sizeof(hex));
}


static u_char *
ngx_http_inventory_node_path(ngx_conf_t *cf,
    ngx_http_inventory_main_conf_t *imcf, const char *file)
{
    u_char  *name;

    name = ngx_pnalloc(cf->pool, imcf->store_path.len + 1
                                 + ngx_strlen(file) + 1);
    if (name == NULL) {
        return NULL;
    }

    ngx_sprintf(name, "%V/%s%Z", &imcf->store_path, file);

    return name;
}


static ngx_int_t
ngx_http_inventory_node_write(ngx_conf_t *cf, u_char *name, u_char *data,
    size_t len)
{
    ngx_fd_t    fd;
    ngx_uint_t  ok;

    fd = ngx_open_file(name, NGX_FILE_WRONLY, NGX_FILE_TRUNCATE,
                       NGX_FILE_DEFAULT_ACCESS);
    if (fd == NGX_INVALID_FILE) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, ngx_errno,
                      ngx_open_file_n " \"%s\" failed", name);
        return NGX_ERROR;
    }

    ok = (ngx_write_fd(fd, data, len) == (ssize_t) len);

    if (ngx_close_file(fd) == NGX_FILE_ERROR || !ok) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, ngx_errno,
                      "writing \"%s\" failed", name);
        return NGX_ERROR;
    }

    return NGX_OK;
}
