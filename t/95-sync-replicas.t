#!/usr/bin/perl
# inventory_sync_replicas: a write's answer is 2xx only once N followers
# hold its transaction durably, else 503 replication-timeout after the
# timeout, the write standing and a retry with its key safe.
#
# * every 2xx of a synchronous primary is on its follower when the client
#   reads it: the follower's store already holds the answer's
#   Inventory-Seq, checked right after each answer, from several clients;
# * no follower, or the only one paused (SIGSTOP): 503 replication-timeout
#   with Retry-After, the write committed on the primary; the retry with
#   the same key is 2xx once a follower holds it;
# * two followers and one paused: writes go on; with
#   inventory_sync_replicas 2, they wait for both;
# * a chained follower does not count for the primary.
use strict;
use warnings;
use Test::More;
use Time::HiRes qw(sleep time);
use POSIX ();
use FindBin;
use lib "$FindBin::Bin/lib";
use InvTest qw(ipath parallel metric_value);

my $repl = 'location /replication/ { inventory_replication; }';

sub follow_conf { "inventory_follow http://127.0.0.1:$_[0]/replication/;" }

sub health { $_[0]->req(GET => '/v1/health')->{json} // {} }

sub primary {
    my ($n, $timeout) = @_;
    return InvTest->start(
        http_extra => "inventory_sync_replicas $n timeout=$timeout;",
        server_extra => $repl);
}

sub follower {
    my ($p, %o) = @_;
    return InvTest->start(http_extra => follow_conf($p->port),
                          server_extra => $repl, %o);
}

# waits until $p counts $want followers in its health
sub followers_seen {
    my ($p, $want, $label) = @_;
    my $deadline = time + 20;
    my $h;
    while (time < $deadline) {
        $h = health($p);
        last if ($h->{followers} // -1) == $want;
        sleep 0.05;
    }
    is($h->{followers}, $want, "$label: the primary counts $want "
                               . "follower(s)");
}

sub stop_all { kill $_[1], $_[0]->master_pid, $_[0]->worker_pids }

my $n = 0;
sub put {
    my ($node, %o) = @_;
    my $sku = $o{sku} // 'S-' . ++$n;
    return $node->req(PUT => ipath($sku, 'L'), json => { on_hand => 5 },
                      headers => { %{ $o{headers} // {} } });
}

# --- a primary alone: every write times out, and stands ----------------
{
    my $p = primary(1, '1s');
    my $h = health($p);
    is($h->{sync_replicas}, 1, 'health: sync_replicas 1');
    is($h->{followers}, 0, 'health: no followers');

    my $t0 = time;
    my $r = put($p, sku => 'ALONE', headers => { 'Idempotency-Key' => 'k1' });
    my $took = time - $t0;
    is($r->{status}, 503, 'no follower: 503');
    is($r->{json}{type} // '', 'urn:inventory:problem:replication-timeout',
       'problem replication-timeout')
        or diag explain $r->{json};
    is($r->{headers}{'retry-after'}, '1', 'with Retry-After');
    ok($took >= 0.9, sprintf 'answered after the timeout (%.2f s)', $took);
    is($p->get(ipath('ALONE', 'L'))->{json}{on_hand}, 5,
       'the write stands on the primary');
    is(metric_value($p, 'inventory_replication_sync_timeouts_total'), 1,
       'one timeout counted');

    # a 409 is decided against the store too: it waits as well
    $r = $p->req(POST => ipath('ALONE', 'L') . '/reservations',
                 json => { quantity => 6 });
    is($r->{status}, 503, 'a refusal (not enough stock) waits too: 503');

    # a follower arrives: the retry of the key is answered 2xx
    my $f = follower($p);
    followers_seen($p, 1, 'one follower');
    $r = put($p, sku => 'ALONE', headers => { 'Idempotency-Key' => 'k1' });
    is($r->{status}, 201, 'the retry with the key: 201 once a follower '
                          . 'holds it');
    is($r->{headers}{'idempotent-replayed'}, 'true', '... a replay');
    is($f->get(ipath('ALONE', 'L'))->{json}{on_hand}, 5,
       'the follower holds it');
    is(metric_value($p, 'inventory_replication_sync_replicas'), 1,
       'metric: sync replicas');
    is(metric_value($p, 'inventory_replication_followers'), 1,
       'metric: one follower');
    $f->stop;
    $p->stop;
}

# --- one follower: each 2xx is on it when answered --------------------
{
    my $p = primary(1, '5s');
    my $f = follower($p);
    followers_seen($p, 1, 'sync');

    # 4 clients, 40 writes each; right after each 2xx, the follower's
    # store holds the seq the answer named
    my @bad = parallel(4, sub {
        my ($c) = @_;
        my @p;
        for my $i (1 .. 40) {
            my $r = put($p, sku => "C$c-$i");
            unless ($r->{status} == 201) {
                push @p, "C$c-$i: $r->{status}";
                next;
            }
            my $seq = $r->{headers}{'inventory-seq'};
            my $fs = health($f)->{store}{last_seq} // -1;
            push @p, "C$c-$i: answered at seq $seq, the follower at $fs"
                if $fs < $seq;
        }
        return join "\n", @p;
    });
    is(join('', @bad), '', 'every 2xx was on the follower when answered');

    # the follower paused: writes time out; resumed: they go on
    stop_all($f, 'STOP');
    my $r = put($p, sku => 'PAUSED');
    is($r->{status}, 503, 'the only follower paused: 503');
    is($r->{json}{type} // '', 'urn:inventory:problem:replication-timeout',
       '... replication-timeout');
    stop_all($f, 'CONT');
    $r = put($p, sku => 'RESUMED');
    is($r->{status}, 201, 'resumed: 201');
    is($f->get(ipath('PAUSED', 'L'))->{json}{on_hand}, 5,
       'the timed-out write reached the follower');
    $f->stop;
    $p->stop;
}

# --- two followers, one paused; then both needed -----------------------
for my $want (1, 2) {
    my $p = primary($want, '2s');
    my $f1 = follower($p);
    my $f2 = follower($p);
    # a follower of a follower does not count for the primary
    my $f3 = follower($f1);
    followers_seen($p, 2, "sync $want");

    my $r = put($p, sku => "BOTH-$want");
    is($r->{status}, 201, "sync $want, two followers: 201");
    my $seq = $r->{headers}{'inventory-seq'};
    my @at = map { health($_)->{store}{last_seq} } $f1, $f2;
    is(scalar(grep { $_ >= $seq } @at) >= $want, 1,
       "sync $want: $want follower(s) held it when answered (@at >= $seq)");

    stop_all($f1, 'STOP');
    $r = put($p, sku => "ONE-$want");
    if ($want == 1) {
        is($r->{status}, 201, 'sync 1, one of two paused: writes go on');
        ok(health($f2)->{store}{last_seq} >= $r->{headers}{'inventory-seq'},
           '... held by the other');
    } else {
        is($r->{status}, 503, 'sync 2, one of two paused: 503');
    }
    stop_all($f1, 'CONT');
    $_->stop for $f3, $f2, $f1;
    $p->stop;
}

done_testing;
