/*
 * inventory-admin: offline tool for a store.
 *
 *   inventory-admin verify STORE     replay every item's events and compare
 *                                    with the projections and indexes
 *   inventory-admin rebuild STORE [--take-write-lock]
 *                                    recompute projections and indexes
 *   inventory-admin dump STORE [--after SEQ]
 *                                    the log as JSON lines
 *   inventory-admin stats STORE      counts and sizes, as JSON
 *
 * verify, dump and stats only read (LMDB read transactions), so they are
 * safe while nginx serves.  Exit status: 0 fine, 1 verify found a
 * difference, 2 the command could not run.
 */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ngx_http_inventory_store.h"
#include "ngx_http_inventory_render.h"
#include "ngx_http_inventory_verify.h"


static int ngx_http_inventory_admin_rebuild(ngx_http_inventory_store_t *st,
    int force);
static int ngx_http_inventory_admin_dump(ngx_http_inventory_store_t *st,
    uint64_t after);
static int ngx_http_inventory_admin_stats(ngx_http_inventory_store_t *st);
static int ngx_http_inventory_admin_readers(ngx_http_inventory_store_t *st);
static void ngx_http_inventory_admin_print(void *ctx, const char *s,
    size_t len);
static int ngx_http_inventory_admin_event(void *ctx,
    const ngx_http_inventory_event_t *ev);


int
main(int argc, char **argv)
{
    int                         rc, force;
    char                        file[4096];
    int64_t                     seq;
    unsigned                    flags;
    uint64_t                    after;
    const char                 *cmd, *path;
    ngx_http_inventory_store_t *st;

    if (argc < 3) {
        fprintf(stderr, "usage: %s verify|rebuild|dump|stats STORE "
                        "[--take-write-lock] [--after SEQ]\n", argv[0]);
        return 2;
    }

    cmd = argv[1];
    path = argv[2];
    force = 0;
    after = 0;

    if (argc == 4 && strcmp(argv[3], "--take-write-lock") == 0
        && strcmp(cmd, "rebuild") == 0)
    {
        force = 1;

    } else if (argc == 5 && strcmp(argv[3], "--after") == 0
               && strcmp(cmd, "dump") == 0)
    {
        if (ngx_http_inventory_parse_int(argv[4], strlen(argv[4]), &seq) != 0
            || seq < 0)
        {
            fprintf(stderr, "%s: --after takes a seq, 0 or more\n", argv[0]);
            return 2;
        }

        after = (uint64_t) seq;

    } else if (argc != 3) {
        fprintf(stderr, "%s: unexpected arguments\n", argv[0]);
        return 2;
    }

    /* never create a store: LMDB would, in any directory it is given */
    snprintf(file, sizeof(file), "%s/data.mdb", path);

    if (access(file, R_OK) != 0) {
        fprintf(stderr, "%s: \"%s\" is not a store (no data.mdb)\n",
                argv[0], path);
        return 2;
    }

    /* map size 0: LMDB takes the size the store was made with */
    flags = strcmp(cmd, "rebuild") == 0 ? 0 : NGX_HTTP_INVENTORY_STORE_RDONLY;

    rc = ngx_http_inventory_store_open(&st, path, 0, 1, flags);
    if (rc != 0) {
        fprintf(stderr, "%s: cannot open the store \"%s\": %s\n", argv[0],
                path, ngx_http_inventory_store_strerror(rc));
        return 2;
    }

    if (strcmp(cmd, "verify") == 0) {
        rc = ngx_http_inventory_verify(st);

    } else if (strcmp(cmd, "rebuild") == 0) {
        rc = ngx_http_inventory_admin_rebuild(st, force);

    } else if (strcmp(cmd, "dump") == 0) {
        rc = ngx_http_inventory_admin_dump(st, after);

    } else if (strcmp(cmd, "stats") == 0) {
        rc = ngx_http_inventory_admin_stats(st);

    } else {
        fprintf(stderr, "%s: unknown command \"%s\"\n", argv[0], cmd);
        rc = 2;
    }

    ngx_http_inventory_store_close(st);

    return rc;
}



/*
 * Recomputes items, the item event index and the low-stock index from the
 * log, in one write transaction: writers wait meanwhile, readers see the
 * old state until it commits.
 */

