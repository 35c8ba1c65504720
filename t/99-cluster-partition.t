#!/usr/bin/perl
# Automatic failover across a network partition, in a network namespace the
# test makes itself: the primary runs inside it, joined to the host by a
# veth pair; etcd and the two other nodes listen on the host's end.  The
# link is cut while a writer goes on:
#
# * the two others elect one of themselves within ttl + 5 s;
# * the cut-off primary answers no write 2xx once its lead ran out (asked
#   from inside its namespace);
# * the link healed, it steps down and rejoins as a follower: what it
#   committed alone is gone, every acknowledged write is on the new
#   primary, and the copies are the same bytes.
#
# Needs root and iproute2 (as CI runs); traffic only on loopback and the
# test's own veth pair.
use strict;
use warnings;
use Test::More;
use Time::HiRes qw(sleep time);
use File::Temp qw(tempdir);
use POSIX ();
use FindBin;
use lib "$FindBin::Bin/lib";
use InvTest qw(ipath which free_port admin_run verify_ok slurp
               parallel_stop keyed_writer acked_after acked_items);

plan skip_all => 'needs root, ip and etcd'
    unless $> == 0 && which('ip') && which('etcd');

my $TTL = 2;
my $NS = "inv99-$$";
my ($HOST_IF, $NS_IF) = ("i99h$$", "i99n$$");
my $net = 10 + $$ % 200;
my ($HOST, $INSIDE) = ("10.199.$net.1", "10.199.$net.2");

sub sh {
    my $cmd = join ' ', @_;
    system(@_) == 0 or die "failed: $cmd\n";
}

sub ns_cleanup {
    system("ip netns del $NS 2>/dev/null");
    system("ip link del $HOST_IF 2>/dev/null");
}

ns_cleanup();
sh(qw(ip netns add), $NS);
END { local $?; ns_cleanup() }
sh(qw(ip link add), $HOST_IF, qw(type veth peer name), $NS_IF);
sh(qw(ip link set), $NS_IF, 'netns', $NS);
sh(qw(ip addr add), "$HOST/30", 'dev', $HOST_IF);
sh(qw(ip link set), $HOST_IF, 'up');
sh(qw(ip netns exec), $NS, qw(ip addr add), "$INSIDE/30", 'dev', $NS_IF);
sh(qw(ip netns exec), $NS, qw(ip link set), $NS_IF, 'up');
sh(qw(ip netns exec), $NS, qw(ip link set lo up));

# --- etcd, on the host's end of the link ---------------------------------
my $etcd = InvTest::Etcd->new(members => 1, host => $HOST);
my $edir = $etcd->{dir};
$etcd->start(0);
ok($etcd->ready(0), 'etcd answers on the host end of the link')
    or BAIL_OUT($etcd->log(0));

my $repl = 'location /replication/ { inventory_replication; }';

sub node {
    my ($name, %o) = @_;
    my $n = InvTest->start(
        http_extra => "inventory_cluster etcd=" . $etcd->urls . " "
                      . "name=$name advertise=http://%%ADDR%%:%%PORT%%"
                      . "/replication/ ttl=${TTL}s;\n"
                      . "inventory_sync_replicas 1 timeout=2s;",
        server_extra => $repl, addr => $HOST, %o);
    $n->allow_log(qr/inventory follow|inventory cluster|replication-time/);
    return $n;
}

sub health { $_[0]->req(GET => '/v1/health')->{json} // {} }

sub wait_role {
    my ($n, $role, $secs) = @_;
    my $deadline = time + $secs;
    while (time < $deadline) {
        return 1 if (health($n)->{role} // '') eq $role;
        sleep 0.1;
    }
    return 0;
}

# the node in the namespace is started first: it leads
my $na = node('a', netns => $NS, addr => $INSIDE);
ok(wait_role($na, 'primary', 15), 'the node in the namespace leads');
my @others = (node('b'), node('c'));
my $id = health($na)->{store_id};
my $deadline = time + 20;
while (time < $deadline
       && grep { (health($_)->{store_id} // '') ne $id } @others)
{
    sleep 0.2;
}
is(scalar(grep { (health($_)->{store_id} // '') eq $id } @others), 2,
   'the two on the host copied its store');

# --- the writer: keyed PUTs to whichever node leads, 2xx recorded ----
my $acked = "$edir/acked";
my $writer = keyed_writer([ map { $_->url('/v1/inventory/') } $na, @others ],
                          $acked, 'P');

sleep 1.5;

# --- the link is cut ------------------------------------------------------
my $t0 = time;
sh(qw(ip link set), $HOST_IF, 'down');
my $new;
$deadline = time + $TTL + 10;
while (!$new && time < $deadline) {
    ($new) = grep { (health($_)->{role} // '') eq 'primary' } @others;
    sleep 0.1 unless $new;
}
ok($new, sprintf 'cut off: another node leads %.2f s after the cut',
                 time - $t0);
my $first;
while (!defined($first = acked_after($acked, $t0, 0))
       && time - $t0 < $TTL + 10)
{
    sleep 0.05;
}
ok(defined $first && $first - $t0 < $TTL + 5,
   sprintf 'writes again %.2f s after the cut (< ttl + 5)',
   ($first // time) - $t0);

# from inside the namespace: the cut-off primary takes no write
my $code = `ip netns exec $NS curl -s -o /dev/null -m 5 -w '%{http_code}' -X PUT -H 'Content-Type: application/json' -d '{"on_hand":7}' http://$INSIDE:${\ $na->port}/v1/inventory/CUT-OFF/L`;
isnt($code, '201', "the cut-off primary answers no write 2xx ($code)");
isnt($code, '200', '... none at all');

# --- the link healed ------------------------------------------------------
sh(qw(ip link set), $HOST_IF, 'up');
ok(wait_role($na, 'follower', 20), 'healed: the old primary is a follower');
parallel_stop($writer, 60);

my $want = health($new)->{store}{last_seq};
my ($dump, @copies);
$deadline = time + 30;
while (1) {
    (undef, $dump) = admin_run('dump', $new->datadir, '--all');
    @copies = map { (admin_run('dump', $_->datadir, '--all'))[1] }
              grep { $_ != $new } $na, @others;
    last if !grep({ $_ ne $dump } @copies) || time > $deadline;
    sleep 0.2;
}
is($na->get(ipath('CUT-OFF', 'L'))->{status}, 404,
   'nothing the cut-off node took is anywhere');

my %ack = map { $_ => 1 } acked_items($acked);
my @lost = grep {
    my $r = $new->get(ipath("P-$_", 'L'));
    !($r->{status} == 200 && ($r->{json}{on_hand} // -1) == $_)
} sort { $a <=> $b } keys %ack;
ok(scalar(keys %ack) > 10, scalar(keys %ack) . ' writes acknowledged');
is("@lost", '', 'every acknowledged write is on the new primary');

$etcd->stop_all;
$_->stop for $na, @others;
(undef, $dump) = admin_run('dump', $new->datadir, '--all');
for my $n (grep { $_ != $new } $na, @others) {
    my ($rc, $d) = admin_run('dump', $n->datadir, '--all');
    ok(length $d && $d eq $dump, 'node ' . $n->port . ': the same bytes');
}
verify_ok($new->datadir, undef, 'the new primary');

done_testing;
