# Debug logging (nginx's debug_http level, Debian's nginx is built with
# --with-debug): the decisions an operator traces are in the log: the route
# of a request, each group commit's size and result, a feed waiter woken,
# the expiry lease taken and a sweep.
use strict;
use warnings;
use Test::More;
use Time::HiRes qw(sleep time);
use InvTest qw(async_req async_wait);

plan skip_all => 'nginx is built without --with-debug'
    unless `$InvTest::NGINX -V 2>&1` =~ /--with-debug/;

# the main error log at debug_http: group commits and the expiry sweep
# belong to the worker, not to one request
my $n = InvTest->start(log_level => 'debug_http');
my $log = $n->dir . '/error.log';

is($n->put_item('D-1', 's1', { on_hand => 5 })->{status}, 201, 'PUT');
is($n->get('/v1/inventory/D-1/s1')->{status}, 200, 'GET');
is($n->get('/v1/nowhere')->{status}, 404, 'no such route');

# a waiter of the feed, woken by a write
my $seq = $n->get('/v1/events?limit=1000')->{json}{last_seq};
my $w = async_req($n, GET => "/v1/events?after=$seq&wait=10");
sleep 0.3;
is($n->adjust('D-1', 's1', { delta => 1 })->{status}, 200, 'a write');
async_wait([$w], 10);
is($w->{res}{status}, 200, 'the waiter is answered');

# a reservation that expires
is($n->reserve('D-1', 's1', { quantity => 1, ttl_seconds => 1 })->{status},
   201, 'a reservation of 1 s');

my $text = '';
for (1 .. 100) {
    open my $f, '<', $log or die "$log: $!";
    $text = do { local $/; <$f> };
    last if $text =~ /inventory expiry: [1-9]\d* due/;
    sleep 0.1;
}

like($text, qr{inventory route: "/v1/inventory/D-1/s1" is item},
     'the route of a request');
like($text, qr{inventory route: "/v1/nowhere" is unknown},
     'a path no route serves');
like($text, qr{inventory commit: \d+ commands \(\d+ of the zone\), \d+ events, rc: 0},
     'a group commit, its size (slots of the shared zone) and result');
like($text, qr{inventory: waking a waiter after $seq, now \d+},
     'a feed waiter woken');
like($text, qr{inventory: lease taken over from pid \d+},
     'the expiry lease taken');
like($text, qr{inventory expiry: [1-9]\d* due, purge: \d},
     'a sweep of due reservations');

$n->stop;
done_testing();
