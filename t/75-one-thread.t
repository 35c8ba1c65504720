# The group commit on a thread pool of one thread.  Each worker runs two
# tasks on the pool: one that commits (it waits for LMDB's write lock) and
# one that waits for the worker's writes to be settled by any worker's
# commit.  With a single thread the waiting task must give the thread up
# to its worker's committing task, or writes would wait forever (the
# thread sleeping in the one, the other queued behind it).  1 worker, then
# 2, on `thread_pool one threads=1`; 16 clients of 40 adjustments each, on
# new connections (so that both workers take writes): every write answered
# 200 within 10 s, and the item counts every one.
use strict;
use warnings;
use Test::More;
use Time::HiRes qw(time);
use InvTest qw(parallel verify_ok decode_json);

my $CLIENTS = 16;
my $WRITES = $ENV{INVENTORY_PRELOAD} ? 20 : 40;

my $conf = <<'EOF';
load_module %%MODULE%%;
worker_processes %%WORKERS%%;
error_log %%DIR%%/error.log info;
thread_pool one threads=1 max_queue=1024;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path %%DIR%%/body;
    inventory_store %%DATADIR%%;
    inventory_thread_pool one;
    server {
        listen 127.0.0.1:%%PORT%%;
        location /v1/ { inventory; add_header X-Worker $pid always; }
        location = /metrics { inventory_metrics; }
    }
}
EOF

for my $workers (1, 2) {
    note "$workers worker(s)";
    my $n = InvTest->start(conf => $conf =~ s/%%WORKERS%%/$workers/r);

    is($n->req(PUT => '/v1/inventory/T-1/one', json => { on_hand => 0 })
           ->{status}, 201, 'the item is created');

    my $t0 = time;
    my @out = parallel($CLIENTS, sub {
        my ($i) = @_;
        my ($ok, %w, @bad) = (0);
        for my $k (1 .. $WRITES) {
            my $r = $n->req(POST => '/v1/inventory/T-1/one/adjustments',
                            json => { delta => 1, reason => "c$i-$k" },
                            timeout => 10);
            if ($r->{status} == 200) {
                $ok++;
                $w{ $r->{headers}{'x-worker'} // '?' }++;
            } else {
                push @bad, "$r->{status} " . ($r->{body} // '');
            }
        }
        splice @bad, 3;
        return join "\t", $ok, join(',', sort keys %w), @bad;
    });
    my $took = time - $t0;

    my ($acked, %workers) = (0);
    for my $o (@out) {
        my ($ok, $w, @bad) = split /\t/, $o;
        $acked += $ok // 0;
        $workers{$_} = 1 for split /,/, $w // '';
        diag "a client: $o" if @bad || $o =~ /^DIED/;
    }
    is($acked, $CLIENTS * $WRITES, 'every write answered 200 within 10 s '
       . sprintf('(%d writes in %.1f s)', $acked, $took));
    ok(keys %workers >= $workers, "$workers worker(s) took writes: "
       . join(' ', sort keys %workers));

    my $item = $n->req(GET => '/v1/inventory/T-1/one');
    is(decode_json($item->{body})->{on_hand}, $acked,
       'the item counts every acknowledged write');

    $n->stop;
    verify_ok($n->datadir, undef, "the store after the load");
}

done_testing();
