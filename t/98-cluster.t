#!/usr/bin/perl
# Automatic failover (inventory_cluster): three nodes with empty stores and
# one etcd member (Debian's etcd-server, on loopback, a temporary data
# directory), inventory_sync_replicas 1, ttl 2s.
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
# * etcd stopped: writes stop within the ttl, reads go on; started again,
#   writes go on;
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
               parallel_start parallel_stop slurp);

plan skip_all => 'etcd is not installed (make deps)' unless which('etcd');

my $ROUNDS = $ENV{INVENTORY_CLUSTER_ROUNDS} // 2;
my $TTL = 2;

# --- etcd, one member on loopback ---------------------------------------
my $edir = tempdir('inventory-etcd-XXXXXX', TMPDIR => 1, CLEANUP => 1);
my ($cport, $pport) = (free_port(), free_port());
my $etcd_pid;

sub etcd_start {
    $etcd_pid = fork // die $!;
    if ($etcd_pid == 0) {
        open STDOUT, '>>', "$edir/etcd.log";
        open STDERR, '>&', \*STDOUT;
        no warnings 'exec';
        exec 'etcd', '--data-dir', "$edir/data", '--name', 'e1',
             '--listen-client-urls', "http://127.0.0.1:$cport",
             '--advertise-client-urls', "http://127.0.0.1:$cport",
             '--listen-peer-urls', "http://127.0.0.1:$pport",
             '--initial-advertise-peer-urls', "http://127.0.0.1:$pport",
             '--initial-cluster', "e1=http://127.0.0.1:$pport";
        POSIX::_exit(127);
    }
    my $h = HTTP::Tiny->new(timeout => 2);
    for (1 .. 100) {
        my $r = $h->post("http://127.0.0.1:$cport/v3/kv/range",
                         { content => '{"key":"AA=="}' });
        return 1 if $r->{status} == 200;
        sleep 0.1;
    }
    return 0;
}

sub etcd_stop {
    return unless $etcd_pid;
    kill 'TERM', $etcd_pid;
    waitpid $etcd_pid, 0;
    $etcd_pid = undef;
}

END { etcd_stop() }

ok(etcd_start(), 'etcd answers on loopback')
    or BAIL_OUT('etcd did not start: ' . (slurp("$edir/etcd.log") // ''));

# --- inventory_cluster and inventory_follow exclude each other ----------
{
    my $n = eval {
        InvTest->start(http_extra => "inventory_cluster "
                       . "etcd=http://127.0.0.1:$cport name=x "
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
        http_extra => "inventory_cluster etcd=http://127.0.0.1:$cport "
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

# --- the writer: keyed PUTs to the current primary, 2xx recorded ---------
my $acked = "$edir/acked";
my $ports = join ',', map { $_->port } @nodes;
my $writer = parallel_start(1, sub {
    my (undef, $stop) = @_;
    my $h = HTTP::Tiny->new(timeout => 5);
    open my $log, '>>', $acked or die $!;
    $log->autoflush(1);
    my $i = 0;
    my @ports = split /,/, $ports;
    my $cur = 0;
    while (!$stop->()) {
        $i++;
        my $key = "w-$i";
        my $body = qq({"on_hand":$i});
        for my $try (1 .. 400) {
            my $port = $ports[$cur];
            my $r = $h->request('PUT',
                "http://127.0.0.1:$port/v1/inventory/W-$i/L",
                { headers => { 'Content-Type' => 'application/json',
                               'Idempotency-Key' => $key },
                  content => $body });
            if ($r->{status} =~ /^20[01]$/) {
                printf {$log} "%d %.3f\n", $i, Time::HiRes::time();
                last;
            }
            # another node may lead now
            $cur = ($cur + 1) % @ports;
            Time::HiRes::sleep(0.02);
            last if $stop->() && $try > 100;
        }
        Time::HiRes::sleep(0.01);
    }
    return '';
});

sub acked_after {
    my ($t) = @_;
    open my $f, '<', $acked or return;
    while (<$f>) {
        my ($i, $at) = split;
        return $at if $at > $t;
    }
    return;
}

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
    while (!defined($first = acked_after($t0)) && time - $t0 < $TTL + 15) {
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

# --- etcd lost: writes stop, reads go on ---------------------------------
{
    etcd_stop();
    my $t0 = time;
    my $status;
    while (time - $t0 < $TTL + 5) {
        $status = $p->req(PUT => ipath('NO-ETCD', 'L'),
                          json => { on_hand => 1 })->{status};
        last if $status == 503;
        sleep 0.1;
    }
    is($status, 503, sprintf 'etcd lost: writes stop within %.1f s',
                             time - $t0);
    is($p->get(ipath('W-1', 'L'))->{status}, 200, 'reads go on');
    ok(etcd_start(), 'etcd is back');
    ok(primary(20), 'a primary again');
}

parallel_stop($writer, 60);

# --- the checker ----------------------------------------------------------
$p = primary(20);
ok($p, 'a primary at the end') or BAIL_OUT('no primary');
open my $af, '<', $acked or die $!;
my %ack = map { (split)[0] => 1 } <$af>;
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
etcd_stop();
$_->stop for @nodes;
(undef, $dump) = admin_run('dump', $p->datadir, '--all');
for my $n (grep { $_ != $p } @nodes) {
    my ($rc2, $d2) = admin_run('dump', $n->datadir, '--all');
    ok(length $d2 && $d2 eq $dump, 'node ' . $n->port
                                   . ': the same bytes as the primary');
}
verify_ok($p->datadir, undef, 'the final primary');

done_testing;
