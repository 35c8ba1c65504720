#!/usr/bin/perl
# Automatic failover (inventory_cluster): three nodes with empty stores and
# an etcd cluster of three members (Debian's etcd-server, on loopback,
# temporary data directories), inventory_sync_replicas 1, ttl 2s.
#
# * one node is elected, the others start from its snapshot and follow it;
# * a writer sends keyed PUTs to whichever node is the primary, retrying a
#   write with its key until it is 2xx; every 2xx is recorded;
# * rounds of kill -9 of the primary (INVENTORY_CLUSTER_ROUNDS, 2 by
#   default; the long run 20 or more): another node is elected within
#   ttl + 5 s (the time from the kill to the first 2xx write is measured),
#   the killed node comes back and rejoins as a follower;
# * the primary paused (SIGSTOP) longer than the ttl: another is elected;
#   resumed (SIGCONT), the old primary answers no write 2xx, and rejoins;
# * an etcd member killed (the one every node asks first): writes go on;
# * etcd without a quorum: writes stop within the ttl, reads go on; with a
#   quorum again, writes go on;
# * at the end: every acknowledged write is on the final primary with its
#   value, the feed has no gap, verify passes, every node's dump is the
#   primary's, byte for byte.
use strict;
use warnings;
use Test::More;
use Time::HiRes qw(sleep time);
use File::Temp qw(tempdir);
use POSIX ();
use FindBin;
use lib "$FindBin::Bin/lib";
use InvTest qw(ipath which free_port admin_run verify_ok feed_pages
               parallel_stop slurp keyed_writer acked_after acked_items
               metric_value);

plan skip_all => 'etcd is not installed (make deps)' unless which('etcd');

my $ROUNDS = $ENV{INVENTORY_CLUSTER_ROUNDS} // 2;
my $TTL = 2;

# --- etcd, three members on loopback ------------------------------------
my $etcd = InvTest::Etcd->new(members => 3);
my $ETCD = $etcd->urls;
my $edir = $etcd->{dir};
$etcd->start($_) for 0 .. 2;
ok($etcd->ready(0), 'an etcd cluster of three members answers on loopback')
    or BAIL_OUT('etcd did not start: ' . $etcd->log(0));

# --- inventory_cluster and inventory_follow exclude each other ----------
{
    my $n = eval {
        InvTest->start(http_extra => "inventory_cluster "
                       . "etcd=$ETCD name=x "
                       . "advertise=http://127.0.0.1:%%PORT%%/replication/;\n"
                       . 'inventory_follow http://127.0.0.1:1/replication/;')
    };
    like($@ // '', qr/exclude each other/,
         'inventory_cluster with inventory_follow: nginx does not start');
}

# --- three nodes --------------------------------------------------------
my $repl = 'location /replication/ { inventory_replication; }';
my @nodes = map {
    InvTest->start(
        http_extra => "inventory_cluster etcd=$ETCD "
                      . "name=n$_ advertise=http://127.0.0.1:%%PORT%%"
                      . "/replication/ ttl=${TTL}s;\n"
                      . "inventory_sync_replicas 1 timeout=2s;",
        server_extra => $repl)
} 1 .. 3;
$_->allow_log(qr/inventory follow|inventory cluster|replication-timeout/)
    for @nodes;

