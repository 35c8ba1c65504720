# The Idempotency-Key itself: malformed keys are 400 and change nothing,
# 1 to 255 visible ASCII characters are accepted and replayed, keys are
# exact (case matters) and survive a restart.
use strict;
use warnings;
use Test::More;
use InvTest qw(item_ok problem_ok items_snapshot ipath idem_key unchanged
               replay_ok fresh_ok);

my $n = InvTest->start(workers => 2);

my ($r1, $r2);
item_ok($n->put_item('I-1', 'a', { on_hand => 10 }), 201, {},
        'setup: I-1 at a, 10');
item_ok($n->put_item('I-3', 'c', { on_hand => 3 }), 201, {},
        'setup: I-3 at c, 3');

# ==========================================================================
# the key itself
# ==========================================================================

my $before = items_snapshot($n, ipath('I-7', 'a'));
for my $c ([ '', 'empty' ], [ 'k' x 256, '256 characters' ], [ 'a b', 'with a space' ],
           [ "caf\xc3\xa9", 'non-ASCII' ], [ "a\tb", 'with a tab' ], [ "a\x7fb", 'with DEL' ])
{
    my ($key, $what) = @$c;
    problem_ok($n->req(PUT => ipath('I-7', 'a'), json => { on_hand => 1 }, raw => 1,
                       headers => { 'Idempotency-Key' => $key }),
               400, 'invalid-request', "Idempotency-Key $what: 400", field => 'Idempotency-Key');
}
problem_ok($n->transfer({ sku => 'I-3', from => 'c', to => 'd', quantity => 1 },
                headers => { idem_key('k' x 256) }),
           400, 'invalid-request', 'a bad key on a transfer: 400', field => 'Idempotency-Key');
unchanged($n, $before, 'bad keys changed nothing');
item_ok($n->get(ipath('I-3', 'c')), 200, { on_hand => 3 }, 'the transfer did not run');

my $visible = join '', map { chr } 0x21 .. 0x7e;
for my $c ([ 'k' x 255, '255 characters' ], [ $visible, 'every visible ASCII character' ],
           [ 'x', 'one character' ])
{
    my ($key, $what) = @$c;
    my $p = ipath('I-7', substr(length($key) . 'k', 0, 10));
    $r1 = $n->req(PUT => $p, json => { on_hand => 1 }, headers => { idem_key($key) });
    item_ok($r1, 201, { version => 1 }, "key of $what: accepted");
    $r2 = $n->req(PUT => $p, json => { on_hand => 1 }, headers => { idem_key($key) });
    replay_ok($r1, $r2, "... and replayed");
}

# keys are exact: case matters
$r1 = $n->adjust('I-1', 'a', { delta => 1 }, headers => { idem_key('Case-Key') });
$r2 = $n->adjust('I-1', 'a', { delta => 1 }, headers => { idem_key('case-key') });
item_ok($r2, 200, { version => $r1->{json}{version} + 1 }, 'keys differing in case are different keys');
fresh_ok($r2, '... not a replay');

# ==========================================================================
# keys survive a restart
# ==========================================================================

$r1 = $n->adjust('I-1', 'a', { delta => 2 }, headers => { idem_key('durable') });
item_ok($r1, 200, {}, 'adjustment with a key before the restart');
$n->restart;
$before = items_snapshot($n, ipath('I-1', 'a'));
$r2 = $n->adjust('I-1', 'a', { delta => 2 }, headers => { idem_key('durable') });
replay_ok($r1, $r2, 'after a restart the key still replays');
unchanged($n, $before, '... and changes nothing');

$n->stop;
done_testing;
