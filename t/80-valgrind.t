# Issue 7: valgrind (memcheck) over nginx with the module and over the
# admin tool, with zero errors.
#
# nginx runs in one process (master_process off; daemon off;) under
# memcheck --leak-check=full --track-origins=yes, commits on a declared
# thread pool (inventory_thread_pool), and serves a request mix that
# touches every route and most error paths: health, item PUT/GET/HEAD with
# If-Match / If-None-Match, as_of, the SKU aggregate, adjustments, single
# and cart reservations, their reads, commits, releases and expiry (a short
# TTL, waited for), transfers, idempotent retries (replayed, reused, and
# run again once inventory_idempotency_ttl has passed), the event feed with
# its cursor and long polls (woken by a write, timing out, abandoned by the
# client), item events, low stock, metrics, a chunked body and one sent in
# pieces, and bad requests (malformed JSON, validation, 404/405/409/412/
# 413/415/422); last, a long poll and three concurrent writes.
#
# In single-process mode SIGQUIT does not drain: ngx_single_process_cycle()
# runs the modules' exit_process and exits at once, abandoning whatever is
# in flight (its memory would show as "possibly lost").  So the stop comes
# once every connection is closed and logged; then the valgrind log must
# say 0 errors, 0 bytes definitely lost, and no leak record, not even a
# "possibly lost" one, may name the module.  Only the two nginx-core leaks
# of t/valgrind.supp (present without the module) are suppressed, bounded
# in size.  A canary program (a leak in a function named like the module's,
# an uninitialised read) proves first that these checks see what they look
# for.
#
# Then build/inventory-admin runs under memcheck for each command (stats,
# verify, dump, dump --after, rebuild, verify again) on the store nginx
# left, and on a directory that is not a store, a missing one, and a usage
# error: 0 errors, no leak at all naming it.
#
# Skipped under the ASan pass (INVENTORY_PRELOAD): valgrind and ASan do not
# mix.  INVENTORY_KEEP=1 keeps the logs.
use strict;
use warnings;
use Test::More;
use File::Temp qw(tempdir);
use POSIX ();
use Time::HiRes qw(time sleep);
use IO::Socket::INET;
use InvTest qw(item_ok problem_ok reservation_ok async_req async_wait
               feed_pages admin_run encode_json decode_json ts_ms header);

plan skip_all => 'ASan pass (INVENTORY_PRELOAD is set): valgrind and ASan '
                 . 'do not mix'
    if $ENV{INVENTORY_PRELOAD};