sub health { my $r = $_[0]->req(GET => '/v1/health'); $r->{json} // {} }

# the one node that says it is the primary, waiting up to $wait s
sub primary {
    my ($wait, @skip) = @_;
    my %skip = map { $_ => 1 } @skip;
    my $deadline = time + ($wait // 15);
    while (time < $deadline) {
        my @p = grep { !$skip{$_} && (health($_)->{role} // '') eq 'primary' }
                @nodes;
        return $p[0] if @p == 1;
        sleep 0.1;
    }
    return undef;
}

my $p = primary(20);
ok($p, 'one node was elected the primary') or BAIL_OUT('no election');
my @ids = map { health($_)->{store_id} } @nodes;
my $deadline = time + 20;
while (time < $deadline && grep({ ($_ // '') ne $ids[0] } @ids)) {
    sleep 0.2;
    @ids = map { health($_)->{store_id} } @nodes;
}
is(scalar(grep { $_ eq $ids[0] } @ids), 3,
   'the others copied its store (one store_id)');
is(join(',', map { metric_value($_, 'inventory_cluster_writable') } @nodes),
   join(',', map { $_ == $p ? 1 : 0 } @nodes),
   'metrics: only the primary is writable');
is(metric_value($p, 'inventory_cluster_elections_total'), 1,
   'metrics: it won one election');

# --- the writer: keyed PUTs to whichever node leads, 2xx recorded ----
my $acked = "$edir/acked";
my $writer = keyed_writer([ map { $_->url('/v1/inventory/') } @nodes ],
                          $acked, 'W');

sub kill_node {
    my ($n, $sig) = @_;
    kill $sig, $n->master_pid, $n->worker_pids;
}

# --- rounds of kill -9 of the primary -----------------------------------
my @times;
for my $round (1 .. $ROUNDS) {
    sleep 1;
    my $t0 = time;
    $p->crash;
    my $q = primary(2 * $TTL + 10, $p);
    ok($q, "round $round: another node was elected");
    my $first;
    my ($killed) = grep { $nodes[$_] == $p } 0 .. $#nodes;
    while (!defined($first = acked_after($acked, $t0, $killed))
           && time - $t0 < $TTL + 15)
    {
        sleep 0.05;
    }
    ok(defined $first && $first - $t0 < $TTL + 5,
       sprintf "round %d: writes again %.2f s after the kill (< ttl + 5)",
       $round, ($first // time) - $t0);
    push @times, ($first // time) - $t0;
    $p->_launch;
    $p = $q // primary(10);
}
@times = sort { $a <=> $b } @times;
diag(sprintf "failover (kill -9 to the first 2xx write): p50 %.2f s, "
     . "max %.2f s over %d", $times[$#times / 2], $times[-1],
     scalar @times) if @times;

# --- the primary paused longer than the ttl -----------------------------
{
    my $old = $p;
    kill_node($old, 'STOP');
    my $t0 = time;
    my $q = primary(2 * $TTL + 10, $old);
    ok($q, 'the primary paused: another node was elected');
    sleep 0.5;
    kill_node($old, 'CONT');
    my $r = $old->req(PUT => ipath('AFTER-PAUSE', 'L'),
                      json => { on_hand => 1 });
    isnt($r->{status}, 201, 'resumed, the old primary answers no write 2xx '
                            . "($r->{status})");
    is($old->get(ipath('AFTER-PAUSE', 'L'))->{status}, 404,
       '... and did not apply it');
    my $deadline = time + 15;
    while (time < $deadline && (health($old)->{role} // '') ne 'follower') {
        sleep 0.1;
    }
    is(health($old)->{role}, 'follower', 'it rejoins as a follower');
    $p = $q;
}

# --- an etcd member killed: the cluster goes on ------------------------
# The member every node asks first.  If it led etcd's own raft, etcd
# elects another leader first (about a second), which may outlast half
# the ttl: the primary then steps down and the nodes elect again, as
# they must; either way writes go on, and nothing acknowledged is lost
# (checked at the end).
{
    my $lead = $p;
    $etcd->stop(0, 'KILL');
    my $t0 = time;
    my $first;
    while (!defined($first = acked_after($acked, $t0 + 0.5))
           && time - $t0 < $TTL + 10)
    {
        sleep 0.05;
    }
    ok(defined $first, sprintf 'an etcd member killed: writes go on '
                               . '(%.2f s after)', ($first // time) - $t0);
    $p = primary(10);
    diag(($p // 0) == $lead ? 'the same primary' : 'another primary');
    $etcd->start(0);
    ok($etcd->ready(0), 'the member is back');
}

# --- etcd lost (no quorum): writes stop, reads go on ----------------------
{
    $etcd->stop($_) for 1, 2;
    my $t0 = time;
    my $status;
    while (time - $t0 < $TTL + 5) {
        $status = $p->req(PUT => ipath('NO-ETCD', 'L'),
                          json => { on_hand => 1 })->{status};
        last if $status == 503;
        sleep 0.1;
    }
    is($status, 503, sprintf 'etcd without a quorum: writes stop within '
                             . '%.1f s', time - $t0);
    is($p->get(ipath('W-1', 'L'))->{status}, 200, 'reads go on');
    $etcd->start($_) for 1, 2;
    ok($etcd->ready(1), 'etcd has a quorum again');
    ok(primary(20), 'a primary again');
}

parallel_stop($writer, 60);

# --- the checker ----------------------------------------------------------
$p = primary(20);
ok($p, 'a primary at the end') or BAIL_OUT('no primary');
my %ack = map { $_ => 1 } acked_items($acked);
my @lost = grep {
    my $r = $p->get(ipath("W-$_", 'L'));
    !($r->{status} == 200 && ($r->{json}{on_hand} // -1) == $_)
} sort { $a <=> $b } keys %ack;
ok(scalar(keys %ack) > 20, scalar(keys %ack) . ' writes acknowledged');
is("@lost", '', 'every acknowledged write is on the final primary');

my ($ev, $probs) = feed_pages($p, 0, 1000);
is("@$probs", '', 'the feed has no gap');

# every copy reaches the primary's last transaction (a promotion has no
# event: the seqs alone do not tell)
my ($dump, @other);
$deadline = time + 30;
while (1) {
    (undef, $dump) = admin_run('dump', $p->datadir, '--all');
    @other = map { (admin_run('dump', $_->datadir, '--all'))[1] }
             grep { $_ != $p } @nodes;
    last if !grep({ $_ ne $dump } @other) || time > $deadline;
    sleep 0.2;
}
# no more elections while the nodes stop, one after another
$etcd->stop_all;
$_->stop for @nodes;
(undef, $dump) = admin_run('dump', $p->datadir, '--all');
for my $n (grep { $_ != $p } @nodes) {
    my ($rc2, $d2) = admin_run('dump', $n->datadir, '--all');
    ok(length $d2 && $d2 eq $dump, 'node ' . $n->port
                                   . ': the same bytes as the primary');
}
verify_ok($p->datadir, undef, 'the final primary');

done_testing;
