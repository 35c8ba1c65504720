# inventory_idempotency_ttl: a key is forgotten after its time, then
# remembered again.
use strict;
use warnings;
use Test::More;
use Time::HiRes qw(sleep time);
use InvTest qw(item_ok problem_ok ipath idem_key replay_ok fresh_ok);

my ($r1, $r2);

# ==========================================================================
# inventory_idempotency_ttl: a key is forgotten after its time
# ==========================================================================

my $m = InvTest->start(http_extra => 'inventory_idempotency_ttl 1s;');
$r1 = $m->req(POST => ipath('J-1', 'a') . '/adjustments', json => { delta => 2 },
              headers => { idem_key('short') });
item_ok($r1, 201, { on_hand => 2, version => 1 }, 'ttl 1s: adjustment with a key');
$r2 = $m->req(POST => ipath('J-1', 'a') . '/adjustments', json => { delta => 2 },
              headers => { idem_key('short') });
replay_ok($r1, $r2, '... replayed at once');
sleep 2;
$r2 = $m->req(POST => ipath('J-1', 'a') . '/adjustments', json => { delta => 2 },
              headers => { idem_key('short') });
item_ok($r2, 200, { on_hand => 4, version => 2 }, 'after 2 s the same request runs again');
fresh_ok($r2, '... not a replay');
$r2 = $m->req(POST => ipath('J-1', 'a') . '/adjustments', json => { delta => 5 },
              headers => { idem_key('short') });
problem_ok($r2, 422, 'idempotency-key-reused', '... and the key is remembered again');
$m->stop;

done_testing;
