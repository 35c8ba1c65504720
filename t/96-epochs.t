#!/usr/bin/perl
# Manual failover and epochs: a follower configured as the primary (by a
# reload, or a restart) is promoted: its epoch grows by one in a
# transaction of its own, which its followers apply like any other.  A
# node of an older epoch is fenced off: a copy at a newer epoch applies
# nothing from it (health 503, the error log says why), and a deposed
# primary that went on alone cannot continue from the new one's history.
# A deposed primary that committed nothing alone rejoins without a
# snapshot; a copy taken before the promotion follows through it.
use strict;
use warnings;
use Test::More;
use Time::HiRes qw(sleep time);
use FindBin;
use lib "$FindBin::Bin/lib";
use InvTest qw(ipath put_n admin_run metric_value);

my $repl = 'location /replication/ { inventory_replication; }';

sub follow_conf { "inventory_follow http://127.0.0.1:$_[0]/replication/;" }

sub health { $_[0]->req(GET => '/v1/health') }

# waits until $f holds $p's last seq and epoch
sub caught_up {
    my ($f, $p, $label) = @_;
    my $want = health($p)->{json};
    my $deadline = time + 20;
    my $h = {};
    while (time < $deadline) {
        $h = health($f)->{json} // {};
        last if ($h->{store}{last_seq} // -1) == $want->{store}{last_seq}
                && ($h->{epoch} // 0) == $want->{epoch};
        sleep 0.05;
    }
    is("$h->{store}{last_seq}/$h->{epoch}",
       "$want->{store}{last_seq}/$want->{epoch}",
       "$label: at the same seq and epoch");
}

sub dump_all {
    my ($dir) = @_;
    my ($rc, $out, $err) = admin_run('dump', $dir, '--all');
    is($rc, 0, "dump --all of $dir") or diag $err;
    return $out;
}

# --- a primary, a follower, and a follower of that follower -------------
my $a = InvTest->start(server_extra => $repl);
is(put_n($a, 'A', 10), 10, '10 writes on the first primary');
my $b = InvTest->start(http_extra => follow_conf($a->port),
                       server_extra => $repl);
caught_up($b, $a, 'b follows a');
my $c = InvTest->start(http_extra => follow_conf($b->port),
                       server_extra => $repl);
caught_up($c, $b, 'c follows b');
is(health($a)->{json}{epoch}, 1, 'a store starts at epoch 1');

# --- a dies; b is made the primary by a reload of its configuration ----
my $adir = $a->datadir;
$a->stop;
$b->reconfigure(http_extra => '');
$b->reload;
my $hb = health($b)->{json};
is($hb->{role}, 'primary', 'b serves as the primary after the reload');
is($hb->{epoch}, 2, 'b was promoted: epoch 2');
like($b->error_log, qr/a follower's until now, is the primary's at epoch 2/,
     'its error log says so');
my ($rc, $out) = admin_run('info', $b->datadir);
like($out, qr/"epoch":2/, 'inventory-admin info shows epoch 2');
is($b->req(PUT => ipath('B-1', 'L'), json => { on_hand => 1 })->{status},
   201, 'b takes writes');

# its follower applies the promotion like any transaction
caught_up($c, $b, 'c follows b through the promotion');

# a reload that keeps it the primary promotes nothing more
$b->reload;
is(health($b)->{json}{epoch}, 2, 'another reload: still epoch 2');

# --- a comes back as a (deposed) primary: copies of epoch 2 refuse it ---
$a = InvTest->start(datadir => $adir, server_extra => $repl);
is(health($a)->{json}{epoch}, 1, 'a is back, at epoch 1');
my $cdir = $c->datadir;
my $before = dump_all($cdir);
$c->stop;
$c = InvTest->start(datadir => $cdir, http_extra => follow_conf($a->port),
                    server_extra => $repl);
$c->allow_log(qr/it was deposed by a promotion since/);
my $deadline = time + 10;
my $hc;
while (time < $deadline) {
    $hc = health($c);
    last if $hc->{status} == 503
            && ($hc->{json}{detail} // '') =~ /deposed/;
    sleep 0.1;
}
is($hc->{status}, 503, 'a copy at epoch 2 pointed at a: health 503');
like($hc->{json}{detail} // '', qr/an older epoch of this one/,
     '... saying why') or diag explain $hc->{json};
like($c->error_log, qr/serves epoch 1 of the store, this copy is at epoch 2/,
     'the error log names both epochs');
is(put_n($a, 'STALE', 2), 2, 'a, still configured as a primary, writes');
sleep 0.5;
$c->stop;
is(dump_all($cdir), $before, 'nothing of a was applied to c');

# --- a rejoins as b's follower: it committed nothing alone before the
# promotion's transaction, but the 2 writes just now came after it: a
# snapshot is needed, and the stale writes are gone ---------------------
$a->stop;
$a = InvTest->start(datadir => $adir, http_extra => follow_conf($b->port),
                    server_extra => $repl);
$a->allow_log(qr/cannot continue this store's history/);
caught_up($a, $b, 'a rejoined b');
is($a->get(ipath('STALE-1', 'L'))->{status}, 404,
   'what the deposed a wrote alone is gone');
is(metric_value($a, 'inventory_replication_snapshots_total'), 1,
   'it started again from a snapshot');
is(health($a)->{json}{epoch}, 2, 'a is at epoch 2');

# --- a copy that stopped before a promotion follows on, no snapshot ----
# d follows b and stops; b dies; a, b's follower, is promoted: d's last
# transaction is before epoch 3 began, so it continues from a's history.
my $d = InvTest->start(http_extra => follow_conf($b->port),
                       server_extra => $repl);
caught_up($d, $b, 'd follows b');
my $ddir = $d->datadir;
$d->stop;
$b->stop;
$a->stop;
$a = InvTest->start(datadir => $adir, server_extra => $repl);
is(health($a)->{json}{epoch}, 3, 'a promoted by a restart: epoch 3');
is(put_n($a, 'A3', 3), 3, 'a takes writes');
$d = InvTest->start(datadir => $ddir, http_extra => follow_conf($a->port),
                    server_extra => $repl);
caught_up($d, $a, 'd, stopped at epoch 2 before the fork, follows a');
is(metric_value($d, 'inventory_replication_snapshots_total') // 0, 0,
   '... without a snapshot');
is(dump_all($ddir), dump_all($adir), 'd and a: the same bytes');

$d->stop;
$a->stop;

done_testing;
