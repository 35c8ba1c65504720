# Reservations on the item route: create (defaults, accepted boundaries,
# exactly what is available), every error path changing nothing, If-Match,
# reserved stock protecting on_hand; then GET, commit and release of those
# reservations, unknown and malformed ids, methods.
use strict;
use warnings;
use Test::More;
use Time::HiRes qw(sleep time);
use InvTest qw(item_ok problem_ok reservation_ok items_snapshot ts_ms ipath
               counts_ok unchanged);

my $n = InvTest->start;

# ==========================================================================
# item-route reservation
# ==========================================================================

item_ok($n->put_item('R-1', 's1', { on_hand => 10 }), 201, { version => 1 },
        'setup: R-1 at s1, on_hand 10');

my $t0 = time;
my $r = $n->reserve('R-1', 's1', { quantity => 3, ttl_seconds => 600,
                               reference => 'order-1' });
reservation_ok($r, 201, { state => 'active', reference => 'order-1', ttl => 600,
                          lines => [[ 'R-1', 's1', 3 ]] },
               'item-route reservation: 201 active, one line, reference, ttl 600');
my $res1 = $r->{json} // {};
my $id1 = $res1->{id} // 'r_0000000000000000000000';
ok(abs(ts_ms($res1->{created_at} // '') / 1000 - $t0) < 5,
   'created_at is the current time') or diag InvTest::show($r);

counts_ok($n, 'R-1', 's1', 10, 3, 'reserved 3, available 7, on_hand unchanged',
          version => 2);

$r = $n->get("/v1/reservations/$id1");
reservation_ok($r, 200, { id => $id1, state => 'active' },
               'GET /v1/reservations/{id}: 200');
is_deeply($r->{json}, $res1, 'GET returns the reservation as created')
    or diag InvTest::show($r);

$r = $n->req(HEAD => "/v1/reservations/$id1");
is($r->{status}, 200, 'HEAD reservation is 200');
is($r->{body}, '', 'HEAD reservation has no body');

# defaults: inventory_reservation_ttl 15m, reference null
$r = $n->reserve('R-1', 's1', { quantity => 1 });
reservation_ok($r, 201, { state => 'active', reference => undef, ttl => 900,
                          lines => [[ 'R-1', 's1', 1 ]] },
               'no ttl_seconds: 15 minutes (the default); no reference: null');
my $id2 = ($r->{json} // {})->{id} // 'r_0000000000000000000000';
isnt($id2, $id1, 'each reservation has its own id');

# boundaries that are accepted
$r = $n->reserve('R-1', 's1', { quantity => 1, ttl_seconds => 86400,
                            reference => 'x' x 255 });
reservation_ok($r, 201, { ttl => 86400, reference => 'x' x 255 },
               'ttl_seconds 86400 and a 255-character reference accepted');
my $id3 = ($r->{json} // {})->{id} // 'r_0000000000000000000000';
# a reference is 1 to 255 visible ASCII characters (the ledger's rule)
for my $bad ('x' x 256, "caf\x{e9}", 'two words', '') {
    problem_ok($n->reserve('R-1', 's1', { quantity => 1, reference => $bad }),
               400, 'invalid-request',
               'reference ' . (length $bad > 20 ? 'of 256 characters'
                                                : "'$bad'") . ': 400');
}
$r = $n->reserve('R-1', 's1', { quantity => 1,
                                reference => 'https://erp.example/so/991?l=2' });
reservation_ok($r, 201, { reference => 'https://erp.example/so/991?l=2' },
               'a URL as the reference');
my $id4 = ($r->{json} // {})->{id} // 'r_0000000000000000000000';
counts_ok($n, 'R-1', 's1', 10, 6, 'four reservations hold 3+1+1+1');

# exactly what is available, then nothing more
$r = $n->reserve('R-1', 's1', { quantity => 4 });
reservation_ok($r, 201, { lines => [[ 'R-1', 's1', 4 ]] },
               'reserving exactly the available quantity is allowed');
my $id5 = ($r->{json} // {})->{id} // 'r_0000000000000000000000';
counts_ok($n, 'R-1', 's1', 10, 10, 'available is 0');

my $before = items_snapshot($n, ipath('R-1', 's1'), ipath('R-1', 's2'),
                            ipath('R-2', 's1'));
problem_ok($n->reserve('R-1', 's1', { quantity => 1 }), 409, 'insufficient-stock',
           'reserving 1 with 0 available: 409 insufficient-stock, available 0',
           available => 0);
unchanged($n, $before, '... and changed nothing');
is($n->release($id5)->{status}, 200, 'release the 4');
$before = items_snapshot($n, ipath('R-1', 's1'), ipath('R-1', 's2'),
                         ipath('R-2', 's1'));
problem_ok($n->reserve('R-1', 's1', { quantity => 5 }), 409, 'insufficient-stock',
           'Q > available: 409 insufficient-stock with available 4',
           available => 4);
problem_ok($n->reserve('R-1', 's1', { quantity => 1000000000 }), 409,
           'insufficient-stock', 'Q = 10^9 (valid, too many): 409', available => 4);
problem_ok($n->reserve('R-1', 's2', { quantity => 1 }), 404, 'not-found',
           'unknown location of a known SKU: 404');
problem_ok($n->reserve('R-2', 's1', { quantity => 1 }), 404, 'not-found',
           'unknown SKU: 404');
problem_ok($n->get(ipath('R-1', 's2')), 404, 'not-found',
           '... and the 404 did not create the item');

# --- validation ------------------------------------------------------------
for my $c ([ { }, 'quantity', 'missing quantity' ],
           [ { quantity => 0 }, 'quantity', 'quantity 0' ],
           [ { quantity => -1 }, 'quantity', 'quantity -1' ],
           [ { quantity => 1000000001 }, 'quantity', 'quantity 10^9+1' ],
           [ { quantity => '2' }, 'quantity', 'quantity "2"' ],
           [ { quantity => JSON::PP::true }, 'quantity', 'quantity true' ],
           [ { quantity => undef }, 'quantity', 'quantity null' ],
           [ { quantity => 1, ttl_seconds => 0 }, 'ttl_seconds', 'ttl_seconds 0' ],
           [ { quantity => 1, ttl_seconds => 86401 }, 'ttl_seconds', 'ttl_seconds 86401' ],
           [ { quantity => 1, ttl_seconds => -5 }, 'ttl_seconds', 'ttl_seconds -5' ],
           [ { quantity => 1, ttl_seconds => '60' }, 'ttl_seconds', 'ttl_seconds "60"' ],
           [ { quantity => 1, reference => 'x' x 257 }, 'reference', 'reference of 257 bytes' ],
           [ { quantity => 1, reference => 42 }, 'reference', 'reference 42' ],
           [ { quantity => 1, reference => [] }, 'reference', 'reference []' ],
           [ { quantity => 1, sku => 'R-1' }, 'sku', 'unknown member sku' ],
           [ { quantity => 1, lines => [] }, 'lines', 'unknown member lines' ])
{
    my ($body, $field, $what) = @$c;
    problem_ok($n->reserve('R-1', 's1', $body), 400, 'invalid-request',
               "item-route reservation, $what: 400 field $field", field => $field);
}
for my $c ([ '{"quantity":1.5}', 'quantity', 'quantity 1.5' ],
           [ '{"quantity":1e1}', 'quantity', 'quantity 1e1' ],
           [ '{"quantity":1,"ttl_seconds":1.0}', 'ttl_seconds', 'ttl_seconds 1.0' ],
           [ '{"quantity":1,"quantity":2}', 'quantity', 'duplicate member' ],
           [ '{"quantity":1', 'body', 'truncated JSON' ],
           [ '[{"quantity":1}]', 'body', 'an array' ],
           [ '', 'body', 'an empty body' ])
{
    my ($body, $field, $what) = @$c;
    problem_ok($n->req(POST => ipath('R-1', 's1') . '/reservations', body => $body,
                       headers => { 'Content-Type' => 'application/json' }),
               400, 'invalid-request', "item-route reservation, $what: 400 field $field",
               field => $field);
}
{
    my $r2 = $n->reserve('R-1', 's1', { quantity => 0, ttl_seconds => 0, x => 1 });
    problem_ok($r2, 400, 'invalid-request', 'several problems in one body: 400');
    my %f = map { $_->{field} => 1 } @{ ($r2->{json} // {})->{errors} // [] };
    ok($f{quantity} && $f{ttl_seconds} && $f{x},
       '... listing quantity, ttl_seconds and x') or diag InvTest::show($r2);
}
problem_ok($n->req(POST => ipath('R-1', 's1') . '/reservations',
                   body => '{"quantity":1}', headers => { 'Content-Type' => 'text/plain' }),
           415, 'unsupported-media-type', 'text/plain body: 415');
problem_ok($n->req(POST => ipath('R-1', 's1') . '/reservations', body => '{"quantity":1}'),
           415, 'unsupported-media-type', 'no Content-Type: 415');
problem_ok($n->req(POST => '/v1/inventory/bad%20sku/s1/reservations', json => { quantity => 1 }),
           400, 'invalid-request', 'bad sku in the path: 400 field sku', field => 'sku');
problem_ok($n->req(POST => '/v1/inventory/R-1/' . ('l' x 65) . '/reservations',
                   json => { quantity => 1 }),
           400, 'invalid-request', '65-character location: 400 field location',
           field => 'location');
problem_ok($n->get(ipath('R-1', 's1') . '/reservations'), 405, 'method-not-allowed',
           'GET on the item reservations route: 405, Allow POST', allow => ['POST']);

unchanged($n, $before, 'no failed item-route reservation changed anything');

# --- If-Match on item-route reservations ------------------------------------
my $v = $n->get(ipath('R-1', 's1'))->{json}{version};
$before = items_snapshot($n, ipath('R-1', 's1'));
$r = $n->reserve('R-1', 's1', { quantity => 1 }, headers => { 'If-Match' => '"' . ($v - 1) . '"' });
problem_ok($r, 412, 'version-mismatch', 'If-Match with an old version: 412');
is(($r->{json} // {})->{current_version}, $v, '... with current_version')
    or diag InvTest::show($r);
problem_ok($n->reserve('R-1', 's1', { quantity => 1 }, headers => { 'If-Match' => qq{W/"$v"} }),
           412, 'version-mismatch', 'If-Match with a weak tag never matches: 412');
problem_ok($n->reserve('R-1', 's1', { quantity => 1 }, headers => { 'If-Match' => '"1", "2"' }),
           412, 'version-mismatch', 'If-Match list without the version: 412');
problem_ok($n->reserve('R-1', 's1', { quantity => 1 }, headers => { 'If-Match' => 'nonsense' }),
           400, 'invalid-request', 'malformed If-Match: 400', field => 'If-Match');
problem_ok($n->reserve('R-1', 's2', { quantity => 1 }, headers => { 'If-Match' => '*' }),
           412, 'version-mismatch', 'If-Match * on an unknown item: 412');
problem_ok($n->reserve('R-1', 's1', { quantity => 99 }, headers => { 'If-Match' => qq{"$v"} }),
           409, 'insufficient-stock', 'matching If-Match but too many: 409', available => 4);
unchanged($n, $before, 'the If-Match failures changed nothing');

$r = $n->reserve('R-1', 's1', { quantity => 1 }, headers => { 'If-Match' => qq{"$v"} });
reservation_ok($r, 201, { state => 'active' }, 'matching If-Match: 201');
my $id6 = ($r->{json} // {})->{id} // 'r_0000000000000000000000';
$v++;
$r = $n->reserve('R-1', 's1', { quantity => 1 }, headers => { 'If-Match' => qq{"1", "$v", "99"} });
reservation_ok($r, 201, { state => 'active' }, 'If-Match list naming the version: 201');
my $id7 = ($r->{json} // {})->{id} // 'r_0000000000000000000000';
$r = $n->reserve('R-1', 's1', { quantity => 1 }, headers => { 'If-Match' => '*' });
reservation_ok($r, 201, { state => 'active' }, 'If-Match * on an existing item: 201');
my $id8 = ($r->{json} // {})->{id} // 'r_0000000000000000000000';
counts_ok($n, 'R-1', 's1', 10, 9, 'three more reservations of 1');

# --- reserved stock protects on_hand ------------------------------------------
$before = items_snapshot($n, ipath('R-1', 's1'));
problem_ok($n->put_item('R-1', 's1', { on_hand => 8 }), 409, 'insufficient-stock',
           'PUT on_hand below reserved: 409');
problem_ok($n->req(POST => ipath('R-1', 's1') . '/adjustments', json => { delta => -2 }),
           409, 'insufficient-stock', 'adjustment below reserved: 409', available => 1);
unchanged($n, $before, '... and nothing changed');

# ==========================================================================
# GET / commit / release: unknown and malformed ids, methods
# ==========================================================================

for my $bad ('r_AAAAAAAAAAAAAAAAAAAAAA', 'r_xxx', 'r_' . ('A' x 23), 'x_' . ('A' x 22),
             'r_AAAAAAAAAAAAAAAAAAAA-_', substr($id1, 0, 23) . '%2A')
{
    problem_ok($n->get("/v1/reservations/$bad"), 404, 'not-found', "GET reservation '$bad': 404");
    problem_ok($n->commit($bad), 404, 'not-found', "commit '$bad': 404");
    problem_ok($n->release($bad), 404, 'not-found', "release '$bad': 404");
}
problem_ok($n->get('/v1/reservations/'), 404, 'not-found', 'GET /v1/reservations/: 404');
problem_ok($n->get("/v1/reservations/$id1/nope"), 404, 'not-found', 'unknown sub-route: 404');
for my $c ([ GET => '/v1/reservations', ['POST'] ],
           [ PUT => "/v1/reservations/$id1", [qw(GET HEAD)] ],
           [ DELETE => "/v1/reservations/$id1", [qw(GET HEAD)] ],
           [ POST => "/v1/reservations/$id1", [qw(GET HEAD)] ],
           [ GET => "/v1/reservations/$id1/commit", ['POST'] ],
           [ PUT => "/v1/reservations/$id1/release", ['POST'] ])
{
    my ($m, $p, $allow) = @$c;
    problem_ok($n->req($m => $p), 405, 'method-not-allowed', "$m $p: 405", allow => $allow);
}
reservation_ok($n->get("/v1/reservations/$id1"), 200, { state => 'active' },
               'the reservation is still active');

# --- commit / release bodies ---------------------------------------------------
$before = items_snapshot($n, ipath('R-1', 's1'));
problem_ok($n->commit($id1, json => { x => 1 }), 400, 'invalid-request',
           'commit with a member: 400', field => 'x');
problem_ok($n->release($id1, json => { note => 'r' }), 400, 'invalid-request',
           'release with an unknown member: 400', field => 'note');
problem_ok($n->release($id1, json => { reference => 'a b' }), 400,
           'invalid-request', 'release with a bad reference: 400',
           field => 'reference');
problem_ok($n->commit($id1, body => '[]', headers => { 'Content-Type' => 'application/json' }),
           400, 'invalid-request', 'commit with a JSON array: 400', field => 'body');
problem_ok($n->release($id1, body => '{', headers => { 'Content-Type' => 'application/json' }),
           400, 'invalid-request', 'release with broken JSON: 400', field => 'body');
problem_ok($n->commit($id1, body => '{}', headers => { 'Content-Type' => 'text/plain' }),
           415, 'unsupported-media-type', 'commit with a text/plain body: 415');
unchanged($n, $before, 'failed commits and releases changed nothing');
reservation_ok($n->get("/v1/reservations/$id1"), 200, { state => 'active' },
               '... the reservation is still active');

# --- commit ---------------------------------------------------------------------
$r = $n->commit($id1);
reservation_ok($r, 200, { id => $id1, state => 'committed', reference => 'order-1',
                          lines => [[ 'R-1', 's1', 3 ]] },
               'commit without a body: 200 committed, with ended_at');
is_deeply([ @{ $r->{json} // {} }{qw(created_at expires_at)} ],
          [ @{$res1}{qw(created_at expires_at)} ], '... created_at and expires_at kept');
counts_ok($n, 'R-1', 's1', 7, 6, 'commit: on_hand and reserved both drop by 3');
my $committed = $r->{json};
reservation_ok($n->get("/v1/reservations/$id1"), 200, { state => 'committed' },
               'GET shows it committed');
is_deeply($n->get("/v1/reservations/$id1")->{json}, $committed, '... the same body as the commit');

$before = items_snapshot($n, ipath('R-1', 's1'));
for my $c (qw(commit release)) {
    $r = $n->$c($id1);
    problem_ok($r, 409, 'reservation-not-active', "$c after commit: 409");
    is(($r->{json} // {})->{state}, 'committed', '... with state committed')
        or diag InvTest::show($r);
}
unchanged($n, $before, '... and changed nothing');

$r = $n->commit($id2, json => {});
reservation_ok($r, 200, { id => $id2, state => 'committed' }, 'commit with {}: 200');
counts_ok($n, 'R-1', 's1', 6, 5, 'on_hand 6, reserved 5');

# --- release ----------------------------------------------------------------------
$r = $n->release($id3);
reservation_ok($r, 200, { id => $id3, state => 'released', reference => 'x' x 255 },
               'release without a body: 200 released');
counts_ok($n, 'R-1', 's1', 6, 4, 'release: reserved drops, on_hand stays');
$r = $n->release($id4, json => {});
reservation_ok($r, 200, { id => $id4, state => 'released' }, 'release with {}: 200');
counts_ok($n, 'R-1', 's1', 6, 3, 'reserved 3');
$before = items_snapshot($n, ipath('R-1', 's1'));
for my $c (qw(commit release)) {
    $r = $n->$c($id3);
    problem_ok($r, 409, 'reservation-not-active', "$c after release: 409");
    is(($r->{json} // {})->{state}, 'released', '... with state released')
        or diag InvTest::show($r);
}
unchanged($n, $before, '... and changed nothing');
reservation_ok($n->get("/v1/reservations/$id5"), 200, { state => 'released' },
               'the earlier release reads back');
is($n->release($_)->{status}, 200, 'cleanup: release') for $id6, $id7, $id8;
counts_ok($n, 'R-1', 's1', 6, 0, 'R-1 at s1: everything released');

$n->stop;
done_testing;
