# Item history (GET /v1/inventory/{sku}/{location}/events): content of
# every event type, paging edges, validation; time travel (?as_of=): at,
# before and between events, events sharing a millisecond, before the item
# existed, sub-millisecond and second precision, timezone offsets, bad
# timestamps, across a restart.
use strict;
use warnings;
use Test::More;
use POSIX ();
use Time::HiRes qw(time sleep);
use InvTest qw(item_ok problem_ok json_type encode_json decode_json
               feed_pages replay_events ts_ms);

my $n = InvTest->start(workers => 2);

my $SKU = 'H-1';
my $LOC = 'store-1';
my $P = "/v1/inventory/$SKU/$LOC";

sub hist { $n->req(GET => "$P/events" . (defined $_[0] ? "?$_[0]" : '')) }

# rfc3339($ms, $offset_minutes, $frac): the instant $ms written with the
# given UTC offset ('Z' when undef); $frac replaces the 3-digit fraction
sub rfc3339 {
    my ($ms, $off, $frac) = @_;
    my $sec = POSIX::floor($ms / 1000);
    my $f = $frac // sprintf('.%03d', $ms - $sec * 1000);
    my $s = POSIX::strftime('%Y-%m-%dT%H:%M:%S', gmtime($sec + ($off // 0) * 60));
    return "$s${f}Z" unless defined $off;
    my $a = abs $off;
    return sprintf '%s%s%s%02d:%02d', $s, $f, $off < 0 ? '-' : '+',
        int($a / 60), $a % 60;
}

# percent-encode what a query value must not carry raw
sub qenc { my $s = shift; $s =~ s/([^A-Za-z0-9._~:-])/sprintf '%%%02X', ord $1/ge; $s }

sub as_of { $n->req(GET => "$P?as_of=" . qenc($_[0]), %{ $_[1] // {} }) }

# page_ok($r, \@versions, $next, $name)
sub page_ok {
    my ($r, $vers, $next, $name) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    my @p;
    push @p, "status $r->{status}" unless $r->{status} == 200;
    my $j = $r->{json};
    if (ref $j ne 'HASH' || ref $j->{events} ne 'ARRAY') {
        push @p, 'not {"events":[...]}';
    } else {
        my @x = grep { !/^(?:events|next_after_version)\z/ } sort keys %$j;
        push @p, "unexpected members @x" if @x;
        push @p, 'no next_after_version member'
            unless exists $j->{next_after_version};
        my @v = map { $_->{version} } @{ $j->{events} };
        push @p, "versions (@v), expected (@$vers)" if "@v" ne "@$vers";
        my $g = $j->{next_after_version};
        if (defined $next) {
            push @p, 'next_after_version is ' . ($g // 'null')
                     . ", expected $next"
                unless json_type($g) eq 'number' && $g == $next;
        } else {
            push @p, "next_after_version is $g, expected null" if defined $g;
        }
    }
    ok(!@p, $name) or diag join("\n", map { "  - $_" } @p) . "\n"
                           . InvTest::show($r);
}

# --- build a history with every kind of event, 30 ms apart ------------------
sub step { my $r = shift; sleep 0.03; $r }
my @w;
push @w, step($n->req(PUT => $P, json => { on_hand => 20, min_level => 5,
                                           reason => 'count' }));
push @w, step($n->req(POST => "$P/adjustments",
                      json => { delta => 10, reason => 'delivery' }));
my $res1 = step($n->req(POST => "$P/reservations",
                        json => { quantity => 8, ttl_seconds => 600 }));
push @w, step($n->req(POST => "$P/adjustments", json => { delta => -15 }));
my $res2 = step($n->req(POST => "$P/reservations",
                        json => { quantity => 4, ttl_seconds => 600 }));
my ($id1, $id2) = map { ref $_->{json} eq 'HASH' ? $_->{json}{id} // '' : '' }
                  $res1, $res2;
push @w, step($n->req(POST => "/v1/reservations/$id1/commit"));
push @w, step($n->req(POST => "/v1/reservations/$id2/release"));
push @w, step($n->req(POST => '/v1/transfers',
                      json => { sku => $SKU, from => $LOC, to => 'store-2',
                                quantity => 2, reason => 'move' }));
push @w, step($n->req(PUT => $P, json => { on_hand => 3, min_level => 2 }));
push @w, step($n->req(POST => "$P/adjustments", json => { delta => -2 }));
is($res1->{status} . $res2->{status}, '201201', 'setup: two reservations');
ok(!grep({ $_->{status} != 200 && $_->{status} != 201 } @w),
   'setup: every write succeeded')
    or diag join "\n", map { InvTest::show($_) } grep { $_->{status} >= 300 } @w;

my @TYPES = qw(StockCounted StockAdjusted StockReserved StockAdjusted
               StockReserved LowStockDetected ReservationCommitted
               ReservationReleased StockTransferredOut StockCounted
               StockAdjusted LowStockDetected);
my $V = @TYPES;
my $cur = $n->req(GET => $P);
item_ok($cur, 200, { on_hand => 1, reserved => 0, min_level => 2,
                     low_stock => 1, version => $V }, "the item, version $V");

# --- history content ---------------------------------------------------------------
my $r = hist('limit=1000');
page_ok($r, [1 .. $V], undef, "the whole history: versions 1..$V, next null");
my $ev = ref $r->{json} eq 'HASH' ? $r->{json}{events} // [] : [];
is(join(' ', map { $_->{type} } @$ev), "@TYPES", 'event types in order');
my %want = (
    1 => { on_hand => 20, min_level => 5, reason => 'count' },
    2 => { delta => 10, reason => 'delivery' },
    3 => { reservation_id => $id1, quantity => 8 },
    4 => { delta => -15 },
    5 => { reservation_id => $id2, quantity => 4 },
    6 => { available => 3, min_level => 5 },
    7 => { reservation_id => $id1, quantity => 8 },
    8 => { reservation_id => $id2, quantity => 4 },
    9 => { quantity => 2, to => 'store-2', reason => 'move' },
    10 => { on_hand => 3, min_level => 2 },
    11 => { delta => -2 },
    12 => { available => 1, min_level => 2 },
);
for my $e (@$ev) {
    my $w = $want{ $e->{version} } or next;
    my %got = map { ($_ => $e->{data}{$_}) } grep { exists $e->{data}{$_} }
              keys %$w;
    is_deeply(\%got, $w, "v$e->{version} $e->{type}: data holds "
                         . encode_json($w))
        or diag encode_json($e);
    is("$e->{sku}/$e->{location}", "$SKU/$LOC", "v$e->{version}: sku, location");
}
my ($st, $rp) = replay_events($ev, $SKU, $LOC);
ok(!@$rp, 'the history replays cleanly') or diag join "\n", @$rp;
is_deeply([ @$st{qw(on_hand reserved min_level version updated_at)} ],
          [ @{ $cur->{json} }{qw(on_hand reserved min_level version updated_at)} ],
          'its replay is the item');
my ($feed) = feed_pages($n, 0, 1000);
is_deeply($ev, [ grep { $_->{sku} eq $SKU && $_->{location} eq $LOC } @$feed ],
          "the history is the feed's events of the item, member for member");
is(scalar(grep { $ev->[$_]{seq} <= $ev->[$_ - 1]{seq} } 1 .. $#$ev), 0,
   'seq grows along the history');
$r = $n->req(GET => '/v1/inventory/H-1/store-2/events');
page_ok($r, [1], undef, 'the transfer target has one event');
is_deeply(ref $r->{json} eq 'HASH' ? [ map { [ $_->{type}, $_->{data}{from},
                                               $_->{data}{quantity} ] }
                                       @{ $r->{json}{events} } ] : [],
          [ [ 'StockTransferredIn', $LOC, 2 ] ],
          '... StockTransferredIn with from and quantity');

# --- paging edges ---------------------------------------------------------------------
page_ok(hist('limit=5'), [1 .. 5], 5, 'limit 5: versions 1..5, next 5');
page_ok(hist('after_version=5&limit=5'), [6 .. 10], 10, '... then 6..10, next 10');
page_ok(hist('after_version=10&limit=5'), [11, 12], undef,
        '... then a shorter last page 11..12, next null');
page_ok(hist('limit=4'), [1 .. 4], 4, 'limit 4: 1..4, next 4');
page_ok(hist('after_version=8&limit=4'), [9 .. 12], undef,
        'a last page exactly the limit: next null');
page_ok(hist("limit=$V"), [1 .. $V], undef, "limit $V (the whole history): next null");
page_ok(hist('limit=' . ($V - 1)), [1 .. $V - 1], $V - 1,
        'limit one short of the history: next ' . ($V - 1));
page_ok(hist('after_version=' . ($V - 1)), [$V], undef, 'after the last but one');
page_ok(hist("after_version=$V"), [], undef,
        'after the last version: empty, next null');
page_ok(hist('after_version=1000'), [], undef, 'after beyond the last: empty, next null');
page_ok(hist('after_version=0&limit=1'), [1], 1, 'after_version=0, limit 1');
page_ok(hist('after_version=9007199254740991'), [], undef,
        'after_version=2^53-1: empty, next null');
$r = $n->req(HEAD => "$P/events");
is($r->{status}, 200, 'HEAD on the history is 200');
is($r->{body}, '', '... without a body');

for my $c (['limit=0', 'limit'], ['limit=1001', 'limit'], ['limit=x', 'limit'],
           ['limit=-1', 'limit'], ['limit=1.0', 'limit'],
           ['after_version=-1', 'after_version'],
           ['after_version=x', 'after_version'],
           ['after_version=1.5', 'after_version'],
           ['after_version=', 'after_version'])
{
    problem_ok(hist($c->[0]), 400, 'invalid-request', "history ?$c->[0] is 400",
               field => $c->[1]);
}
problem_ok($n->req(GET => '/v1/inventory/H-1/nowhere/events'), 404, 'not-found',
           'history of an unknown location of a known sku is 404');
problem_ok($n->req(GET => '/v1/inventory/NOPE/store-1/events'), 404, 'not-found',
           'history of an unknown item is 404');
problem_ok($n->req(GET => '/v1/inventory/NOPE/store-1/events?after_version=3'),
           404, 'not-found', '... also with after_version');
problem_ok($n->req(GET => '/v1/inventory/H%201/store-1/events'), 400,
           'invalid-request', 'history with a bad sku is 400', field => 'sku');

# 105 events: the default limit is 100
my $B = '/v1/inventory/H-BIG/x';
my $bad = 0;
for (1 .. 105) {
    $bad++ unless $n->req(POST => "$B/adjustments", json => { delta => 1 })
                    ->{status} =~ /^20[01]\z/;
}
is($bad, 0, 'setup: 105 adjustments');
page_ok($n->req(GET => "$B/events"), [1 .. 100], 100,
        'no limit: the first 100 events (default), next 100');
page_ok($n->req(GET => "$B/events?after_version=100"), [101 .. 105], undef,
        '... then the last 5');
page_ok($n->req(GET => "$B/events?limit=1000"), [1 .. 105], undef,
        'limit 1000: all 105');

# --- as_of -----------------------------------------------------------------------------
my @at = map { ts_ms($_->{at}) } @$ev;
ok(!grep({ !defined } @at), 'event times parse');
is($at[4], $at[5], 'v5 StockReserved and v6 LowStockDetected share a millisecond');
is($at[10], $at[11], 'v11 and v12 (LowStockDetected) share a millisecond');

# the item as of $ms, from the replay of the history
sub expect_at {
    my ($ms) = @_;
    my @upto = grep { $at[$_ - 1] <= $ms } 1 .. $V;
    return undef unless @upto;
    my ($s) = replay_events([ @$ev[0 .. $upto[-1] - 1] ], $SKU, $LOC);
    return { on_hand => $s->{on_hand}, reserved => $s->{reserved},
             available => $s->{available}, min_level => $s->{min_level},
             low_stock => $s->{low_stock}, version => $s->{version},
             updated_at => $s->{updated_at}, sku => $SKU, location => $LOC };
}

sub as_of_ok {
    my ($ts, $ms, $name) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    my $x = expect_at($ms);
    my $r = as_of($ts);
    return problem_ok($r, 404, 'not-found', "$name: 404") unless $x;
    return item_ok($r, 200, $x, "$name: version $x->{version}");
}

my %did;
for my $k (1 .. $V) {
    my $ms = $at[$k - 1];
    next if $did{$ms}++;
    as_of_ok(rfc3339($ms), $ms, "as_of exactly at v$k ($ev->[$k-1]{type})");
    as_of_ok(rfc3339($ms - 1), $ms - 1, "as_of 1 ms before v$k");
    if ($k < $V && $at[$k] - $ms > 2) {
        my $mid = $ms + int(($at[$k] - $ms) / 2);
        as_of_ok(rfc3339($mid), $mid, "as_of between v$k and v" . ($k + 1));
    }
}
item_ok(as_of(rfc3339($at[4])), 200, { version => 6, low_stock => 1,
                                       reserved => 12 },
        'as_of at a millisecond shared by two events includes both');
problem_ok(as_of(rfc3339($at[0] - 1)), 404, 'not-found',
           'as_of 1 ms before the first event: 404');
problem_ok(as_of('1970-01-01T00:00:00.000Z'), 404, 'not-found',
           'as_of 1970-01-01: 404');
$r = as_of(rfc3339($at[-1]));
item_ok($r, 200, {}, 'as_of the last event');
is_deeply($r->{json}, $cur->{json}, '... is the current item');
$r = as_of(rfc3339(int(time * 1000) + 86400_000));
is_deeply($r->{json}, $cur->{json}, 'as_of tomorrow is the current item');
$r = as_of('9999-12-31T23:59:59.999Z');
is_deeply($r->{json}, $cur->{json}, 'as_of 9999-12-31 is the current item');
$r = as_of(rfc3339($at[2]), { headers => { 'If-None-Match' => '"3"' } });
is($r->{status}, 304, 'as_of with If-None-Match of that version: 304');
is($r->{headers}{etag}, '"3"', '... with ETag "3"');
$r = $n->req(HEAD => "$P?as_of=" . qenc(rfc3339($at[2])));
is($r->{status} . ($r->{headers}{etag} // ''), '200"3"', 'HEAD with as_of: 200, ETag "3"');

# precision: digits past the millisecond cut, none round up
my $k7 = $at[6];
as_of_ok(rfc3339($k7, undef, sprintf('.%03d999', $k7 % 1000)), $k7,
         'as_of v7 + 0.999 ms (6 digits)');
as_of_ok(rfc3339($k7 - 1, undef, sprintf('.%03d999999', ($k7 - 1) % 1000)),
         $k7 - 1, 'as_of 1 ns before v7 (9 digits)');
my $sec = POSIX::floor($at[7] / 1000) * 1000;
as_of_ok(rfc3339($sec, undef, ''), $sec, 'as_of without a fraction (the whole second)');
as_of_ok(rfc3339($at[7], undef, sprintf('.%d', int(($at[7] % 1000) / 100))),
         $sec + int(($at[7] % 1000) / 100) * 100, 'as_of with one fraction digit');

# timezone offsets: the same instants
for my $off (120, 330, -480, -5, 0, 14 * 60, -12 * 60) {
    for my $k (3, 7) {
        my $ms = $at[$k - 1];
        as_of_ok(rfc3339($ms, $off), $ms, "as_of v$k written with offset "
                                          . rfc3339(0, $off) =~ s/.*\.000//r);
        as_of_ok(rfc3339($ms - 1, $off), $ms - 1,
                 "as_of 1 ms before v$k with that offset");
    }
}
# a '+' offset must be percent-encoded in a query; %2B is the usual form
$r = $n->req(GET => "$P?as_of=" . rfc3339($at[2], 60) =~ s/\+/%2B/r);
item_ok($r, 200, { version => 3 }, 'as_of with %2B01:00');
$r = $n->req(GET => "$P?as_of=" . rfc3339($at[2], 60) =~ s/\+/%2b/r
                                                      =~ s/:/%3A/gr);
item_ok($r, 200, { version => 3 }, 'as_of with %2b and %3A escapes');
$r = $n->req(GET => "$P?as_of=" . lc rfc3339($at[2]));
item_ok($r, 200, { version => 3 }, "as_of with a lower-case 't' and 'z' (RFC 3339 allows)");

# another item created later: 404 before it existed, though others did
my $L = $n->req(PUT => '/v1/inventory/H-LATE/store-1', json => { on_hand => 1 });
my $late = ts_ms($L->{json}{updated_at} // '');
problem_ok($n->req(GET => '/v1/inventory/H-LATE/store-1?as_of='
                          . rfc3339($late - 1)), 404, 'not-found',
           'as_of before a later item existed: 404');
item_ok($n->req(GET => '/v1/inventory/H-LATE/store-1?as_of=' . rfc3339($late)),
        200, { version => 1, on_hand => 1 }, '... and the item as of its creation');
problem_ok($n->req(GET => '/v1/inventory/NOPE/store-1?as_of=' . rfc3339($late)),
           404, 'not-found', 'as_of on an unknown item: 404');

# malformed
for my $b ('bad', '2026-11-22', '2026-11-22T10:00:00', '2026-11-22T10:00:00.123',
           '2026-13-01T00:00:00Z', '2026-00-10T00:00:00Z', '2026-02-30T10:00:00Z',
           '2025-02-29T10:00:00Z', '2026-11-22T24:00:00Z', '2026-11-22T10:60:00Z',
           '2026-11-22 10:00:00Z', '2026-11-22T10:00:00.Z', '2026-11-22T10:00:00,5Z',
           '2026-11-22T10:00:00.123+0100', '2026-11-22T10:00:00.123+01',
           '2026-11-22T10:00:00.123+01:00:00', '2026-11-22T10:00:00.123ZZ',
           '2026-11-22T10:00:00.123Z ', ' 2026-11-22T10:00:00.123Z',
           '26-11-22T10:00:00Z', '+2026-11-22T10:00:00Z', '2026-11-22T1:00:00Z',
           '2026-11-22T10:00:00.123+24:00', '2026-11-22T10:00:00.123-10:60',
           '2026-11-22T10:00:00.123 01:00', '')
{
    problem_ok(as_of($b), 400, 'invalid-request', "as_of '$b' is 400",
               field => 'as_of');
}
# well formed, before the item (and the epoch's first day) existed: not a 400
problem_ok(as_of('1969-12-31T23:59:59.999Z'), 404, 'not-found',
           'as_of 1969-12-31T23:59:59.999Z (well formed, before the item): 404');
problem_ok($n->req(GET => "$P?as_of=2026-11-22T10:00:00%00Z"), 400,
           'invalid-request', 'as_of with a NUL is 400', field => 'as_of');

# --- across a restart -------------------------------------------------------------------
my %snap = map { ($_ => as_of(rfc3339($at[$_ - 1]))->{body}) } 1, 4, 6, 9;
$n->restart;
page_ok(hist('limit=1000'), [1 .. $V], undef, 'after a restart: the whole history');
is_deeply(hist('limit=1000')->{json}{events}, $ev, '... identical');
for my $k (sort { $a <=> $b } keys %snap) {
    is(as_of(rfc3339($at[$k - 1]))->{body}, $snap{$k},
       "as_of v$k identical after the restart");
}

$n->stop;
done_testing;