static int
ngx_http_inventory_admin_rebuild(ngx_http_inventory_store_t *st, int force)
{
    int       rc, readers;
    uint64_t  events, bad;

    readers = ngx_http_inventory_admin_readers(st);

    if (readers > 0 && !force) {
        fprintf(stderr, "rebuild: the store is in use (%d readers, e.g. a "
                        "running nginx); stop it, or pass --take-write-lock\n",
                readers);
        return 2;
    }

    rc = ngx_http_inventory_store_rebuild(st, &events, &bad);

    if (rc == NGX_HTTP_INVENTORY_STORE_OK) {
        printf("rebuild: ok, %llu events replayed\n",
               (unsigned long long) events);
        return 0;
    }

    if (bad == UINT64_MAX) {
        fprintf(stderr, "rebuild: the log has an unreadable event\n");

    } else if (bad) {
        fprintf(stderr, "rebuild: event %llu does not apply to its item\n",
                (unsigned long long) bad);
    }

    fprintf(stderr, "rebuild: %s; nothing was changed\n",
            ngx_http_inventory_store_strerror(rc));

    return 2;
}



/* the log as the feed renders it, one event a line */

static int
ngx_http_inventory_admin_dump(ngx_http_inventory_store_t *st, uint64_t after)
{
    int  rc;

    rc = ngx_http_inventory_store_read_begin(st);

    if (rc == 0) {
        rc = ngx_http_inventory_store_log(st, after, SIZE_MAX,
                                          ngx_http_inventory_admin_event,
                                          stdout);
        ngx_http_inventory_store_read_end(st);
    }

    if (rc != 0) {
        fprintf(stderr, "dump: %s\n", ngx_http_inventory_store_strerror(rc));
        return 2;
    }

    return fflush(stdout) == 0 ? 0 : 2;
}


static int
ngx_http_inventory_admin_event(void *ctx, const ngx_http_inventory_event_t *ev)
{
    yajl_gen  g;

    g = yajl_gen_alloc(NULL);
    if (g == NULL) {
        return ENOMEM;
    }

    yajl_gen_config(g, yajl_gen_print_callback,
                    ngx_http_inventory_admin_print, ctx);
    ngx_http_inventory_render_event(g, ev);
    yajl_gen_free(g);

    return fputc('\n', ctx) == EOF ? EIO : 0;
}


static void
ngx_http_inventory_admin_print(void *ctx, const char *s, size_t len)
{
    fwrite(s, 1, len, ctx);
}


static int
ngx_http_inventory_admin_stats(ngx_http_inventory_store_t *st)
{
    int                                rc, readers;
    ngx_http_inventory_store_stat_t    stat;
    ngx_http_inventory_store_counts_t  n;

    /* before this tool takes reader slots of its own */
    readers = ngx_http_inventory_admin_readers(st);

    rc = ngx_http_inventory_store_stat(st, &stat);
    if (rc == 0) {
        rc = ngx_http_inventory_store_counts(st, &n);
    }

    if (rc != 0) {
        fprintf(stderr, "stats: %s\n", ngx_http_inventory_store_strerror(rc));
        return 2;
    }

    printf("{\"last_seq\":%llu,\"events\":%llu,\"items\":%llu,"
           "\"reservations\":%llu,\"active_reservations\":%llu,"
           "\"low_stock\":%llu,\"idempotency_keys\":%llu,"
           "\"map_size\":%llu,\"used\":%llu,\"readers\":%d}\n",
           (unsigned long long) stat.last_seq,
           (unsigned long long) n.events,
           (unsigned long long) n.items,
           (unsigned long long) n.reservations,
           (unsigned long long) n.reservations_active,
           (unsigned long long) n.low_stock,
           (unsigned long long) n.idempotency_keys,
           (unsigned long long) stat.map_size,
           (unsigned long long) stat.used, readers);

    return 0;
}


/* reader slots held by live processes: a running nginx holds some */

static int
ngx_http_inventory_admin_readers(ngx_http_inventory_store_t *st)
{
    (void) ngx_http_inventory_store_reader_check(st, NULL);

    return (int) ngx_http_inventory_store_readers(st);
}
