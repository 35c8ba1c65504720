# Configuration: directive errors caught by nginx -t, an unreachable store,
# store creation and ownership, map_size/sync, the request body limit, a
# full map (507) and its recovery by a larger map_size (restart and reload),
# the $inventory_* variables in an access log, /metrics counters across
# requests and a reload.
use strict;
use warnings;
use Test::More;
use File::Temp qw(tempdir);
use Time::HiRes qw(sleep time);
use InvTest qw(item_ok problem_ok json_type slurp pid_alive run_logged san_files
               san_reports_ok metrics);

my $T0 = time;
my $NOBODY_UID = (getpwnam('nobody'))[2];
die "no user nobody\n" unless defined $NOBODY_UID;

# --------------------------------------------------------------------------
# nginx -t on a configuration of our own

# nginx_t($http, $location): write a configuration with the module loaded,
# $http in the http block and $location in "location /v1/", run nginx -t on
# it; returns (exit status, stdout+stderr, error.log).
sub nginx_t {
    my ($http, $location) = @_;
    my $dir = tempdir('inventory-t23-XXXXXX', TMPDIR => 1, CLEANUP => 1);
    chmod 0755, $dir;
    my $conf = <<"EOF";
load_module $InvTest::MODULE;
error_log $dir/error.log;
pid $dir/nginx.pid;
events { worker_connections 64; }
http {
    access_log $dir/access.log;
    client_body_temp_path $dir/body;
    proxy_temp_path $dir/proxy;
    fastcgi_temp_path $dir/fastcgi;
    uwsgi_temp_path $dir/uwsgi;
    scgi_temp_path $dir/scgi;
    $http
    server {
        listen 127.0.0.1:1;
        location /v1/ { $location }
    }
}
EOF
    $conf =~ s/%%DIR%%/$dir/g;
    open my $fh, '>', "$dir/nginx.conf" or die "write conf: $!";
    print {$fh} $conf;
    close $fh;

    my ($rc, $out) = run_logged("$dir/out", $InvTest::NGINX, '-t',
                                '-p', "$dir/", '-e', "$dir/error.log",
                                '-c', "$dir/nginx.conf");
    return ($rc, $out, slurp("$dir/error.log") // '');
}

# sanitizer reports of our own nginx -t runs and of refused starts are
# checked against this (the harness checks those of the instances it stops)
my %san_seen = map { $_ => 1 } san_files();

{
    my ($rc, $out) = nginx_t('inventory_store %%DIR%%/data;', 'inventory;');
    is($rc, 0, 'control: a valid configuration passes nginx -t')
        or diag $out;
}

my @bad = (
    [ 'inventory without inventory_store',
      '', 'inventory;', qr/inventory_store/ ],
    [ 'inventory_metrics without inventory_store',
      '', 'inventory_metrics;', qr/inventory_store/ ],
    [ 'map_size=abc',
      'inventory_store %%DIR%%/data map_size=abc;', 'inventory;',
      qr/invalid map_size "map_size=abc"/ ],
    [ 'map_size=100k (below 1m)',
      'inventory_store %%DIR%%/data map_size=100k;', 'inventory;',
      qr/map_size "map_size=100k".*at least 1m/ ],
    [ 'sync=maybe',
      'inventory_store %%DIR%%/data sync=maybe;', 'inventory;',
      qr/invalid parameter "sync=maybe"/ ],
    [ 'unknown parameter foo=bar',
      'inventory_store %%DIR%%/data foo=bar;', 'inventory;',
      qr/invalid parameter "foo=bar"/ ],
    [ 'inventory_zone without :SIZE',
      'inventory_store %%DIR%%/data; inventory_zone inv;', 'inventory;',
      qr/invalid zone "inv".*NAME:SIZE/ ],
    [ 'inventory_reservation_ttl 25h',
      'inventory_store %%DIR%%/data; inventory_reservation_ttl 25h;',
      'inventory;', qr/inventory_reservation_ttl.*24h/ ],
    [ 'inventory_store twice',
      'inventory_store %%DIR%%/data; inventory_store %%DIR%%/data2;',
      'inventory;', qr/"inventory_store" directive is duplicate/ ],
    [ 'inventory_sync_replicas 17',
      'inventory_store %%DIR%%/data; inventory_sync_replicas 17;',
      'inventory;', qr/inventory_sync_replicas needs a number.*0 to 16/ ],
    [ 'inventory_sync_replicas timeout=0',
      'inventory_store %%DIR%%/data; inventory_sync_replicas 1 timeout=0;',
      'inventory;', qr/invalid time "timeout=0"/ ],
    [ 'inventory_cluster without name and advertise',
      'inventory_store %%DIR%%/data; '
      . 'inventory_cluster etcd=http://127.0.0.1:2379;',
      'inventory;', qr/inventory_cluster needs etcd=, name= and advertise=/ ],
    [ 'inventory_cluster name with a quote',
      'inventory_store %%DIR%%/data; inventory_cluster '
      . 'etcd=http://127.0.0.1:2379 name=a"b '
      . 'advertise=http://127.0.0.1:1/replication/;',
      'inventory;', qr/a name is 1 to 64 letters/ ],
    [ 'inventory_cluster advertise without its slash',
      'inventory_store %%DIR%%/data; inventory_cluster '
      . 'etcd=http://127.0.0.1:2379 name=a '
      . 'advertise=http://127.0.0.1:1/replication;',
      'inventory;', qr/advertise needs the http:\/\/ URL/ ],
    [ 'inventory_cluster etcd that is not http',
      'inventory_store %%DIR%%/data; inventory_cluster '
      . 'etcd=https://127.0.0.1:2379 name=a '
      . 'advertise=http://127.0.0.1:1/replication/;',
      'inventory;', qr/etcd needs http:\/\/ URLs/ ],
    [ 'inventory_cluster ttl=500ms',
      'inventory_store %%DIR%%/data; inventory_cluster '
      . 'etcd=http://127.0.0.1:2379 name=a ttl=500ms '
      . 'advertise=http://127.0.0.1:1/replication/;',
      'inventory;', qr/ttl is 1s to 1h/ ],
);
for my $c (@bad) {
    my ($what, $http, $loc, $re) = @$c;
    my ($rc, $out, $log) = nginx_t($http, $loc);
    isnt($rc, 0, "nginx -t fails: $what");
    like($out, qr/\[emerg\].*$re.*in \S+nginx\.conf:\d+/,
         "nginx -t names the problem and the line: $what")
        or diag "output:\n$out\nerror.log:\n$log";
}

san_reports_ok(\%san_seen, 'nginx -t runs')
    if defined $ENV{INVENTORY_ASAN_LOG};

# --------------------------------------------------------------------------
# 2. a store the worker user cannot reach

SKIP: {
    skip 'the worker-user checks need root', 1 if $> != 0;

    # tempdir is 0700 and owned by root; workers run as nobody
    my $base = tempdir('inventory-t23p-XXXXXX', TMPDIR => 1, CLEANUP => 1);
    chmod 0700, $base;
    my $store = "$base/store";

    my ($rc, $out, $log) = nginx_t("inventory_store $store;", 'inventory;');
    isnt($rc, 0, 'nginx -t fails when a parent of the store is 0700 root');
    like($out, qr/cannot enter "\Q$base\E"/,
         'nginx -t says the worker user cannot enter the parent')
        or diag "output:\n$out\nerror.log:\n$log";

    my $n = eval { InvTest->start(datadir => $store) };
    my $err = $@;
    ok(!$n, 'nginx refuses to start with an unreachable store');
    like($err, qr/cannot enter "\Q$base\E"/,
         'the start failure names the directory')
        or diag $err;
    undef $n;
    san_reports_ok(\%san_seen, 'refused starts')
        if defined $ENV{INVENTORY_ASAN_LOG};

    chmod 0755, $base or die "chmod $base: $!";
    $n = eval { InvTest->start(datadir => $store) };
    ok($n, 'after chmod 0755 nginx starts') or diag $@;
    if ($n) {
        item_ok($n->req(PUT => '/v1/inventory/P-1/here',
                        json => { on_hand => 3 }),
                201, { on_hand => 3, version => 1 },
                'the store is writable once reachable');

        # A reload while the store is unreachable must be refused by the
        # master, which says why, and the running workers go on serving
        # (docs/configuration.md: every store problem is reported at start
        # or reload, by the master).  First make sure every worker has the
        # store open, or a late worker would fail to open it itself.
        my $master = $n->master_pid;
        my @w = $n->worker_pids;
        my $deadline = time + 5;
        sleep 0.05 until time > $deadline
            || !grep { (slurp("/proc/$_/maps") // '') !~ /\Q$store\E\/data\.mdb/ } @w;
        chmod 0700, $base or die "chmod $base: $!";
        $n->allow_log(qr/cannot enter "\Q$base\E"/);
        kill 'HUP', $master;
        $deadline = time + 5;
        sleep 0.05 until $n->error_log =~ /cannot enter "\Q$base\E"/
                         || time > $deadline;
        like($n->error_log, qr/\[emerg\].*cannot enter "\Q$base\E"/,
             'a reload with an unreachable store is refused with a message');
        sleep 0.5;    # time for the master to go, if it is going to
        ok(pid_alive($master), 'the master survives the refused reload');
        is_deeply([ $n->worker_pids ], \@w,
                  'the old workers keep running under the master');
        item_ok($n->req(GET => '/v1/inventory/P-1/here'), 200,
                { on_hand => 3 }, 'and keep serving');
        chmod 0755, $base or die "chmod $base: $!";
        if (!pid_alive($master)) {
            # the workers are orphans now: end them (our own processes)
            kill 'QUIT', grep { pid_alive($_) } @w;
            $deadline = time + 5;
            sleep 0.05 while time < $deadline && grep { pid_alive($_) } @w;
            kill 'KILL', grep { pid_alive($_) } @w;
        }
        $n->stop;
    }
}

# --------------------------------------------------------------------------
# 3. map_size=64m sync=off; a missing nested store directory is created

{
    my $base = tempdir('inventory-t23s-XXXXXX', TMPDIR => 1, CLEANUP => 1);
    chmod 0755, $base;
    my $store = "$base/a/b/store";
    ok(!-e "$base/a", 'the store path does not exist yet');

    my $n = InvTest->start(datadir => $store,
                           store_args => 'map_size=64m sync=off');
    ok(-d $store, 'the nested store directory was created');
    my @st = stat $store;
    is($st[4], $NOBODY_UID, 'the store directory is owned by nobody');
    # docs/configuration.md: "parents 0755, the store 0700"
    is(sprintf('%04o', $st[2] & 07777), '0700', 'the store directory is 0700');
    for my $p ("$base/a", "$base/a/b") {
        my @s = stat $p;
        is(sprintf('%04o', ($s[2] // 0) & 07777), '0755', "parent $p is 0755");
    }
    for my $f (qw(data.mdb lock.mdb)) {
        my @s = stat "$store/$f";
        is($s[4], $NOBODY_UID, "$f is owned by nobody");
    }

    my $r = $n->req(GET => '/v1/health');
    is($r->{status}, 200, 'health is 200');
    my $s = ref $r->{json} eq 'HASH' ? $r->{json}{store} // {} : {};
    is($s->{map_size}, 64 * 1024 * 1024, 'health reports map_size 64m')
        or diag InvTest::show($r);
    is(json_type($s->{sync}), 'bool', 'health sync is a boolean');
    ok(!$s->{sync}, 'health reports sync off');

    item_ok($n->req(PUT => '/v1/inventory/S-1/store-1',
                    json => { on_hand => 7, min_level => 2 }),
            201, { on_hand => 7, min_level => 2, version => 1 },
            'PUT works with sync=off');
    item_ok($n->req(GET => '/v1/inventory/S-1/store-1'), 200,
            { on_hand => 7, min_level => 2, version => 1 }, 'GET reads it');
    $n->stop;
}

# --------------------------------------------------------------------------
# 4. client_max_body_size

{
    my $n = InvTest->start(location_extra => 'client_max_body_size 1k;');
    my $p = '/v1/inventory/B-1/store-1';
    my $orig = $n->req(PUT => $p, json => { on_hand => 10 });
    item_ok($orig, 201, { on_hand => 10, version => 1 }, 'small PUT works');

    my $pad = sub {
        my ($json, $len) = @_;
        my $b = $json;
        substr($b, 1, 0) = ' ' x ($len - length $json);
        die unless length $b == $len;
        return $b;
    };
    my %ct = ('Content-Type' => 'application/json');

    my $r = $n->req(PUT => $p, body => $pad->('{"on_hand":20}', 2048),
                    headers => \%ct);
    is($r->{status}, 413, 'PUT with a 2 KB body is 413');
    is_deeply($n->req(GET => $p)->{json}, $orig->{json},
              'the item is unchanged after 413');

    # the same, chunked (no Content-Length: nginx counts while reading)
    my $big = $pad->('{"on_hand":21}', 2048);
    my $chunked = sprintf("%x\r\n%s\r\n0\r\n\r\n", length $big, $big);
    $r = $n->req(PUT => $p, raw => 1, body => $chunked,
                 headers => { %ct, 'Transfer-Encoding' => 'chunked' });
    is($r->{status}, 413, 'chunked PUT with a 2 KB body is 413');
    is_deeply($n->req(GET => $p)->{json}, $orig->{json},
              'the item is unchanged after the chunked 413');

    $r = $n->req(PUT => $p, body => $pad->('{"on_hand":30}', 1024),
                 headers => \%ct);
    item_ok($r, 200, { on_hand => 30, version => 2 },
            'PUT with a body of exactly 1 KB works');
    $r = $n->req(POST => "$p/adjustments",
                 body => $pad->('{"delta":-5}', 1000), headers => \%ct);
    item_ok($r, 200, { on_hand => 25, version => 3 },
            'adjustment with a 1000-byte body works');
    $n->stop;
}

# --------------------------------------------------------------------------
# 5. a full map: 507 storage-full, reads go on; recovery by a larger map
#    after a restart (1m -> 1536k) and after a reload (1536k -> 8m).
#    Long identifiers and reasons fill the map in fewer requests.

{
    my $REASON = 'r' x 240;
    my $SKU = 'F-' . ('s' x 62);                         # 64 characters
    my $loc = sub { sprintf 'loc-%05d-%s', $_[0], 'l' x 54 };  # 64
    my $path = sub { "/v1/inventory/$SKU/" . $loc->($_[0]) };
    my $body = sub { { on_hand => $_[0] + 1, reason => "$REASON $_[0]" } };
    my $MAXREQ = 20000;
    my $n = InvTest->start(store_args => 'map_size=1m');
    my %made;          # index => item JSON from its 201
    my $next = 0;      # next location index to write

    # PUT new items until one is not 201; returns that response
    my $fill = sub {
        my ($inst, $label) = @_;
        my $limit = $next + $MAXREQ;
        my $r;
        while ($next < $limit) {
            $r = $inst->req(PUT => $path->($next), json => $body->($next));
            last if $r->{status} != 201;
            $made{$next} = $r->{json};
            $next++;
        }
        ok($r && $r->{status} == 507,
           "$label: writes end in 507 (after " . scalar(keys %made)
           . ' items in all)')
            or diag($r ? InvTest::show($r) : 'no request');
        return $r;
    };

    # several items, first/last/evenly spaced, compared in full
    my $spot = sub {
        my ($inst, $label) = @_;
        my @idx = sort { $a <=> $b } keys %made;
        my %pick;
        $pick{ $idx[ int($_ * $#idx / 10) ] } = 1 for 0 .. 10;
        my @bad;
        for my $i (sort { $a <=> $b } keys %pick) {
            my $r = $inst->req(GET => $path->($i));
            push @bad, "item $i: " . InvTest::show($r)
                unless $r->{status} == 200
                       && eval { is_deeply_quiet($r->{json}, $made{$i}) };
        }
        ok(!@bad, "$label: spot-checked items are 200 and unchanged")
            or diag join "\n", @bad[0 .. ($#bad > 4 ? 4 : $#bad)];
    };

    # every item, through the aggregate route
    my $all = sub {
        my ($inst, $label) = @_;
        my $r = $inst->req(GET => "/v1/inventory/$SKU");
        my $locs = ref $r->{json} eq 'HASH' ? $r->{json}{locations} : undef;
        if (!($r->{status} == 200 && ref $locs eq 'ARRAY')) {
            fail("$label: aggregate GET lists the items");
            diag InvTest::show($r);
            return;
        }
        my %got = map { $_->{location} => $_ } @$locs;
        my @bad = grep {
            !$got{ $loc->($_) }
            || !is_deeply_quiet($got{ $loc->($_) }, $made{$_})
        } sort { $a <=> $b } keys %made;
        is(scalar(@$locs), scalar(keys %made),
           "$label: aggregate lists every item once");
        ok(!@bad, "$label: every item is intact")
            or diag "first differing: item $bad[0]";
    };

    my $r = $fill->($n, 'map_size=1m');
    problem_ok($r, 507, 'storage-full', '507 is problem+json storage-full');
    my $failed = $next;
    $spot->($n, 'full 1m map');
    problem_ok($n->req(GET => $path->($failed)), 404,
               'not-found', 'the item whose write failed does not exist');
    # health warns from 95 % of the map on, reads go on regardless
    problem_ok($n->req(GET => '/v1/health'), 503, 'unavailable',
               'health is 503 unavailable with a full map');
    problem_ok($n->req(PUT => $path->($failed), json => $body->($failed)),
               507, 'storage-full', 'the same write again is still 507');
    $all->($n, 'full 1m map');
    my $dir = $n->datadir;
    $n->stop;

    # restart with map_size=1536k
    $n = InvTest->start(datadir => $dir, store_args => 'map_size=1536k');
    is($n->req(GET => '/v1/health')->{json}{store}{map_size}, 1536 * 1024,
       'after restart with map_size=1536k, health reports it');
    $r = $n->req(PUT => $path->($failed), json => $body->($failed));
    item_ok($r, 201, { on_hand => $failed + 1, version => 1 },
            'after restart with 1536k, the failed write succeeds with 201');
    $made{$failed} = $r->{json} if $r->{status} == 201;
    $next = $failed + 1;
    $spot->($n, 'after restart with 1536k');

    # fill the 1536k map, then grow it by a reload
    $r = $fill->($n, 'map_size=1536k');
    problem_ok($r, 507, 'storage-full', '1536k map: 507 storage-full');
    $failed = $next;
    problem_ok($n->req(GET => $path->($failed)), 404,
               'not-found', '1536k map: the failed item does not exist');

    $n->reconfigure(store_args => 'map_size=8m');
    $n->reload;
    is($n->req(GET => '/v1/health')->{json}{store}{map_size}, 8 * 1024 * 1024,
       'after reload with map_size=8m, health reports 8m');
    $r = $n->req(PUT => $path->($failed), json => $body->($failed));
    item_ok($r, 201, { on_hand => $failed + 1, version => 1 },
            'after reload with 8m, the failed write succeeds with 201');
    $made{$failed} = $r->{json} if $r->{status} == 201;
    $spot->($n, 'after reload with 8m');
    $all->($n, 'after reload with 8m');
    my $more = 0;
    for my $i (1 .. 50) {
        my $k = $failed + $i;
        my $w = $n->req(PUT => $path->($k), json => $body->($k));
        $more++ if $w->{status} == 201;
    }
    is($more, 50, 'after reload with 8m, further writes succeed');
    $n->stop;
}

sub is_deeply_quiet {
    my ($x, $y) = @_;
    return JSON::PP->new->canonical->encode($x)
        eq JSON::PP->new->canonical->encode($y);
}

# --------------------------------------------------------------------------
# 6 and 7. variables in an access log; /metrics

{
    # the access log path is relative to the prefix: the harness directory
    my $n = InvTest->start(
        http_extra => 'log_format inv "$request_method $inventory_sku '
                      . '$inventory_location [$inventory_event_seq]";',
        server_extra => 'access_log inv.log inv;',
    );
    my $log = $n->dir . '/inv.log';

    # the sweeper's first purge of idempotency keys (a transaction of its
    # own, then one every 10 s) is counted before the baseline
    my $m0 = metrics($n) // {};
    for (1 .. 100) {
        last if ($m0->{inventory_transactions_total} // 0) >= 1;
        select undef, undef, undef, 0.05;
        $m0 = metrics($n) // {};
    }
    my $seq0 = $m0->{inventory_last_seq};
    is($seq0, 0, 'a new store: inventory_last_seq is 0');

    my @want;
    item_ok($n->req(PUT => '/v1/inventory/A-1/store-7',
                    json => { on_hand => 5 }),
            201, { version => 1 }, 'PUT creates A-1/store-7 (one event)');
    push @want, 'PUT A-1 store-7 [1]';
    item_ok($n->req(GET => '/v1/inventory/A-1/store-7'), 200, { version => 1 },
            'GET A-1/store-7');
    push @want, 'GET A-1 store-7 [-]';
    problem_ok($n->req(PUT => '/v1/inventory/A-1/store-7',
                       json => { on_hand => -1 }),
               400, 'invalid-request', 'PUT with on_hand -1 is 400');
    push @want, 'PUT A-1 store-7 [-]';
    item_ok($n->req(POST => '/v1/inventory/A-1/store-7/adjustments',
                    json => { delta => 2 }),
            200, { on_hand => 7, version => 2 }, 'adjustment (event 2)');
    push @want, 'POST A-1 store-7 [2]';
    item_ok($n->req(PUT => '/v1/inventory/B-2/store-9',
                    json => { on_hand => 1, min_level => 5 }),
            201, { low_stock => 1, version => 2 },
            'PUT with low stock appends two events (3 and 4)');
    push @want, 'PUT B-2 store-9 [4]';
    problem_ok($n->req(GET => '/v1/inventory/C-3/nowhere'), 404, 'not-found',
               'GET an unknown item');
    push @want, 'GET C-3 nowhere [-]';
    item_ok($n->req(PUT => '/v1/inventory/A-1/store-7',
                    json => { on_hand => 9 }),
            200, { on_hand => 9, version => 3 }, 'PUT on an existing item');
    push @want, 'PUT A-1 store-7 [5]';
    is($n->req(GET => '/v1/health')->{status}, 200, 'health');
    push @want, 'GET - - [-]';

    # An empty (not found) variable is logged by nginx as "-": the module
    # leaves $inventory_event_seq empty when the request appended no event.
    # Requests outside the API (the harness's readiness pings, /metrics) and
    # /v1/health log "GET - - [-]".  A line is written after its response,
    # possibly by the other worker, so the order of lines is not compared.
    my @lines;
    my $deadline = time + 2;
    while (1) {
        @lines = grep { length } split /\n/, slurp($log) // '';
        last if (grep { $_ ne 'GET - - [-]' } @lines) >= @want - 1
                && (grep { $_ eq 'GET - - [-]' } @lines) >= 3;
        last if time > $deadline;
        sleep 0.05;
    }
    my @api = sort grep { $_ ne 'GET - - [-]' } @lines;
    my @dash = grep { $_ eq 'GET - - [-]' } @lines;
    ok(@dash >= 3, 'pings, /metrics and /v1/health log "GET - - [-]"')
        or diag "log:\n" . (slurp($log) // '');
    is_deeply(\@api, [ sort grep { $_ ne 'GET - - [-]' } @want ],
              'access log shows $inventory_sku, $inventory_location and '
              . '$inventory_event_seq ("-" when there is none)')
        or diag "log:\n" . (slurp($log) // '');

    # metrics after these requests.  A request is counted in the log phase,
    # after its response has reached the client, so the last one (health)
    # may not be counted yet when /metrics is asked: wait for the counts to
    # get there, then compare them exactly.
    my $k = sub { "inventory_requests_total{route=\"$_[0]\",status=\"$_[1]\"}" };
    my %delta = (
        $k->('item', 201) => 2, $k->('item', 200) => 2,
        $k->('item', 400) => 1, $k->('item', 404) => 1,
        $k->('adjustments', 200) => 1, $k->('health', 200) => 1,
        inventory_events_appended_total => 5,
        inventory_transactions_total => 4,
        inventory_commands_total => 4,
    );
    my $m1;
    $deadline = time + 3;
    while (1) {
        $m1 = metrics($n) // {};
        last unless grep { ($m1->{$_} // 0) - ($m0->{$_} // 0) < $delta{$_} }
                    keys %delta;
        last if time > $deadline;
        sleep 0.05;
    }
    for my $name (sort keys %delta) {
        is(($m1->{$name} // 0) - ($m0->{$name} // 0), $delta{$name},
           "/metrics: $name grew by $delta{$name}")
            or diag "before: " . ($m0->{$name} // 'absent')
                    . ", after: " . ($m1->{$name} // 'absent');
    }
    is($m1->{inventory_last_seq}, 5,
       'inventory_last_seq is the seq of the last event (5, as logged)');
    is($n->req(GET => '/v1/health')->{json}{store}{last_seq}, 5,
       'health last_seq agrees');

    # counters survive a reload
    $n->reload;
    my $m2 = metrics($n) // {};
    my @lost = grep { ($m2->{$_} // 0) < $m1->{$_} }
               grep { /^inventory_(?:requests|events_appended|transactions
                                   |commands)_total/x } sort keys %$m1;
    ok(!@lost, 'no counter goes back after a reload')
        or diag join "\n", map { "$_: $m1->{$_} -> " . ($m2->{$_} // 'absent') }
                               @lost;
    is($m2->{ $k->('item', 201) }, $m1->{ $k->('item', 201) },
       'item/201 keeps its value across the reload');
    is($m2->{inventory_last_seq}, 5, 'inventory_last_seq is 5 after reload');

    item_ok($n->req(PUT => '/v1/inventory/D-4/store-1',
                    json => { on_hand => 1 }),
            201, { version => 1 }, 'a PUT after the reload');
    # a request is counted when it is logged, just after its response
    my $m3;
    for (1 .. 40) {
        $m3 = metrics($n) // {};
        last if ($m3->{ $k->('item', 201) } // 0)
                > $m1->{ $k->('item', 201) };
        select undef, undef, undef, 0.05;
    }
    is($m3->{ $k->('item', 201) }, $m1->{ $k->('item', 201) } + 1,
       'item/201 goes on counting from its value before the reload');
    is($m3->{inventory_events_appended_total},
       $m1->{inventory_events_appended_total} + 1,
       'events_appended_total goes on counting after the reload');
    is($m3->{inventory_last_seq}, 6, 'inventory_last_seq is 6');

    $n->stop;
}

my $took = time - $T0;
note sprintf 'took %.1f s', $took;

done_testing;