my ($VALGRIND) = grep { -x } ($ENV{VALGRIND} // ()),
                 map { "$_/valgrind" } split /:/, ($ENV{PATH} // '');
plan skip_all => 'valgrind is not installed' unless $VALGRIND;

my $NGINX = $InvTest::NGINX;
my $MODULE = $InvTest::MODULE;
my $ADMIN = $InvTest::ADMIN;
my $SUPP = "$InvTest::ROOT/t/valgrind.supp";
for my $f ($MODULE, $ADMIN, $SUPP) {
    die "$f is missing (make module)\n" unless -e $f;
}

use constant VG_ERR => 99;                # valgrind's --error-exitcode
use constant WORKER_CONNECTIONS => 256;   # sizes the suppressed core leak
use constant IDEM_TTL => 8;               # inventory_idempotency_ttl, s
my $T0 = time;

my $DIR = tempdir('inventory-vg-XXXXXX', TMPDIR => 1,
                  CLEANUP => !$ENV{INVENTORY_KEEP});
chmod 0755, $DIR;
diag "keeping $DIR" if $ENV{INVENTORY_KEEP};
my $DATA = "$DIR/data";

my @VG = ($VALGRIND, '--tool=memcheck', '--error-exitcode=' . VG_ERR,
          '--track-origins=yes', '--leak-check=full',
          '--errors-for-leak-kinds=definite',
          '--show-leak-kinds=definite,possible', '--num-callers=40',
          # nginx unloads the module before memcheck's leak check:
          # without this its frames would print as "???"
          '--keep-debuginfo=yes',
          "--suppressions=$SUPP", '-s');

# --------------------------------------------------------------------------
# the valgrind log

# vg_report($log): { errors, definite, possible, suppressed_bytes, used =>
# [[name, file, bytes]], blocks => [error/leak texts], module_leaks => [...] }
sub vg_report {
    my ($file) = @_;
    my $log = InvTest::slurp($file) // '';
    my %r = (log => $log, errors => undef, definite => undef, possible => 0,
             used => [], blocks => [], module_leaks => [],
             module_possible => [],
             suppressed_bytes => 0);
    my @e = $log =~ /ERROR SUMMARY: ([\d,]+) errors?/g;
    ($r{errors} = $e[-1]) =~ s/,//g if @e;
    if ($log =~ /definitely lost: ([\d,]+) bytes/) {
        ($r{definite} = $1) =~ s/,//g;
    } elsif ($log =~ /All heap blocks were freed -- no leaks are possible/) {
        $r{definite} = 0;
    }
    if ($log =~ /possibly lost: ([\d,]+) bytes/) {
        ($r{possible} = $1) =~ s/,//g;
    }
    while ($log =~ /used_suppression:\s+\d+\s+(\S+)\s+(\S+?):\d+
                    (?:\s+suppressed:\s+([\d,]+)\s+bytes)?/gx)
    {
        my ($name, $f, $b) = ($1, $2, $3 // 0);
        $b =~ s/,//g;
        push @{ $r{used} }, [$name, $f, $b];
        $r{suppressed_bytes} += $b if $f eq $SUPP;
    }
    # each error or leak record: from its headline to the blank line
    my @lines = split /\n/, $log;
    for (my $i = 0; $i < @lines; $i++) {
        next unless $lines[$i] =~ /^==\d+== (?!    )(\S.*)/;
        my $head = $1;
        next if $head =~ /^(?:Memcheck|Copyright|Using Valgrind|Command|Parent
                            |HEAP SUMMARY|LEAK SUMMARY|Reachable|To see|For
                            |ERROR SUMMARY|Warning: set address range
                            |All heap|in use at exit|total heap usage
                            |For lists|Rerun|Use --)/x;
        my @b = ($lines[$i]);
        while ($i + 1 < @lines && $lines[$i + 1] =~ /^==\d+==\s{4}/) {
            push @b, $lines[++$i];
        }
        my $text = join "\n", @b;
        push @{ $r{blocks} }, $text;
        my $ours = $text =~ /ngx_http_inventory_|ngx_http_inventory_module\.so
                             |inventory-admin/x;
        push @{ $r{module_leaks} }, $text
            if $ours && $head =~ /(?:definitely|indirectly) lost/;
        push @{ $r{module_possible} }, $text
            if $ours && $head =~ /possibly lost/;
    }
    return \%r;
}

# vg_ok($report, $label, %opt): the assertions on one valgrind run
sub vg_ok {
    my ($r, $label, %opt) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    my $show = sub {
        my @b = @{ $r->{blocks} };
        @b = @b[0 .. 11] if @b > 12;
        return join "\n\n", @b;
    };
    ok(defined $r->{errors} && $r->{errors} == 0,
       "$label: valgrind ERROR SUMMARY: 0 errors")
        or diag "errors: " . ($r->{errors} // 'no summary (did it exit?)')
                . "\n" . $show->();
    ok(defined $r->{definite} && $r->{definite} == 0,
       "$label: 0 bytes definitely lost (after the nginx-core suppressions)")
        or diag "definitely lost: " . ($r->{definite} // 'no summary')
                . "\n" . $show->();
    ok(!@{ $r->{module_leaks} }, "$label: no leak record names the module "
                                 . "or the admin tool")
        or diag join "\n\n", @{ $r->{module_leaks} };
    ok(!@{ $r->{module_possible} }, "$label: no \"possibly lost\" record "
                                    . 'names the module or the admin tool')
        or diag join "\n\n", @{ $r->{module_possible} };
    my @foreign = grep { $_->[1] eq $SUPP
                         && $_->[0] !~ /^nginx-core-/ } @{ $r->{used} };
    ok(!@foreign, "$label: only nginx-core suppressions of t/valgrind.supp "
                  . 'were used')
        or diag join "\n", map { "@$_" } @foreign;
    if (defined $opt{max_suppressed}) {
        cmp_ok($r->{suppressed_bytes}, '<=', $opt{max_suppressed},
               "$label: the suppressed nginx-core leaks are no larger than "
               . "nginx's own ($opt{max_suppressed} bytes)")
            or diag join "\n", map { "@$_" } @{ $r->{used} };
    } else {
        is($r->{suppressed_bytes}, 0, "$label: nothing of t/valgrind.supp "
                                      . 'was needed');
    }
    diag sprintf "%s: %s errors, definitely lost %s, possibly lost %s, "
                 . "suppressed by t/valgrind.supp %s bytes (%s)",
        $label, $r->{errors} // '?', $r->{definite} // '?', $r->{possible},
        $r->{suppressed_bytes},
        join(', ', map { "$_->[0]: $_->[2]" } @{ $r->{used} }) || 'none';
}

# --------------------------------------------------------------------------
# the checks above must see what they look for: a small program that leaks
# from a function named like the module's and reads uninitialised memory

sub spawn;
SKIP: {
    my $cc = InvTest::which('gcc');
    skip 'no gcc for the canary', 5 unless $cc;
    open my $fh, '>', "$DIR/canary.c" or die $!;
    print {$fh} <<'EOC';
#include <stdlib.h>
#include <stdio.h>
__attribute__((noinline)) static void ngx_http_inventory_canary(void)
{ volatile char *p = malloc(77); p[0] = 1; }
int main(void)
{ int *u = malloc(sizeof(int)); int x = *u; free(u);
  ngx_http_inventory_canary(); if (x == 42) puts("42"); return 0; }
EOC
    close $fh;
    system($cc, '-O0', '-g', '-o', "$DIR/canary", "$DIR/canary.c") == 0
        or skip 'the canary does not compile', 5;
    my $pid = spawn("$DIR/canary.out", @VG, "--log-file=$DIR/canary.log",
                    "$DIR/canary");
    waitpid $pid, 0;
    is($? >> 8, VG_ERR, "canary: valgrind exits with --error-exitcode");
    my $r = vg_report("$DIR/canary.log");
    is($r->{errors}, 2, 'canary: 2 errors (an uninitialised read, a leak)');
    is($r->{definite}, 77, 'canary: 77 bytes definitely lost');
    is(scalar @{ $r->{module_leaks} }, 1, 'canary: the leak is attributed to '
                                          . 'ngx_http_inventory_*');
    ok((grep { /uninitialised value/ } @{ $r->{blocks} }),
       'canary: the uninitialised read is reported');
}

# --------------------------------------------------------------------------
# nginx under valgrind

my $PORT = InvTest::free_port();
my $CONF = "$DIR/nginx.conf";
{
    open my $fh, '>', $CONF or die "$CONF: $!";
    print {$fh} <<"EOF";
load_module $MODULE;
master_process off;
daemon off;
worker_processes 1;
error_log $DIR/error.log info;
pid $DIR/nginx.pid;
thread_pool inventory_vg threads=2 max_queue=1024;
events { worker_connections ${\ WORKER_CONNECTIONS}; }
http {
    access_log $DIR/access.log;
    client_body_temp_path $DIR/body;
    proxy_temp_path $DIR/proxy;
    fastcgi_temp_path $DIR/fastcgi;
    uwsgi_temp_path $DIR/uwsgi;
    scgi_temp_path $DIR/scgi;
    client_max_body_size 16k;
    inventory_store $DATA map_size=64m;
    inventory_thread_pool inventory_vg;
    inventory_reservation_ttl 30s;
    inventory_idempotency_ttl ${\ IDEM_TTL}s;
    server {
        listen 127.0.0.1:$PORT;
        location /v1/ { inventory; }
        location = /metrics { inventory_metrics; }
    }
}
EOF
    close $fh;
}

my $NG_LOG = "$DIR/valgrind-nginx.log";
my $VG_PID;
END {
    if ($VG_PID && kill 0, $VG_PID) {
        kill 'KILL', $VG_PID;
        waitpid $VG_PID, 0;
    }
}

sub spawn {
    my ($out, @cmd) = @_;
    STDOUT->flush;
    STDERR->flush;
    my $pid = fork // die "fork: $!";
    if (!$pid) {
        open STDIN, '<', '/dev/null';
        open STDOUT, '>', $out or POSIX::_exit(127);
        open STDERR, '>&', \*STDOUT or POSIX::_exit(127);
        { no warnings 'exec'; exec { $cmd[0] } @cmd; }
        POSIX::_exit(127);
    }
    return $pid;
}

# a stand-in for the harness object: only its HTTP helpers are used
my $n = bless { port => $PORT, dir => $DIR, owner => $$, running => 0,
                allow => [] }, 'InvTest';

$VG_PID = spawn("$DIR/nginx.out", @VG, "--log-file=$NG_LOG",
                $NGINX, '-p', "$DIR/", '-e', "$DIR/error.log", '-c', $CONF);
{
    my $deadline = time + 120;
    my $up = 0;
    while (time < $deadline) {
        last if waitpid($VG_PID, POSIX::WNOHANG()) == $VG_PID;
        my $r = $n->raw_req(GET => '/v1/health', timeout => 10);
        if ($r->{status} == 200) { $up = 1; last }
        sleep 0.25;
    }
    if (!$up) {
        my $out = InvTest::slurp("$DIR/nginx.out") // '';
        my $el = InvTest::slurp("$DIR/error.log") // '';
        my $vl = InvTest::slurp($NG_LOG) // '';
        kill 'KILL', $VG_PID;
        waitpid $VG_PID, 0;
        undef $VG_PID;
        BAIL_OUT("nginx under valgrind did not answer within 120 s\n"
                 . "--- output:\n$out\n--- error.log:\n$el\n--- valgrind:\n$vl");
    }
    diag sprintf 'nginx under valgrind answers after %.1f s', time - $T0;
}

# --------------------------------------------------------------------------
# the request mix

my %SEEN;                         # "METHOD route-kind" => statuses
sub req {
    my ($m, $p, %o) = @_;
    my $r = $n->req($m, $p, %o);
    (my $k = $p) =~ s/\?.*//;
    $k =~ s/r_[0-9A-Za-z]{22}/{id}/;
    $SEEN{"$m $k"}{ $r->{status} }++;
    return $r;
}
sub st_ok {
    my ($r, $status, $name) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    ok($r->{status} == $status, "$name: $status")
        or diag InvTest::show($r);
    return $r;
}

my $I = '/v1/inventory/VG-1/main';
my $J = { 'Content-Type' => 'application/json' };

# --- health, items, conditional requests -----------------------------------------
{
    my $r = st_ok(req(GET => '/v1/health'), 200, 'health');
    is($r->{json}{status}, 'ok', 'health: status ok');
    st_ok(req(HEAD => '/v1/health'), 200, 'HEAD health');

    item_ok(req(PUT => $I, json => { on_hand => 100, min_level => 10 }), 201,
            { on_hand => 100, min_level => 10, version => 1 }, 'PUT creates');
    item_ok(req(PUT => $I, json => { on_hand => 100, reason => 'recount' }),
            200, { version => 2, min_level => 10 }, 'PUT again: 200, v2');
    item_ok(req(GET => $I), 200, { version => 2 }, 'GET item');
    $r = req(HEAD => $I);
    ok($r->{status} == 200 && $r->{body} eq '' && header($r, 'etag') eq '"2"',
       'HEAD item: 200, no body, ETag "2"') or diag InvTest::show($r);
    $r = req(GET => $I, headers => { 'If-None-Match' => '"2"' });
    ok($r->{status} == 304 && $r->{body} eq '', 'If-None-Match "2": 304')
        or diag InvTest::show($r);
    st_ok(req(GET => $I, headers => { 'If-None-Match' => '"7", W/"2"' }), 304,
          'If-None-Match list with W/"2"');
    item_ok(req(GET => $I, headers => { 'If-None-Match' => '"1"' }), 200,
            { version => 2 }, 'If-None-Match "1" (stale): 200');
    item_ok(req(PUT => $I, json => { on_hand => 90 },
                headers => { 'If-Match' => '"2"' }), 200,
            { on_hand => 90, version => 3 }, 'If-Match "2": 200, v3');
    problem_ok(req(PUT => $I, json => { on_hand => 91 },
                   headers => { 'If-Match' => '"2"' }), 412,
               'version-mismatch', 'If-Match "2" again: 412');
    problem_ok(req(PUT => '/v1/inventory/VG-NONE/main', json => { on_hand => 1 },
                   headers => { 'If-Match' => '*' }), 412, 'version-mismatch',
               'If-Match * on a missing item: 412');
    problem_ok(req(PUT => $I, json => { on_hand => 1 },
                   headers => { 'If-Match' => 'garbage' }), 400,
               'invalid-request', 'If-Match garbage: 400', field => 'If-Match');

    my $at = req(GET => $I)->{json}{updated_at};
    item_ok(req(GET => "$I?as_of=$at"), 200, { version => 3 }, 'as_of now');
    problem_ok(req(GET => "$I?as_of=2000-01-01T00:00:00.000Z"), 404,
               'not-found', 'as_of before the item: 404');
    problem_ok(req(GET => "$I?as_of=yesterday"), 400, 'invalid-request',
               'as_of malformed: 400', field => 'as_of');

    item_ok(req(PUT => '/v1/inventory/VG-1/north',
                json => { on_hand => 5, min_level => 10 }), 201,
            { low_stock => 1, version => 2 },
            'PUT a low item: 201, v2 (LowStockDetected)');
    $r = req(GET => '/v1/inventory/VG-1');
    ok($r->{status} == 200 && ($r->{json}{on_hand} // 0) == 95
       && @{ $r->{json}{locations} // [] } == 2, 'aggregate: 95 over 2')
        or diag InvTest::show($r);
    st_ok(req(HEAD => '/v1/inventory/VG-1'), 200, 'HEAD aggregate');
    problem_ok(req(GET => '/v1/inventory/VG-NONE'), 404, 'not-found',
               'aggregate of an unknown SKU');
    for my $loc (qw(main north)) {
        item_ok(req(PUT => "/v1/inventory/VG-4/$loc",
                    json => { on_hand => 1, min_level => 5 }), 201,
                { low_stock => 1 }, "PUT VG-4/$loc, low");
    }
}

# --- adjustments -----------------------------------------------------------------
{
    item_ok(req(POST => "$I/adjustments", json => { delta => 15, reason => 'in' }),
            200, { on_hand => 105 }, 'adjust +15');
    item_ok(req(POST => "$I/adjustments", json => { delta => -5 }), 200,
            { on_hand => 100 }, 'adjust -5');
    problem_ok(req(POST => "$I/adjustments", json => { delta => -1000 }), 409,
               'insufficient-stock', 'adjust -1000: 409');
    problem_ok(req(POST => '/v1/inventory/VG-NONE/main/adjustments',
                   json => { delta => -1 }), 404, 'not-found',
               'negative adjustment of an unknown item');
    item_ok(req(POST => '/v1/inventory/VG-2/main/adjustments',
                json => { delta => 50 }), 201, { on_hand => 50 },
            'positive adjustment creates VG-2');
    problem_ok(req(POST => "$I/adjustments", json => { delta => 0 }), 400,
               'invalid-request', 'delta 0', field => 'delta');
    problem_ok(req(POST => "$I/adjustments", json => { delta => 1 },
                   headers => { 'If-Match' => '"1"' }), 412,
               'version-mismatch', 'adjustment with a stale If-Match');
}

# --- reservations ------------------------------------------------------------------
my @EXPIRING;
{
    my $r = req(POST => "$I/reservations",
                json => { quantity => 3, ttl_seconds => 600,
                          reference => 'order-1' });
    reservation_ok($r, 201, { state => 'active', reference => 'order-1',
                              ttl => 600, lines => [['VG-1', 'main', 3]] },
                   'reserve 3');
    my $id = $r->{json}{id} // 'r_none';
    reservation_ok(req(GET => "/v1/reservations/$id"), 200,
                   { id => $id, state => 'active' }, 'GET reservation');
    st_ok(req(HEAD => "/v1/reservations/$id"), 200, 'HEAD reservation');
    reservation_ok(req(POST => "/v1/reservations/$id/commit"), 200,
                   { state => 'committed' }, 'commit');
    problem_ok(req(POST => "/v1/reservations/$id/commit"), 409,
               'reservation-not-active', 'commit again');
    problem_ok(req(POST => "/v1/reservations/$id/release", json => {}), 409,
               'reservation-not-active', 'release a committed one');

    $r = req(POST => "$I/reservations", json => { quantity => 2 });
    reservation_ok($r, 201, { ttl => 30, reference => undef },
                   'reserve 2 (TTL of inventory_reservation_ttl)');
    reservation_ok(req(POST => "/v1/reservations/$r->{json}{id}/release",
                       json => {}), 200, { state => 'released' }, 'release');

    $r = req(POST => '/v1/reservations', json => {
        reference => 'cart-1', ttl_seconds => 600, lines => [
            { sku => 'VG-1', location => 'main', quantity => 2 },
            { sku => 'VG-2', location => 'main', quantity => 5 },
            { sku => 'VG-1', location => 'main', quantity => 1 } ] });
    reservation_ok($r, 201, { state => 'active', lines => [
        ['VG-1', 'main', 2], ['VG-2', 'main', 5], ['VG-1', 'main', 1]] },
                   'cart of 3 lines');
    reservation_ok(req(POST => "/v1/reservations/$r->{json}{id}/commit"), 200,
                   { state => 'committed' }, 'commit the cart');

    $r = req(POST => '/v1/reservations', json => { lines => [
            { sku => 'VG-1', location => 'north', quantity => 4 },
            { sku => 'VG-1', location => 'north', quantity => 4 },
            { sku => 'VG-2', location => 'main', quantity => 1 } ] });
    my $sl = ref $r->{json} eq 'HASH' ? $r->{json}{lines} : undef;
    ok($r->{status} == 409 && ($r->{json}{code} // '') eq 'insufficient-stock'
       && ref $sl eq 'ARRAY' && @$sl == 1 && ($sl->[0]{quantity} // 0) == 8
       && ($sl->[0]{available} // -1) == 5,
       'cart with a short line: 409 naming the one short item (8 of 5)')
        or diag InvTest::show($r);
    problem_ok(req(POST => '/v1/reservations', json => { lines => [
            { sku => 'VG-NONE', location => 'main', quantity => 1 } ] }),
               404, 'not-found', 'cart with an unknown item');
    problem_ok(req(POST => '/v1/reservations', json => { lines => [] }), 400,
               'invalid-request', 'cart without lines');
    problem_ok(req(POST => '/v1/reservations', json => { lines => [ map {
            { sku => 'VG-1', location => 'main', quantity => 1 } } 1 .. 101 ] }),
               400, 'invalid-request', 'cart of 101 lines');
    problem_ok(req(POST => '/v1/inventory/VG-NONE/main/reservations',
                   json => { quantity => 1 }), 404, 'not-found',
               'reserve an unknown item');
    problem_ok(req(POST => "$I/reservations", json => { quantity => 100000 }),
               409, 'insufficient-stock', 'reserve more than available');
    problem_ok(req(POST => "$I/reservations", json => { quantity => 1 },
                   headers => { 'If-Match' => '"1"' }), 412,
               'version-mismatch', 'reserve with a stale If-Match');
    problem_ok(req(POST => "$I/reservations",
                   json => { quantity => 1, ttl_seconds => 86401 }), 400,
               'invalid-request', 'ttl_seconds 86401', field => 'ttl_seconds');
    problem_ok(req(GET => '/v1/reservations/r_0000000000000000000000'), 404,
               'not-found', 'an unknown reservation id');
    problem_ok(req(GET => '/v1/reservations/not-an-id'), 404, 'not-found',
               'a reservation id of another shape');

    # left to expire: one item reservation and a cart, 1 s each
    $r = req(POST => "$I/reservations", json => { quantity => 4,
                                                  ttl_seconds => 1 });
    reservation_ok($r, 201, { ttl => 1 }, 'reserve 4 for 1 s');
    push @EXPIRING, $r->{json};
    $r = req(POST => '/v1/reservations', json => { ttl_seconds => 1, lines => [
            { sku => 'VG-1', location => 'north', quantity => 2 },
            { sku => 'VG-2', location => 'main', quantity => 3 } ] });
    reservation_ok($r, 201, { ttl => 1 }, 'cart of 2 lines for 1 s');
    push @EXPIRING, $r->{json};
}

# --- transfers ---------------------------------------------------------------------
{
    my $r = req(POST => '/v1/transfers', json => {
        sku => 'VG-1', from => 'main', to => 'east', quantity => 5,
        reason => 'restock' });
    ok($r->{status} == 200 && ($r->{json}{to}{on_hand} // 0) == 5
       && ($r->{json}{to}{location} // '') eq 'east',
       'transfer 5 to a new location: 200') or diag InvTest::show($r);
    problem_ok(req(POST => '/v1/transfers', json => {
        sku => 'VG-1', from => 'main', to => 'main', quantity => 1 }), 400,
               'invalid-request', 'transfer to the same location');
    problem_ok(req(POST => '/v1/transfers', json => {
        sku => 'VG-NONE', from => 'main', to => 'east', quantity => 1 }), 404,
               'not-found', 'transfer from an unknown item');
    problem_ok(req(POST => '/v1/transfers', json => {
        sku => 'VG-1', from => 'east', to => 'main', quantity => 6 }), 409,
               'insufficient-stock', 'transfer more than available');
}

# --- idempotency -------------------------------------------------------------------
my $KEY1_AT;
{
    my %k1 = ('Idempotency-Key' => 'vg-key-1');
    my $a = req(POST => '/v1/inventory/VG-2/main/adjustments',
                json => { delta => 7 }, headers => \%k1);
    $KEY1_AT = time;              # the record's TTL began before this
    item_ok($a, 200, {}, 'keyed adjustment');
    my $b = req(POST => '/v1/inventory/VG-2/main/adjustments',
                json => { delta => 7 }, headers => \%k1);
    ok($b->{status} == 200 && $b->{body} eq $a->{body}
       && (header($b, 'idempotent-replayed') // '') eq 'true',
       'its retry is replayed') or diag InvTest::show($b);
    problem_ok(req(POST => '/v1/inventory/VG-2/main/adjustments',
                   json => { delta => 8 }, headers => \%k1), 422,
               'idempotency-key-reused', 'the key with another body: 422');

    my %k2 = ('Idempotency-Key' => 'vg-key-cart');
    my $cart = { ttl_seconds => 600, lines => [
        { sku => 'VG-2', location => 'main', quantity => 1 } ] };
    $a = req(POST => '/v1/reservations', json => $cart, headers => \%k2);
    reservation_ok($a, 201, {}, 'keyed cart');
    $b = req(POST => '/v1/reservations', json => $cart, headers => \%k2);
    ok($b->{status} == 201 && ($b->{json}{id} // '') eq ($a->{json}{id} // 'x')
       && (header($b, 'idempotent-replayed') // '') eq 'true',
       'its retry returns the same reservation') or diag InvTest::show($b);
    reservation_ok(req(POST => "/v1/reservations/$a->{json}{id}/release"), 200,
                   { state => 'released' }, 'release the keyed cart');

    my %k3 = ('Idempotency-Key' => 'vg-key-409');
    $a = req(POST => "$I/adjustments", json => { delta => -100000 },
             headers => \%k3);
    problem_ok($a, 409, 'insufficient-stock', 'keyed refused adjustment');
    $b = req(POST => "$I/adjustments", json => { delta => -100000 },
             headers => \%k3);
    ok($b->{status} == 409 && $b->{body} eq $a->{body}
       && (header($b, 'idempotent-replayed') // '') eq 'true',
       'the refusal is replayed') or diag InvTest::show($b);
    problem_ok(req(POST => "$I/adjustments", json => { delta => 1 },
                   headers => { 'Idempotency-Key' => 'x' x 256 }), 400,
               'invalid-request', 'a key of 256 characters',
               field => 'Idempotency-Key');
}

# --- bad requests --------------------------------------------------------------------
{
    for my $c (['{"on_hand":1} x', 'trailing data'], ['{"on_hand":', 'truncated'],
               ['[1]', 'not an object'], ['{"on_hand":1,"x":1}', 'unknown member'],
               ['{"on_hand":1,"on_hand":2}', 'duplicate member'],
               ['{"on_hand":1.5}', 'not an integer'], ['{}', 'missing member'],
               ["{\"on_hand\":1,\"reason\":\"\xff\"}", 'invalid UTF-8'],
               ['{"on_hand":1,"reason":' . ('[' x 20) . (']' x 20) . '}',
                'nested too deep'],
               ['{"on_hand":99999999999999999999999}', 'over 64 bits'],
               ['', 'empty'])
    {
        problem_ok(req(PUT => $I, body => $c->[0], headers => $J), 400,
                   'invalid-request', "PUT body: $c->[1]");
    }
    problem_ok(req(PUT => $I, body => '{"on_hand":1}',
                   headers => { 'Content-Type' => 'text/plain' }), 415,
               'unsupported-media-type', 'PUT text/plain');
    problem_ok(req(GET => '/v1/nope'), 404, 'not-found', 'unknown route');
    problem_ok(req(GET => "$I/nope"), 404, 'not-found', 'unknown item subroute');
    problem_ok(req(DELETE => $I), 405, 'method-not-allowed', 'DELETE item',
               allow => [qw(GET HEAD PUT)]);
    problem_ok(req(GET => "$I/adjustments"), 405, 'method-not-allowed',
               'GET adjustments', allow => ['POST']);
    problem_ok(req(POST => '/v1/low-stock', json => {}), 405,
               'method-not-allowed', 'POST low-stock');
    problem_ok(req(POST => '/metrics', json => {}), 405, 'method-not-allowed',
               'POST /metrics');
    problem_ok(req(GET => '/v1/inventory/bad%20sku/main'), 400,
               'invalid-request', 'a SKU with a space', field => 'sku');
    problem_ok(req(GET => '/v1/inventory/VG-1/' . ('l' x 65)), 400,
               'invalid-request', 'a location of 65 characters',
               field => 'location');
    my $r = req(PUT => $I, body => '{"reason":"' . ('x' x 20000) . '"}',
                headers => $J);
    is($r->{status}, 413, 'a body over client_max_body_size: 413');
    problem_ok(req(POST => '/v1/reservations/r_0000000000000000000000/commit',
                   json => { x => 1 }), 400, 'invalid-request',
               'commit with an unknown member');

    # a chunked body, and a body that arrives in pieces
    $r = $n->raw_req(PUT => '/v1/inventory/VG-3/main', headers => [
        'Content-Type' => 'application/json', 'Transfer-Encoding' => 'chunked'],
        body => "6\r\n{\"on_h\r\n" . "b\r\nand\":77}   \r\n0\r\n\r\n");
    item_ok($r, 201, { on_hand => 77 }, 'PUT with a chunked body');
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $PORT,
                                  Timeout => 30) or die "connect: $!";
    my $body = '{"delta":3,"reason":"slow"}';
    syswrite $s, "POST /v1/inventory/VG-3/main/adjustments HTTP/1.1\r\n"
                 . "Host: x\r\nConnection: close\r\n"
                 . "Content-Type: application/json\r\n"
                 . 'Content-Length: ' . length($body) . "\r\n\r\n"
                 . substr($body, 0, 5);
    sleep 0.5;
    syswrite $s, substr($body, 5);
    my $buf = '';
    1 while sysread $s, $buf, 65536, length $buf;
    close $s;
    like($buf, qr{^HTTP/1\.1 200 .*"on_hand":80}s,
         'a body sent in two pieces is read whole');
}

# --- feed, item events, low stock, metrics ------------------------------------
my $LAST;
{
    my $r = st_ok(req(GET => '/v1/events?after=0&limit=5'), 200,
                  'feed: first page of 5');
    is(scalar @{ $r->{json}{events} // [] }, 5, 'feed: 5 events');
    st_ok(req(HEAD => '/v1/events?after=0&limit=5'), 200, 'HEAD feed');
    my ($ev, $p) = feed_pages($n, 0, 7);
    ok(!@$p && @$ev > 20, 'feed: paged by 7 to the end, gap-free ('
                          . scalar(@$ev) . ' events)') or diag join "\n", @$p;
    $LAST = @$ev ? $ev->[-1]{seq} : 0;
    problem_ok(req(GET => '/v1/events?limit=0'), 400, 'invalid-request',
               'feed limit=0', field => 'limit');
    problem_ok(req(GET => '/v1/events?wait=31'), 400, 'invalid-request',
               'feed wait=31', field => 'wait');

    # a long poll woken by a write, one abandoned by its client
    my $gone = $n->async_req(GET => "/v1/events?after=$LAST&wait=20");
    my $h = $n->async_req(GET => "/v1/events?after=$LAST&wait=25");
    sleep 1;
    close $gone->{sock};          # the client gives up while it waits
    item_ok(req(POST => '/v1/inventory/VG-3/main/adjustments',
                json => { delta => 1 }), 200, {}, 'a write wakes the poll');
    async_wait([$h], 25);
    my $hr = $h->{res} // { status => 0 };
    ok($hr->{status} == 200 && @{ $hr->{json}{events} // [] }
       && $hr->{json}{events}[0]{seq} == $LAST + 1,
       'the long poll answered with the new event') or diag InvTest::show($hr);
    $LAST++;

    $r = st_ok(req(GET => "$I/events?after_version=0&limit=3"), 200,
               'item events, first page');
    my $next = $r->{json}{next_after_version};
    is($next, 3, 'item events: next_after_version 3');
    st_ok(req(GET => "$I/events?after_version=$next&limit=1000"), 200,
          'item events, the rest');
    st_ok(req(HEAD => "$I/events"), 200, 'HEAD item events');
    problem_ok(req(GET => '/v1/inventory/VG-NONE/main/events'), 404,
               'not-found', 'events of an unknown item');
    problem_ok(req(GET => "$I/events?limit=1001"), 400, 'invalid-request',
               'item events limit=1001', field => 'limit');

    $r = st_ok(req(GET => '/v1/low-stock?limit=1'), 200, 'low-stock page 1');
    ok(@{ $r->{json}{items} // [] } == 1 && defined $r->{json}{next_cursor},
       'low-stock: one item and a cursor') or diag InvTest::show($r);
    my $c = $r->{json}{next_cursor} // '';
    st_ok(req(GET => "/v1/low-stock?limit=1&cursor=$c"), 200,
          'low-stock page 2 (cursor)');
    st_ok(req(GET => '/v1/low-stock?location=north'), 200,
          'low-stock of one location');
    st_ok(req(HEAD => '/v1/low-stock'), 200, 'HEAD low-stock');
    problem_ok(req(GET => '/v1/low-stock?cursor=!!!'), 400, 'invalid-request',
               'low-stock with a bad cursor', field => 'cursor');

    $r = st_ok(req(GET => '/metrics'), 200, 'metrics');
    like($r->{body}, qr/^inventory_requests_total\{/m, 'metrics: requests');
    st_ok(req(HEAD => '/metrics'), 200, 'HEAD metrics');
}

# --- expiry and an expired idempotency key ---------------------------------------
{
    my $deadline = time + 60;
    my @state;
    while (time < $deadline) {
        @state = map { req(GET => "/v1/reservations/$_->{id}")->{json}{state}
                       // '?' } @EXPIRING;
        last unless grep { $_ ne 'expired' } @state;
        sleep 0.5;
    }
    is("@state", 'expired expired', 'the 1 s reservations expired (swept by '
                                    . 'the module)');
    problem_ok(req(POST => "/v1/reservations/$EXPIRING[0]{id}/commit"), 409,
               'reservation-not-active', 'commit an expired reservation');
    my $r = req(GET => '/v1/inventory/VG-1/north');
    item_ok($r, 200, { reserved => 0 }, 'the expired stock came back');

    # nothing expires any more (the rest hold for 600 s): a long poll that
    # times out
    my $last = req(GET => '/v1/health')->{json}{store}{last_seq} // -1;
    $r = req(GET => "/v1/events?after=$last&wait=1");
    ok($r->{status} == 200 && !@{ $r->{json}{events} // [1] }
       && ($r->{json}{last_seq} // -2) == $last,
       'a long poll with nothing new: an empty page after its wait')
        or diag InvTest::show($r);

    # past inventory_idempotency_ttl the key is forgotten: the write runs
    # again (the record is purged, or found expired and replaced)
    InvTest::sleep_until($KEY1_AT + IDEM_TTL + 0.5);
    my $before = req(GET => '/v1/inventory/VG-2/main')->{json}{on_hand} // 0;
    my $again = req(POST => '/v1/inventory/VG-2/main/adjustments',
                    json => { delta => 7 },
                    headers => { 'Idempotency-Key' => 'vg-key-1' });
    ok($again->{status} == 200 && !header($again, 'idempotent-replayed')
       && ($again->{json}{on_hand} // 0) == $before + 7,
       'a key past inventory_idempotency_ttl runs the write again')
        or diag InvTest::show($again);
}

# --- concurrent writes and a long poll, then a quiet stop -------------------------
# In single-process mode nginx does not drain on SIGQUIT:
# ngx_single_process_cycle() runs the modules' exit_process and exits at
# once, so whatever is in flight then is abandoned, and its memory would
# show as "possibly lost".  The stop therefore comes once every connection
# is closed and logged, and then no leak record may name the module at all.
my ($END_SEQ, @INFLIGHT);
{
    my $r = req(GET => '/v1/health');
    is($r->{status}, 200, 'health before the last writes');
    $END_SEQ = $r->{json}{store}{last_seq};
    my $log_from = -s "$DIR/access.log";
    push @INFLIGHT, $n->async_req(GET => "/v1/events?after=$END_SEQ&wait=20");
    sleep 0.3;
    for my $i (1 .. 3) {
        my $body = encode_json({ delta => $i });
        my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                      PeerPort => $PORT, Timeout => 10)
            or die "connect: $!";
        syswrite $s, "POST /v1/inventory/VG-3/main/adjustments HTTP/1.1\r\n"
                     . "Host: x\r\nConnection: close\r\n"
                     . "Content-Type: application/json\r\nContent-Length: "
                     . length($body) . "\r\n\r\n$body";
        push @INFLIGHT, { sock => $s, buf => '', method => 'POST',
                          path => '/v1/inventory/VG-3/main/adjustments',
                          sent => time };
    }
    async_wait(\@INFLIGHT, 40, close => 1);
    my @got = map { $_->{res} ? $_->{res}{status} : 'none' } @INFLIGHT;
    is("@got", '200 200 200 200', 'a long poll and 3 concurrent writes: '
                                  . 'all answered');
    my $pj = $INFLIGHT[0]{res} ? $INFLIGHT[0]{res}{json} : undef;
    ok(ref $pj eq 'HASH' && @{ $pj->{events} // [] }
       && $pj->{events}[0]{seq} == $END_SEQ + 1,
       'the long poll was woken by the first of them');

    # nginx closes a request with a body once its client has closed
    # (lingering close): wait until all four are logged
    my $deadline = time + 30;
    my $logged = 0;
    while (time < $deadline) {
        my $al = substr(InvTest::slurp("$DIR/access.log") // '', $log_from);
        $logged = () = $al =~ m{"(?:POST[ ]/v1/inventory/VG-3/main/adjustments
                                  |GET[ ]/v1/events\?after=$END_SEQ&wait=20)
                                  [ ]HTTP/1\.1"[ ]200[ ]}xg;
        last if $logged >= 4;
        sleep 0.2;
    }
    is($logged, 4, 'all four are finished (in the access log) before the '
                   . 'stop');
}

my $t_quit = time;
kill 'QUIT', $VG_PID;
my $exited = 0;
{
    my $deadline = time + 90;
    while (time < $deadline) {
        if (waitpid($VG_PID, POSIX::WNOHANG()) == $VG_PID) {
            $exited = 1;
            last;
        }
        sleep 0.1;
    }
}
my $rc = $?;
ok($exited, sprintf 'nginx under valgrind exited on SIGQUIT (%.1f s)',
                    time - $t_quit)
    or do { kill 'KILL', $VG_PID; waitpid $VG_PID, 0 };
undef $VG_PID;
is($rc >> 8, 0, 'exit status 0 (not valgrind\'s ' . VG_ERR . ')')
    if $exited;
ok(!($rc & 127), 'not killed by a signal') if $exited;
{
    my $el = InvTest::slurp("$DIR/error.log") // '';
    my @bad = grep { /\[(?:emerg|alert|crit)\]|exited on signal/ }
              split /\n/, $el;
    ok(!@bad, 'error.log has no emerg/alert/crit') or diag join "\n", @bad;
}
vg_ok(vg_report($NG_LOG), 'nginx',
      max_suppressed => WORKER_CONNECTIONS * 432 + 64);
diag 'routes and statuses: ' . join ', ', map {
    my $k = $_; "$k " . join('/', sort keys %{ $SEEN{$k} })
} sort keys %SEEN;

# --------------------------------------------------------------------------
# the admin tool under valgrind

my $N_EVENTS;

sub vg_admin {
    my ($tag, @args) = @_;
    my $log = "$DIR/valgrind-admin-$tag.log";
    my $pid = spawn("$DIR/admin-$tag.out", @VG, "--log-file=$log",
                    $ADMIN, @args);
    waitpid $pid, 0;
    my $rc = $? & 127 ? 128 + ($? & 127) : $? >> 8;
    return ($rc, InvTest::slurp("$DIR/admin-$tag.out") // '', vg_report($log));
}

{
    my ($rc, $out, $vg) = vg_admin('stats', 'stats', $DATA);
    my $st = eval { decode_json($out) } // {};
    $N_EVENTS = $END_SEQ + 3;
    ok($rc == 0 && ($st->{last_seq} // -1) == $N_EVENTS,
       "admin stats: exit 0, last_seq $N_EVENTS (the three last writes "
       . 'included)') or diag "exit $rc: $out";
    vg_ok($vg, 'admin stats');

    ($rc, $out, $vg) = vg_admin('verify', 'verify', $DATA);
    ok($rc == 0 && $out eq "verify: ok, $N_EVENTS events\n",
       "admin verify: exit 0, ok, $N_EVENTS events") or diag "exit $rc: $out";
    vg_ok($vg, 'admin verify');

    ($rc, $out, $vg) = vg_admin('dump', 'dump', $DATA);
    my @l = split /\n/, $out;
    ok($rc == 0 && @l == $N_EVENTS && $l[-1] =~ /"seq":$N_EVENTS\b/,
       "admin dump: exit 0, $N_EVENTS lines") or diag "exit $rc, "
                                                     . scalar(@l) . ' lines';
    vg_ok($vg, 'admin dump');

    ($rc, $out, $vg) = vg_admin('dump-after', 'dump', $DATA, '--after',
                                $N_EVENTS - 2);
    @l = split /\n/, $out;
    ok($rc == 0 && @l == 2, 'admin dump --after N-2: exit 0, 2 lines')
        or diag "exit $rc: $out";
    vg_ok($vg, 'admin dump --after');

    ($rc, $out, $vg) = vg_admin('rebuild', 'rebuild', $DATA);
    is($rc, 0, 'admin rebuild: exit 0') or diag $out;
    vg_ok($vg, 'admin rebuild');

    ($rc, $out, $vg) = vg_admin('verify2', 'verify', $DATA);
    ok($rc == 0 && $out eq "verify: ok, $N_EVENTS events\n",
       'admin verify after rebuild: ok') or diag "exit $rc: $out";
    vg_ok($vg, 'admin verify after rebuild');

    my $empty = tempdir('inventory-vg-empty-XXXXXX', TMPDIR => 1, CLEANUP => 1);
    for my $cmd (qw(verify stats dump rebuild)) {
        ($rc, $out, $vg) = vg_admin("empty-$cmd", $cmd, $empty);
        is($rc, 2, "admin $cmd on a directory that is not a store: exit 2")
            or diag $out;
        vg_ok($vg, "admin $cmd (not a store)");
    }
    ($rc, $out, $vg) = vg_admin('missing', 'verify', "$DIR/no-such-store");
    is($rc, 2, 'admin verify on a missing directory: exit 2') or diag $out;
    vg_ok($vg, 'admin verify (missing store)');
    ($rc, $out, $vg) = vg_admin('usage', 'dump', $DATA, '--after', 'abc');
    is($rc, 2, 'admin usage error: exit 2') or diag $out;
    vg_ok($vg, 'admin usage error');
}

diag sprintf 'total %.1f s', time - $T0;
done_testing;
