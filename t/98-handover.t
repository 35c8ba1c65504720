#!/usr/bin/perl
# A planned handover (POST {replication location}handover[?to=NAME]) in a
# cluster of three nodes and three etcd members, inventory_sync_replicas 1,
# under a writer that sends keyed PUTs to whichever node leads:
#
# * refused as it must be: on a follower (not-primary), with GET (405), a
#   bad or own name (400), a name no follower has (503 handover-failed,
#   and the primary takes writes again), on a node in no cluster (404);
# * to a named follower: 200 naming it; it becomes the primary under the
#   same etcd lease (no wait for a lease to run out), at the next epoch;
#   the old primary follows it and answers no write 2xx;
# * with no name: to the follower that holds most;
# * to a follower that cannot catch up (paused with SIGSTOP while writes go
#   on): 503 handover-failed after the timeout, and the primary takes
#   writes again;
# * at the end: every acknowledged write is on the final primary, the feed
#   has no gap, every node's dump is the primary's, byte for byte.
use strict;
use warnings;
use Test::More;
use Time::HiRes qw(sleep time);
use HTTP::Tiny;
use JSON::PP;
use MIME::Base64 qw(encode_base64);
use FindBin;
use lib "$FindBin::Bin/lib";
use InvTest qw(ipath which admin_run verify_ok feed_pages parallel_stop
               keyed_writer acked_after acked_items);

plan skip_all => 'etcd is not installed (make deps)' unless which('etcd');

my $TTL = 4;

my $etcd = InvTest::Etcd->new(members => 3);
my $ETCD = $etcd->urls;
$etcd->start($_) for 0 .. 2;
ok($etcd->ready(0), 'an etcd cluster of three members answers on loopback')
    or BAIL_OUT('etcd did not start: ' . $etcd->log(0));

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

