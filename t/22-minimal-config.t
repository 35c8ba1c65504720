# The minimal configuration the README shows, verbatim except for the
# absolute paths and the port.  The harness adds only -p, -e (startup error
# log) and -g "pid ...;" on the command line; the access log and temp paths
# stay at the distribution's defaults (/var/log/nginx, /var/lib/nginx).
use strict;
use warnings;
use Test::More;
use InvTest qw(item_ok);

my $conf = <<'EOF';
load_module %%MODULE%%;
worker_processes 2;
events { worker_connections 1024; }
http {
    inventory_store %%DATADIR%%;
    server {
        listen 127.0.0.1:%%PORT%%;
        location /v1/ { inventory; }
        location = /metrics { inventory_metrics; }
    }
}
EOF

my $n = InvTest->start(conf => $conf);

ok(-d $n->datadir, 'the store directory was created') or diag $n->datadir;
is(scalar(my @w = $n->worker_pids), 2, 'two workers are running');

item_ok($n->req(PUT => '/v1/inventory/A-1/store-7',
                json => { on_hand => 120, min_level => 10 }),
        201, { sku => 'A-1', location => 'store-7', on_hand => 120,
               min_level => 10, low_stock => 0, version => 1 },
        'PUT creates an item');
item_ok($n->req(GET => '/v1/inventory/A-1/store-7'), 200,
        { on_hand => 120, version => 1 }, 'GET reads it back');

my $r = $n->req(GET => '/metrics');
is($r->{status}, 200, '/metrics is 200');
like($r->{content_type}, qr{^text/plain}i, '/metrics is text/plain');
like($r->{body}, qr/^inventory_/m, '/metrics has inventory_ metrics')
    or diag InvTest::show($r);

$n->restart;
item_ok($n->req(GET => '/v1/inventory/A-1/store-7'), 200,
        { on_hand => 120, version => 1 }, 'data survives a restart');

$n->stop;
done_testing;
