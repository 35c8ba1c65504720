# inventory_reservation_retention: ended reservations (committed, released,
# expired) are purged by the sweep once they ended more than the retention
# ago; active ones never are, whatever their age.
#
# * nginx -t refuses a bad time, 0 and a second directive, naming them.
# * A primary P (retention off at first) and a follower F of it.  With
#   off, nothing is purged: 4,500 reservations expire and stay.
# * P restarted with a retention of 3 s (the sweep then purges every
#   750 ms): the 4,500 go in bounded batches, transactions of at most
#   2,000 each (the sweep's info lines; the metric's steps are shown), and
#   read 404; the old active reservation made before them stays.
# * A committed one, a released one, a committed cart and an expired one,
#   each with a reference: they stay while they ended less than 3 s ago
#   (polled, while an older one is purged beside them), then read 404
#   problem+json like an unknown id, and commit and release of them are
#   404; their events stay in the item's history, the feed and the
#   reference's list; inventory_reservations_purged_total counts each
#   purged one once.
# * F applied every purge: the same answers there, and inventory-admin
#   dump and dump --all of the two stores are the same bytes, verify
#   passes on both.
use strict;
use warnings;
use Test::More;
use Time::HiRes qw(time sleep);
use InvTest qw(problem_ok parallel metric_value feed_pages event_pages
               last_seq wait_applied same_store_ok sleep_until wait_until);

my $R = 3;              # s: the retention
my $BATCH = 2000;       # the most one purge forgets (expiry.c)
my $BACKLOG = 4500;     # so purged in 3 transactions at least
my $REPL = 'location /replication/ { inventory_replication; }';
my $UNKNOWN = 'r_00000000AAAAAAAAAAAAAA';

sub purged_total {
    return metric_value($_[0], 'inventory_reservations_purged_total') // -1;
}

# --- nginx -t --------------------------------------------------------------------
for my $c (['2x', qr/inventory_reservation_retention needs a time of more than 0.*not "2x"/],
           ['0', qr/inventory_reservation_retention needs a time.*or "off", not "0"/],
           ['0s', qr/not "0s"/],
           ['-1s', qr/not "-1s"/],
           ['1d; inventory_reservation_retention 2d',
            qr/"inventory_reservation_retention" directive is duplicate/])
{
    my ($v, $re) = @$c;
    my $bad = eval {
        InvTest->start(workers => 1,
                       http_extra => "inventory_reservation_retention $v;")
    };
    ok(!$bad, "nginx -t refuses inventory_reservation_retention $v");
    like($@ // '', qr/\[emerg\].*$re.*in \S+nginx\.conf:\d+/,
         '... naming it and the line') or diag $@;
}
{
    my $bad = eval {
        InvTest->start(workers => 1,
                       location_extra => 'inventory_reservation_retention 1d;')
    };
    like($@ // '', qr/\[emerg\].*"inventory_reservation_retention" directive is not allowed here/,
         'inventory_reservation_retention is of the http block only');
}

# --- retention off: nothing is purged ------------------------------------------------
my $P = InvTest->start(workers => 2, server_extra => $REPL,
                       http_extra => 'inventory_reservation_retention off;');
my $F = InvTest->start(workers => 1, http_extra => 'inventory_follow '
                       . $P->url('/replication/') . ';');

for my $sku (qw(RT-1 RT-2 RT-3)) {
    is($P->put_item($sku, 'w', { on_hand => 1000000 })->{status}, 201,
       "item $sku/w");
}

# the oldest reservation of all, active for an hour
my $old = $P->reserve('RT-1', 'w', { quantity => 1, ttl_seconds => 3600 });
is($old->{status}, 201, 'an active reservation, for an hour');
my $OLD = $old->{json}{id} // '';
my $old_body = $old->{body};