sub name_of { my ($n) = @_; 'n' . (1 + (grep { $nodes[$_] == $n } 0 .. 2)[0]) }
sub health { my $r = $_[0]->req(GET => '/v1/health'); $r->{json} // {} }
sub role { health($_[0])->{role} // '' }

sub primary {
    my ($wait, @skip) = @_;
    my %skip = map { $_ => 1 } @skip;
    my $deadline = time + ($wait // 15);
    while (time < $deadline) {
        my @p = grep { !$skip{$_} && role($_) eq 'primary' } @nodes;
        return $p[0] if @p == 1;
        sleep 0.1;
    }
    return undef;
}

# the lease etcd binds the leader key to
sub leader_lease {
    my $h = HTTP::Tiny->new(timeout => 3);
    my $key = encode_base64('/ngx_inventory/leader', '');
    my $r = $h->post($etcd->url(0) . '/v3/kv/range',
                     { content => qq({"key":"$key"}) });
    my $j = eval { decode_json($r->{content}) } // {};
    return $j->{kvs} ? $j->{kvs}[0]{lease} : undef;
}

sub handover {
    my ($n, $to) = @_;
    return $n->req(POST => '/replication/handover'
                           . (defined $to ? "?to=$to" : ''));
}

sub put_ok {
    my ($n, $sku) = @_;
    return $n->req(PUT => ipath($sku, 'L'), json => { on_hand => 1 })
               ->{status};
}

my $p = primary(20);
ok($p, 'one node was elected the primary') or BAIL_OUT('no election');
my @f = grep { $_ != $p } @nodes;
my $deadline = time + 20;
while (time < $deadline
       && grep { (health($_)->{store_id} // '') ne health($p)->{store_id} }
               @f)
{
    sleep 0.2;
}

my $acked = "$etcd->{dir}/acked";
my $writer = keyed_writer([ map { $_->url('/v1/inventory/') } @nodes ],
                          $acked, 'W');
sleep 1;

# --- refused ---------------------------------------------------------------
{
    my $r = handover($f[0]);
    is($r->{status}, 503, 'asked of a follower: 503');
    is($r->{json}{code} // '', 'not-primary',
       '... not-primary') or diag explain $r->{json};
    $r = $p->req(GET => '/replication/handover');
    is($r->{status}, 405, 'GET: 405');
    is($r->{headers}{allow}, 'POST', '... Allow: POST');
    $r = handover($p, 'bad%20name');
    is($r->{status}, 400, 'a bad name: 400');
    is(join(',', map { $_->{field} } @{ $r->{json}{errors} // [] }), 'to',
       '... the field named');
    $r = handover($p, name_of($p));
    is($r->{status}, 400, 'its own name: 400');
    $r = handover($p, 'nosuch');
    is($r->{status}, 503, 'a name no follower has: 503');
    is($r->{json}{code} // '', 'handover-failed',
       '... handover-failed') or diag explain $r->{json};
    like($r->{json}{detail} // '', qr/"nosuch" is no member/,
         '... saying why');
    ok($r->{headers}{'retry-after'}, '... with Retry-After');
    is(role($p), 'primary', 'the primary leads on');
    is(put_ok($p, 'AFTER-REFUSED'), 201, '... and takes writes again');

    my $lone = InvTest->start(server_extra => $repl);
    $r = handover($lone);
    is($r->{status}, 404, 'a node in no cluster: 404');
    $lone->stop;
}

# --- to a named follower ---------------------------------------------------
my @pauses;
{
    my $to = $f[1];
    my $lease = leader_lease();
    my $epoch = health($p)->{epoch};
    ok($lease, "the leader key is bound to lease $lease");
    my $t0 = time;
    my $r = handover($p, name_of($to));
    is($r->{status}, 200, 'handed over to a named follower: 200')
        or diag explain $r->{json};
    is($r->{json}{handed_over_to}, name_of($to), '... naming it');
    is($r->{json}{primary}, $to->url('/replication/'), '... and its URL');
    ok(($r->{json}{seq} // 0) > 0, "... and the seq it holds "
                                   . "($r->{json}{seq})");
    isnt(put_ok($p, 'OLD-AFTER'), 201,
         'the old primary answers no write 2xx');
    my $q = primary(2 * $TTL, $p);
    is($q, $to, 'the follower named is the primary');
    is(leader_lease(), $lease, '... under the same etcd lease: no lease '
                               . 'ran out');
    is(health($to)->{epoch}, $epoch + 1, '... at the next epoch');
    $deadline = time + 10;
    sleep 0.1 while time < $deadline && role($p) ne 'follower';
    is(role($p), 'follower', 'the old primary follows');
    is(health($p)->{replication}{primary}, $to->url('/replication/'),
       '... the new one');
    is($p->get(ipath('OLD-AFTER', 'L'))->{status}, 404,
       '... and did not apply the write it refused');
    is(put_ok($to, 'NEW-AFTER'), 201, 'the new primary takes writes');
    my ($old) = grep { $nodes[$_] == $p } 0 .. 2;
    my $first = acked_after($acked, $t0, $old);
    push @pauses, $first - $t0 if defined $first;
    $p = $to;
    sleep 1;
}

# --- with no name: the follower that holds most ----------------------------
{
    my $lease = leader_lease();
    my $r = handover($p);
    is($r->{status}, 200, 'handed over with no name: 200')
        or diag explain $r->{json};
    my ($to) = grep { name_of($_) eq ($r->{json}{handed_over_to} // '') }
               @nodes;
    ok($to && $to != $p, '... to another node');
    my $q = primary(2 * $TTL, $p);
    ok($q && $to && $q == $to, '... which is the primary');
    is(leader_lease(), $lease, '... under the same lease');
    $p = $q // primary(20);
    sleep 1;
}

# --- to a follower that cannot catch up ------------------------------------
{
    my ($slow) = grep { $_ != $p } @nodes;
    kill 'STOP', $slow->master_pid, $slow->worker_pids;
    # writes go on with the other follower: the paused one falls behind
    my $ok = 0;
    for (1 .. 20) { $ok++ if put_ok($p, "BEHIND-$_") == 201 }
    ok($ok > 0, "writes go on with one follower paused ($ok of 20)");
    my $r = handover($p, name_of($slow));
    is($r->{status}, 503, 'to a follower that cannot catch up: 503');
    like($r->{json}{detail} // '', qr/held seq \d+ of \d+/,
         '... saying what it holds') or diag explain $r->{json};
    is(role($p), 'primary', 'the primary leads on');
    is(put_ok($p, 'AFTER-FAILED'), 201, '... and takes writes again');
    kill 'CONT', $slow->master_pid, $slow->worker_pids;
}

parallel_stop($writer, 60);

# --- the checker -----------------------------------------------------------
$p = primary(20);
ok($p, 'a primary at the end') or BAIL_OUT('no primary');
my %ack = map { $_ => 1 } acked_items($acked);
my @lost = grep {
    my $r = $p->get(ipath("W-$_", 'L'));
    !($r->{status} == 200 && ($r->{json}{on_hand} // -1) == $_)
} sort { $a <=> $b } keys %ack;
ok(scalar(keys %ack) > 20, scalar(keys %ack) . ' writes acknowledged');
is("@lost", '', 'every acknowledged write is on the final primary');

my (undef, $probs) = feed_pages($p, 0, 1000);
is("@$probs", '', 'the feed has no gap');

my ($dump, @other);
$deadline = time + 30;
while (1) {
    (undef, $dump) = admin_run('dump', $p->datadir, '--all');
    @other = map { (admin_run('dump', $_->datadir, '--all'))[1] }
             grep { $_ != $p } @nodes;
    last if !grep({ $_ ne $dump } @other) || time > $deadline;
    sleep 0.2;
}
$etcd->stop_all;
$_->stop for @nodes;
(undef, $dump) = admin_run('dump', $p->datadir, '--all');
for my $n (grep { $_ != $p } @nodes) {
    my (undef, $d2) = admin_run('dump', $n->datadir, '--all');
    ok(length $d2 && $d2 eq $dump, 'node ' . $n->port
                                   . ': the same bytes as the primary');
}
verify_ok($p->datadir, undef, 'the final primary');
diag(sprintf "handover, from the request to the writer's first 2xx from "
     . "the new primary: %.2f s (ttl %d s)", $pauses[0], $TTL) if @pauses;

done_testing;
