# A key held by a worker that was killed is taken over at once: the retry
# of the keyed write runs once, even while the dead worker is a zombie.
use strict;
use warnings;
use Test::More;
use POSIX ();
use Time::HiRes qw(sleep time);
use InvTest qw(item_ok ipath idem_key slurp write_lock_tid);

# ==========================================================================
# A key held by a worker that was killed is taken over at once, even while
# the dead worker is a zombie the master has not reaped (the master is
# stopped here).  mdb_load, given a header and no records, holds LMDB's
# write lock, so the keyed write waits inside its worker.

# the worker holding the established connection to $port, from /proc
sub conn_owner {
    my ($node, $port) = @_;
    my %inode;
    for my $f ('/proc/net/tcp', '/proc/net/tcp6') {
        open my $fh, '<', $f or next;
        while (<$fh>) {
            my @c = split;
            # local address:port, state 01 (ESTABLISHED), inode
            next unless @c > 9 && $c[1] =~ /:([0-9A-F]{4})$/
                        && hex($1) == $port && $c[3] eq '01';
            $inode{ $c[9] } = 1;
        }
    }
    for my $pid ($node->worker_pids) {
        opendir my $dh, "/proc/$pid/fd" or next;
        for my $fd (readdir $dh) {
            my $l = readlink "/proc/$pid/fd/$fd" // next;
            return $pid if $l =~ /^socket:\[(\d+)\]$/ && $inode{$1};
        }
    }
    return undef;
}

{
    my $z = InvTest->start(workers => 2);
    my $zp = ipath('Z-1', 'a');
    item_ok($z->req(PUT => $zp, json => { on_hand => 5 }), 201,
            { on_hand => 5 }, 'zombie holder: the item');

    pipe my $rd, my $wr or die "pipe: $!";
    my $loader = fork // die "fork: $!";
    if (!$loader) {
        close $wr;
        open STDIN, '<&', $rd or POSIX::_exit(1);
        open STDOUT, '>', '/dev/null';
        { no warnings 'exec';
          exec 'mdb_load', '-s', 'lock-holder', $z->datadir; }
        POSIX::_exit(1);
    }
    close $rd;
    syswrite $wr, "VERSION=3\nformat=bytevalue\ntype=btree\nHEADER=END\n";

    # it holds the lock once lock.mdb names it as the holder
    my $until = time + 10;
    sleep 0.05 until (write_lock_tid($z->datadir) // 0) == $loader
                     || time > $until;

    my $client = fork // die "fork: $!";
    if (!$client) {
        $z->req(POST => "$zp/adjustments", json => { delta => 1 },
                headers => { idem_key('zombie-key') });
        POSIX::_exit(0);
    }

    my ($victim, $deadline) = (undef, time + 10);
    until ($victim || time > $deadline) {
        sleep 0.1;
        $victim = conn_owner($z, $z->port);
    }
    ok($victim, 'zombie holder: the worker running the keyed write found')
        or diag 'no established connection owned by a worker';

    my $master = $z->master_pid;
    kill 'STOP', $master;
    $z->allow_log(qr/\[alert\] \d+#\d+: worker process \Q$victim\E exited on signal 9$/);
    kill 'KILL', $victim if $victim;
    kill 'KILL', $loader;
    waitpid $loader, 0;
    waitpid $client, 0;

    my $st = '';
    for (1 .. 100) {
        $st = slurp("/proc/$victim/stat") // '';
        last if $st =~ /\)\s+Z\s/;
        sleep 0.05;
    }
    like($st, qr/\)\s+Z\s/, 'zombie holder: the killed worker is a zombie');

    my $again = $z->req(POST => "$zp/adjustments", json => { delta => 1 },
                        headers => { idem_key('zombie-key') });
    kill 'CONT', $master;
    item_ok($again, 200, { on_hand => 6, version => 2 },
            'zombie holder: the retry takes the key over and runs once');
    item_ok($z->req(GET => $zp), 200, { on_hand => 6, version => 2 },
            '... and the item was adjusted once');
    $z->stop;
}

done_testing;
