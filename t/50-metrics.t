#!/usr/bin/perl
# /metrics and /v1/health as an operator uses them: the exposition passes
# Prometheus's own checker (promtool), counts are exact and aggregated over
# both workers, the latency histograms agree with the request counts,
# conflicts, replays and active reservations are counted, statuses nginx
# itself answers in the module's locations (413) are counted, and health
# turns 503 when the map is nearly full while reads go on.
use strict;
use warnings;
use Test::More;
use File::Temp ();
use HTTP::Tiny;
use InvTest qw(parallel metric_value parse_metrics which);

my $promtool = which('promtool');
ok($promtool, 'promtool is installed (make deps installs prometheus)')
    or BAIL_OUT('promtool missing');

# metrics($n): one test (GET /metrics answers 200); returns the parsed
# metrics and the text
sub metrics {
    my ($n) = @_;
    my $r = $n->req(GET => '/metrics');
    is($r->{status}, 200, 'GET /metrics');
    return (parse_metrics($r->{body}), $r->{body});
}

sub promtool_ok {
    my ($text, $name) = @_;
    my $file = File::Temp->new(SUFFIX => '.prom');
    print $file $text;
    close $file;
    my $out = `$promtool check metrics < $file 2>&1`;
    is($?, 0, "promtool check metrics: $name") or diag $out;
    is($out, '', "promtool has no lint complaints: $name") or diag $out;
}

my $rq = sub { "inventory_requests_total{route=\"$_[0]\",status=\"$_[1]\"}" };

