#!/usr/bin/perl
# A primary that comes back as a follower of a node that went on without
# it: what it committed alone is discarded (it starts again from a snapshot
# of the new primary), and once it has rejoined it holds exactly the new
# primary's store.  Both ways its history can differ: the new primary has
# fewer transactions than it (the follower is "ahead"), or as many and more
# but other ones (its last transaction is not the new primary's).
use strict;
use warnings;
use Test::More;
use Time::HiRes qw(sleep time);
use FindBin;
use lib "$FindBin::Bin/lib";
use InvTest qw(ipath put_n admin_run verify_ok);

my $repl = 'location /replication/ { inventory_replication; }';

sub follow_conf { "inventory_follow http://127.0.0.1:$_[0]/replication/;" }

sub health { $_[0]->req(GET => '/v1/health')->{json} // {} }

# waits until the follower holds the primary's last seq
sub caught_up {
    my ($f, $p, $label) = @_;
    my $want = health($p)->{store}{last_seq};
    my $deadline = time + 20;
    my $h;
    while (time < $deadline) {
        $h = health($f);
        last if ($h->{store}{last_seq} // -1) == $want
                && ($h->{replication}{applied_seq} // -1) == $want;
        sleep 0.05;
    }
    is($h->{store}{last_seq}, $want, "$label: the follower is at seq $want");
}

sub dump_all {
    my ($dir) = @_;
    my ($rc, $out, $err) = admin_run('dump', $dir, '--all');
    is($rc, 0, "dump --all of $dir") or diag $err;
    return $out;
}

for my $case (['ahead', 3], ['another history', 12]) {
    my ($name, $new_writes) = @$case;

    # A primary and its follower
    my $a = InvTest->start(server_extra => $repl);
    is(put_n($a, 'A', 20), 20, "$name: 20 writes on the first primary");
    my $b = InvTest->start(http_extra => follow_conf($a->port),
                           server_extra => $repl);
    caught_up($b, $a, "$name: before");

    # the follower stops; the primary goes on alone, then stops too
    my $bdir = $b->datadir;
    $b->stop;
    is(put_n($a, 'ALONE', 5), 5, "$name: 5 writes the follower never got");
    my $adir = $a->datadir;
    my $alone_seq = health($a)->{store}{last_seq};
    $a->stop;

    # the follower is made the primary (its configuration says so) and
    # takes writes
    $b = InvTest->start(datadir => $bdir, server_extra => $repl);
    is(health($b)->{role}, 'primary', "$name: the old follower serves as "
                                      . "the primary");
    is(put_n($b, 'B', $new_writes), $new_writes,
       "$name: $new_writes writes on the new primary");

    # the old primary comes back as its follower
    $a = InvTest->start(datadir => $adir, http_extra => follow_conf($b->port),
                        server_extra => $repl);
    $a->allow_log(qr/cannot continue this store's history/);
    caught_up($a, $b, "$name: rejoined");

    my $h = health($a);
    is($h->{role}, 'follower', "$name: the old primary is a follower");
    is($h->{store_id}, health($b)->{store_id}, "$name: of the same store");
    is($a->req(GET => ipath('ALONE-1', 'L'))->{status}, 404,
       "$name: what it committed alone is gone");
    is($a->req(GET => ipath("B-$new_writes", 'L'))->{status}, 200,
       "$name: what the new primary committed is there");
    ok($h->{store}{last_seq} != $alone_seq || $new_writes == 5,
       "$name: its seq is the new primary's");
    like($a->error_log, qr/cannot\ continue\ this\ store's\ history:
                           \ starting\ again\ from\ a\ snapshot/x,
         "$name: it said why it started again");

    my $da = dump_all($adir);
    my $db = dump_all($bdir);
    ok(length $da && $da eq $db,
       "$name: dump --all of both is the same bytes");
    verify_ok($adir, undef, "$name: the rejoined store");

    $a->stop;
    $b->stop;
}

done_testing;