my $t0 = time;
my @made = parallel(4, sub {
    my @ids;
    for (1 .. $BACKLOG / 4) {
        my $r = $P->reserve('RT-2', 'w', { quantity => 1, ttl_seconds => 1 });
        return "status $r->{status}: $r->{body}" unless $r->{status} == 201;
        push @ids, $r->{json}{id};
    }
    return join ' ', @ids;
});
my @BACK = map { split / / } grep { !/status/ } @made;
is(scalar @BACK, $BACKLOG, "$BACKLOG reservations of 1 s")
    or diag join "\n", grep { /status/ } @made;
diag sprintf 'made in %.1f s', time - $t0;

ok(wait_until(60, sub {
       (metric_value($P, 'inventory_reservations_expired_total') // 0)
       >= $BACKLOG }), "the $BACKLOG expired");
sleep $R + 1;
my $r = $P->get("/v1/reservations/$BACK[0]");
is($r->{status} . ($r->{json}{state} // ''), '200expired',
   "retention off: an expired one stays, past ${R} s") or diag $r->{body};
is(purged_total($P), 0, 'retention off: none purged');

# --- a retention of 3 s: the backlog goes, in bounded batches --------------------------
my $log_at = length $P->error_log;
$P->reconfigure(http_extra => "inventory_reservation_retention ${R}s;");
$P->restart;

my @steps = (purged_total($P));
ok(wait_until(30, sub {
       my $m = purged_total($P);
       push @steps, $m if $m != $steps[-1];
       $m >= $BACKLOG }), "after the restart, the $BACKLOG are purged");
is(purged_total($P), $BACKLOG, 'inventory_reservations_purged_total counts '
   . 'each once');

my @batches = map { /inventory: purged (\d+) ended reservations/ ? $1 : () }
              split /\n/, substr($P->error_log, $log_at);
my $sum = 0;
$sum += $_ for @batches;
is($sum, $BACKLOG, 'the sweep\'s info lines add up to them');
ok(@batches >= 3 && !grep({ $_ > $BATCH } @batches),
   "in transactions of at most $BATCH: @batches");
diag "inventory_reservations_purged_total went @steps";

my @gone = grep { $P->get("/v1/reservations/$_")->{status} != 404 }
           @BACK[0, 1, 999, 2000, 3333, -1];
ok(!@gone, 'purged ones read 404') or diag "@gone";
$r = $P->get("/v1/reservations/$OLD");
is($r->{body}, $old_body, 'the old active reservation stays as it was');

# --- each way a reservation ends ------------------------------------------------------
sub ended {
    my ($how, $ref) = @_;
    my $r = $how eq 'cart'
        ? $P->cart({ lines => [ { sku => 'RT-1', location => 'w', quantity => 2 },
                                { sku => 'RT-3', location => 'w', quantity => 3 } ],
                     reference => $ref })
        : $P->reserve('RT-1', 'w', { quantity => 1, reference => $ref,
                                     ttl_seconds => $how eq 'expire' ? 1 : 60 });
    is($r->{status}, 201, "reserved: $ref") or return undef;
    my $id = $r->{json}{id};
    return $id if $how eq 'expire';
    my $e = $how eq 'release' ? $P->release($id) : $P->commit($id);
    is($e->{status}, 200, "$how: $ref") or diag $e->{body};
    return $id;
}

my $first = ended('release', 'rt-first');
my $t_first = time;
my $expired = ended('expire', 'rt-expire');
sleep_until($t_first + $R - 0.5);     # before the first one is purged
my $t_end = time;
my %ID = (commit => ended('commit', 'rt-commit'),
          release => ended('release', 'rt-release'),
          cart => ended('cart', 'rt-cart'));

# while they ended less than R ago they stay; the first one goes meanwhile
my ($first_gone, @early);
while (time < $t_end + $R - 0.3) {
    $first_gone //= time
        if $P->get("/v1/reservations/$first")->{status} == 404;
    for my $k (sort keys %ID) {
        my $s = $P->get("/v1/reservations/$ID{$k}")->{status};
        push @early, sprintf('%s %d after %.2f s', $k, $s, time - $t_end)
            if $s != 200;
    }
    last if @early;
    sleep 0.05;
}
ok(defined $first_gone, 'one that ended 1.5 s before them is purged while '
   . 'they are younger than the retention')
    or diag 'first: ' . $P->get("/v1/reservations/$first")->{body};
ok(!@early, 'those that ended less than the retention ago stay')
    or diag "@early";

$ID{expire} = $expired;
$ID{first} = $first;
ok(wait_until(15, sub {
       !grep { $P->get("/v1/reservations/$_")->{status} != 404 } values %ID
   }), 'then every ended one is purged: committed, released, the cart, '
       . 'expired');
is(purged_total($P), $BACKLOG + 5, 'the metric counted the five');

my $unknown = $P->get("/v1/reservations/$UNKNOWN");
for my $k (sort keys %ID) {
    my $g = $P->get("/v1/reservations/$ID{$k}");
    problem_ok($g, 404, $unknown->{json}{code} // 'not-found',
               "GET of the purged $k one");
    is($g->{json}{title}, $unknown->{json}{title}, '... as for an unknown id');
    problem_ok($P->commit($ID{$k}), 404, 'not-found', "commit of the $k one");
    problem_ok($P->release($ID{$k}), 404, 'not-found',
               "release of the $k one");
}
$r = $P->get("/v1/reservations/$OLD");
is($r->{body}, $old_body, 'the old active reservation still stays');

# --- the ledger keeps their events -----------------------------------------------------
my ($feed, $fp) = feed_pages($P, 0, 1000);
ok(!@$fp, 'the feed pages') or diag "@$fp";
my %ended = (commit => 'ReservationCommitted', release => 'ReservationReleased',
             cart => 'ReservationCommitted', expire => 'ReservationExpired',
             first => 'ReservationReleased');
for my $k (sort keys %ID) {
    my @ev = grep { ($_->{data}{reservation_id} // '') eq $ID{$k} } @$feed;
    my $lines = $k eq 'cart' ? 2 : 1;
    is(join(',', map { $_->{type} } @ev),
       join(',', ('StockReserved') x $lines, ($ended{$k}) x $lines),
       "the feed keeps the events of the $k one");
}
my ($hist, $hp) = event_pages($P, 'RT-3', 'w', 100);
ok(!@$hp && grep({ ($_->{data}{reservation_id} // '') eq $ID{cart} } @$hist) == 2,
   'the item\'s history keeps the cart\'s events on RT-3/w');
$r = $P->get('/v1/events?reference=rt-cart');
is(join(',', map { $_->{type} } @{ $r->{json}{events} // [] }),
   'StockReserved,StockReserved,ReservationCommitted,ReservationCommitted',
   'the events by the cart\'s reference are all there') or diag $r->{body};
my @back_ev = grep { ($_->{data}{reservation_id} // '') eq $BACK[0] } @$feed;
is(join(',', map { $_->{type} } @back_ev), 'StockReserved,ReservationExpired',
   'and those of the backlog');

# --- the follower applied every purge ---------------------------------------------------
# a last write: its seq on F means F holds every transaction before it
is($P->put_item('RT-9', 'w', { on_hand => 1 })->{status}, 201, 'a last write');
ok(wait_applied($F, last_seq($P)), 'F holds everything P wrote');
my @kept = grep { $F->get("/v1/reservations/$_")->{status} != 404 }
           values %ID, @BACK[0, 2000, -1];
ok(!@kept, 'F: the purged ones read 404') or diag "@kept";
is($F->get("/v1/reservations/$OLD")->{body}, $old_body,
   'F: the old active one is there');
is(purged_total($F), 0, 'F: its own sweep purged nothing');
same_store_ok([ $P->datadir, $F->datadir ], 'after the purges');

$F->stop;
$P->stop;

done_testing;