{
    my $n = InvTest->start(http_extra => 'client_max_body_size 1k;');

    my ($m0, $text0) = metrics($n);
    promtool_ok($text0, 'a new store');
    is($m0->{inventory_reservations_active}, 0, 'no active reservations');
    is($m0->{inventory_last_seq}, 0, 'last_seq 0');
    ok($m0->{inventory_store_map_size_bytes} > 0, 'map size is reported');
    ok($m0->{inventory_store_used_bytes} > 0, 'bytes used are reported');
    ok(defined $m0->{inventory_store_readers}, 'readers in use are reported');

    is($n->req(PUT => '/v1/inventory/M-1/s1',
               json => { on_hand => 100 })->{status}, 201, 'seed M-1');

    # 8 clients x 25 adjustments on new connections: both workers serve
    my @res = parallel(8, sub {
        my $ok = 0;
        for (1 .. 25) {
            my $h = HTTP::Tiny->new(timeout => 10);
            my $r = $h->request('POST',
                $n->url('/v1/inventory/M-1/s1/adjustments'),
                { headers => { 'Content-Type' => 'application/json' },
                  content => '{"delta":1}' });
            $ok++ if $r->{status} == 200;
        }
        return $ok;
    });
    is(eval { my $s = 0; $s += $_ for @res; $s }, 200,
       '200 adjustments from 8 clients answered 200');

    # conflicts: 409 (stock) and 412 (If-Match)
    is($n->req(POST => '/v1/inventory/M-1/s1/reservations',
               json => { quantity => 1000 })->{status}, 409, 'a 409');
    is($n->req(PUT => '/v1/inventory/M-1/s1', json => { on_hand => 1 },
               headers => { 'If-Match' => '"1"' })->{status}, 412, 'a 412');

    # reservations: two active, then one released
    my @ids;
    for (1 .. 2) {
        my $r = $n->req(POST => '/v1/inventory/M-1/s1/reservations',
                        json => { quantity => 1 });
        is($r->{status}, 201, 'reserve');
        push @ids, $r->{json}{id};
    }
    my ($m1) = metrics($n);
    is($m1->{inventory_reservations_active}, 2, 'two active reservations');
    is($n->req(POST => "/v1/reservations/$ids[0]/release")->{status}, 200,
       'release one');

    # an idempotent replay
    for (1 .. 2) {
        is($n->req(POST => '/v1/inventory/M-1/s1/adjustments',
                   json => { delta => -1 },
                   headers => { 'Idempotency-Key' => 'metrics-key-1' })
              ->{status}, 200, 'adjustment with a key (again: replayed)');
    }

    # nginx's own answer in the module's location: body over 1k
    my $big = '{"delta":1,"reason":"' . ('x' x 2000) . '"}';
    is($n->req(POST => '/v1/inventory/M-1/s1/adjustments', body => $big,
               headers => { 'Content-Type' => 'application/json' })
          ->{status}, 413, 'a body over client_max_body_size is 413');

    my $r = $n->req(GET => '/v1/nothing/here');
    is($r->{status}, 404, 'an unknown route');

    my %want = (
        $rq->('item', 201) => 1,
        $rq->('adjustments', 200) => 202,
        $rq->('adjustments', 413) => 1,
        $rq->('reserve', 409) => 1,
        $rq->('reserve', 201) => 2,
        $rq->('item', 412) => 1,
        $rq->('release', 200) => 1,
        $rq->('unknown', 404) => 1,
        'inventory_conflicts_total{status="409"}' => 1,
        'inventory_conflicts_total{status="412"}' => 1,
        inventory_idempotent_replays_total => 1,
        inventory_reservations_active => 1,
        inventory_events_appended_total => 1 + 200 + 2 + 1 + 1,
        inventory_last_seq => 205,
    );
    # a request is counted when it is logged: after its response, and for
    # a body nginx drains (413) when the client has closed
    my ($m2, $text2);
    for (1 .. 200) {
        ($m2, $text2) = metrics($n);
        last unless grep { ($m2->{$_} // -1) != $want{$_} } keys %want;
        select undef, undef, undef, 0.05;
    }
    promtool_ok($text2, 'after traffic');
    for my $k (sort keys %want) {
        is($m2->{$k}, $want{$k}, "$k = $want{$k}");
    }
    # every committed command is counted once, in some transaction
    ok($m2->{inventory_transactions_total} >= 1
       && $m2->{inventory_transactions_total}
          <= $m2->{inventory_commands_total},
       'transactions <= commands');
    is($m2->{inventory_commit_batch_size_count},
       $m2->{inventory_transactions_total},
       'batch size histogram counts every transaction');
    is($m2->{inventory_commit_batch_size_sum},
       $m2->{inventory_commands_total}, 'and sums every command');

    # the duration histogram agrees with the request counts, per route
    for my $route (qw(adjustments reserve item)) {
        my $total = 0;
        $total += $m2->{$_} for grep { /^inventory_requests_total\{route="$route",/ }
                                keys %$m2;
        is($m2->{"inventory_request_duration_seconds_count{route=\"$route\"}"},
           $total, "duration count of $route = its requests ($total)");
        is($m2->{"inventory_request_duration_seconds_bucket{route=\"$route\",le=\"+Inf\"}"},
           $total, "+Inf bucket of $route = its requests");
        my @b = map { $m2->{$_} }
                sort { ($a =~ /le="([^"]+)"/)[0] eq '+Inf' ? 1
                       : ($b =~ /le="([^"]+)"/)[0] eq '+Inf' ? -1
                       : ($a =~ /le="([^"]+)"/)[0] <=> ($b =~ /le="([^"]+)"/)[0] }
                grep { /^inventory_request_duration_seconds_bucket\{route="$route",/ }
                keys %$m2;
        is(scalar @b, 13, "$route has 13 buckets");
        ok(!grep({ $b[$_] < $b[$_ - 1] } 1 .. $#b),
           "$route buckets are cumulative");
        ok(defined $m2->{"inventory_request_duration_seconds_sum{route=\"$route\"}"},
           "$route has a duration sum");
    }

    $n->stop;
}

# health: nearly full map
{
    my $n = InvTest->start(store_args => 'map_size=1m');
    my $h = $n->req(GET => '/v1/health');
    is($h->{status}, 200, 'health 200 on a new store');
    is($h->{json}{status}, 'ok', 'status ok');
    for my $k (qw(map_size used last_seq readers max_readers)) {
        ok(defined $h->{json}{store}{$k}, "health reports store.$k");
    }
    is($h->{json}{store}{map_size}, 1024 * 1024, 'map_size 1m');

    my ($i, $first_503, $first_507) = (0);
    while ($i < 5000 && !$first_507) {
        $i++;
        my $r = $n->req(PUT => "/v1/inventory/FILL-$i/location-with-a-long-name-$i",
                        json => { on_hand => 5 });
        if ($r->{status} == 507) {
            $first_507 = $i;
            last;
        }
        is($r->{status}, 201, "fill $i") unless $r->{status} == 201;
        $first_503 //= $i
            if $n->req(GET => '/v1/health')->{status} == 503;
    }
    ok($first_507, "the map filled up ($first_507 items)");
    ok($first_503 && $first_503 < $first_507,
       "health turned 503 before the first 507 ($first_503 < "
       . ($first_507 // '?') . ')');
    InvTest::problem_ok($n->req(GET => '/v1/health'), 503, 'unavailable',
                        'health: 503 problem+json "unavailable"');
    is($n->req(GET => '/v1/inventory/FILL-1/location-with-a-long-name-1')
          ->{status}, 200, 'reads go on while health is 503');
    my ($m) = metrics($n);
    ok($m->{inventory_write_errors_total} >= 1,
       'the failed write is counted in inventory_write_errors_total');
    $n->allow_log(qr/MDB_MAP_FULL/);
    $n->stop;
}

# A write is counted before it is answered: read right after the answer, on
# a new connection (either worker), /metrics already shows it.  One client,
# so the counts are exact; every 4th write repeats the key before it.
{
    my $n = InvTest->start;
    is($n->req(PUT => '/v1/inventory/C-1/s1', json => { on_hand => 1 })
         ->{status}, 201, 'seed C-1');
    # $n->req opens a new connection each time: either worker answers
    my $count = sub {
        map { metric_value($n, "inventory_$_") // -1 }
            qw(events_appended_total idempotent_replays_total);
    };
    my ($events0, $replays0) = $count->();
    my ($applied, $replayed, @late) = (0, 0);
    for my $i (1 .. 150) {
        my $key = $i % 4 ? "count-$i" : 'count-' . ($i - 1);
        my $r = HTTP::Tiny->new(timeout => 10)->request('POST',
            $n->url('/v1/inventory/C-1/s1/adjustments'),
            { headers => { 'Content-Type' => 'application/json',
                           'Idempotency-Key' => $key },
              content => '{"delta":1}' });
        next unless $r->{status} == 200;
        if ($i % 4) { $applied++ } else { $replayed++ }
        my ($events, $replays) = $count->();
        push @late, "write $i: events $events, replays $replays"
            if $events - $events0 != $applied
               || $replays - $replays0 != $replayed;
    }
    is($applied + $replayed, 150, 'every write answered 200');
    ok(!@late, "each answered write was already counted ($applied events, "
       . "$replayed replays)") or diag join "\n", @late[0 .. $#late > 9 ? 9 : $#late];
    $n->stop;
}

done_testing;
