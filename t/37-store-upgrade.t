# A store written by the release before the quantity states, opened by
# this one.  t/fixtures/v1-store/data.mdb was written by 570ca30 (items of
# 40 bytes, events without the trailer, schema 1) and expected.json holds
# what that release answered for it; t/fixtures/make-v1-store.pl made both
# (its history is dated 2100-01-01, so that the reservation left active and
# the idempotency keys outlive the fixture: see there).  On a copy of it:
#   - every item reads as the old release answered, the new quantities 0
#     and seq the seq of the item's latest event; the SKUs' sums and the
#     low-stock list likewise;
#   - the feed and every item's history hold the old events, their old
#     data unchanged (StockAdjusted may add "state":"available",
#     StockCounted "safety_stock":0 and "backorder_limit":0), paged too;
#     ?as_of= at every event time (and before the first) answers as the
#     old release did;
#   - reservations read the same; the active ones commit and release (one
#     has a reference of 256 bytes with a space and UTF-8, which the old
#     release took); ended ones are refused; the old keys replay their
#     first answers, and another request under one is 422;
#   - new writes on old items: an adjustment of a state, a move, PUTs with
#     safety_stock (one turning the item low), a keyed write: each item's
#     version and seq advance as they must, event times never go back;
#     ?as_of= still gives the old answers at the old times;
#   - the same after a restart; inventory-admin verify and dump after the
#     stop.
use strict;
use warnings;
use Test::More;
use File::Temp qw(tempdir);
use File::Copy qw(copy);
use InvTest qw(slurp which decode_json encode_json item_ok problem_ok
               feed_pages event_pages last_seq admin_run verify_ok replayed
               idem_key ts_ms);

my $FIX = "$InvTest::ROOT/t/fixtures/v1-store";
my $json = slurp("$FIX/expected.json");
plan skip_all => "no fixture in $FIX" unless defined $json && -f "$FIX/data.mdb";
my $E = decode_json($json);

my @STATES0 = qw(damaged quality_control safety_stock incoming backorder_limit);
my @ITEMS = sort keys %{ $E->{items} };

# the old release's events by item, and each item's latest seq
my (%HIST, %LAST_SEQ);
for my $e (@{ $E->{feed} }) {
    my $k = "$e->{sku}/$e->{location}";
    push @{ $HIST{$k} }, $e;
    $LAST_SEQ{$k} = $e->{seq};
}

# the store, copied: the fixture itself is never opened
my $tmp = tempdir('inventory-upgrade-XXXXXX', TMPDIR => 1, CLEANUP => 1);
chmod 0755, $tmp or die "chmod $tmp: $!";
my $D = "$tmp/data";
mkdir $D or die "mkdir $D: $!";
copy("$FIX/data.mdb", "$D/data.mdb") or die "copy data.mdb: $!";

# --- the fixture is what it claims to be -----------------------------------------
is(scalar @{ $E->{feed} }, $E->{last_seq},
   "expected.json: a feed of $E->{last_seq} events");
is_deeply([ sort keys %HIST ], \@ITEMS,
          'expected.json: every item has events, every event an item');
ok(!grep({ exists $E->{items}{$_}{seq} } @ITEMS),
   'expected.json: the old release\'s items have no seq');
SKIP: {
    skip 'mdb_dump (lmdb-utils) is not installed', 3 unless which('mdb_dump');
    my $pristine = "$tmp/pristine";
    mkdir $pristine or die $!;
    copy("$FIX/data.mdb", "$pristine/data.mdb") or die $!;
    my %len;
    for my $db (qw(items item_events)) {
        my @l = grep { /^ / } split /\n/, `mdb_dump -s $db $pristine 2>&1`;
        # key, value, key, value...: the lengths of the values in bytes
        $len{$db} = { map { (length($l[$_]) - 1) / 2 => 1 }
                      grep { $_ % 2 } 0 .. $#l };
    }
    is_deeply($len{items}, { 40 => 1 },
              'the fixture\'s items are records of 40 bytes');
    is_deeply($len{item_events}, { 48 => 1 },
              'the fixture\'s index records are 48 bytes (seq, old item)');
    like(`mdb_dump -p -s meta $pristine 2>&1`,
         qr/^ schema_version\n \\00\\00\\00\\00\\00\\00\\00\\01\n/m,
         'the fixture\'s schema_version is 1');
}

my $n = InvTest->start(workers => 2, datadir => $D);

# --- items ----------------------------------------------------------------------
# upgraded($old, $seq): the item the old release answered, as this one
# reads it
sub upgraded {
    my ($old, $seq) = @_;
    return { %$old, (map { $_ => 0 } @STATES0), seq => $seq };
}

my %CUR;    # item => what this release answers now
sub items_ok {
    my ($label) = @_;
    for my $k (@ITEMS) {
        my $r = $n->get("/v1/inventory/$k");
        item_ok($r, 200, upgraded($E->{items}{$k}, $LAST_SEQ{$k}),
                "$k as the old release answered, the states 0, seq "
                . "$LAST_SEQ{$k} ($label)");
        $CUR{$k} = $r->{json};
    }
}
items_ok('first read');

# the SKUs: their locations are the items above, the sums theirs
my %SKU;
push @{ $SKU{ (split m{/}, $_)[0] } }, $_ for @ITEMS;
for my $sku (sort keys %SKU) {
    my $r = $n->get("/v1/inventory/$sku");
    my @locs = map { $CUR{$_} } sort @{ $SKU{$sku} };
    my %sum;
    for my $f (qw(on_hand reserved available)) {
        $sum{$f} = 0;
        $sum{$f} += $_->{$f} for @locs;
    }
    is($r->{status}, 200, "GET /v1/inventory/$sku: 200");
    is_deeply([ sort { $a->{location} cmp $b->{location} }
                @{ $r->{json}{locations} // [] } ], \@locs,
              "$sku: its locations are the items");
    is_deeply({ map { $_ => $r->{json}{$_} } qw(sku on_hand reserved available) },
              { sku => $sku, %sum }, "$sku: the sums of its locations");
}

# the low-stock list: the same items, upgraded
{
    my $r = $n->get('/v1/low-stock?limit=1000');
    is($r->{status}, 200, 'GET /v1/low-stock: 200');
    is_deeply($r->{json},
              { items => [ map { upgraded($_, $LAST_SEQ{"$_->{sku}/$_->{location}"}) }
                           @{ $E->{low_stock}{items} } ],
                next_cursor => undef },
              'the low-stock list is the old one, its items upgraded')
        or diag $r->{body};
}

# --- the feed and histories -------------------------------------------------------
# event_problems($new, $old): how an event differs from the old release's
# beyond what the new release may add
my %MAY_ADD = (
    StockAdjusted => { state => 'available' },
    StockCounted  => { safety_stock => 0, backorder_limit => 0 },
);
sub event_problems {
    my ($new, $old) = @_;
    my @p;
    return ('not an object with data: ' . encode_json($new))
        unless ref $new eq 'HASH' && ref $new->{data} eq 'HASH';
    my %n = %$new;
    my %o = %$old;
    my ($nd, $od) = (delete $n{data}, delete $o{data});
    push @p, 'members ' . encode_json(\%n) . ', expected ' . encode_json(\%o)
        unless encode_json(\%n) eq encode_json(\%o);
    for my $k (sort keys %$od) {
        push @p, "data.$k is " . encode_json([ $nd->{$k} ]) . ', expected '
                 . encode_json([ $od->{$k} ])
            unless exists $nd->{$k}
                   && encode_json([ $nd->{$k} ]) eq encode_json([ $od->{$k} ]);
    }
    my $may = $MAY_ADD{ $old->{type} } // {};
    for my $k (sort grep { !exists $od->{$_} } keys %$nd) {
        push @p, "data.$k is new: " . encode_json([ $nd->{$k} ])
            unless exists $may->{$k}
                   && encode_json([ $nd->{$k} ]) eq encode_json([ $may->{$k} ]);
    }
    return map { "seq $old->{seq}: $_" } @p;
}

sub events_ok {
    my ($got, $old, $name) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    my @p;
    push @p, scalar(@$got) . ' events, expected ' . scalar(@$old)
        if @$got != @$old;
    for my $i (0 .. $#$old) {
        push @p, event_problems($got->[$i], $old->[$i]);
        last if @p > 10;
    }
    ok(!@p, $name) or diag join "\n", @p;
}

{
    my $r = $n->get('/v1/events?after=0&limit=1000');
    is($r->{status}, 200, 'GET /v1/events: 200');
    is($r->{json}{last_seq}, $E->{last_seq}, "last_seq $E->{last_seq}");
    events_ok($r->{json}{events} // [], $E->{feed},
              'the feed holds the old events, their data unchanged');
    my ($paged, $p) = feed_pages($n, 0, 7);
    is_deeply($p, [], 'the feed in pages of 7: no problem') or diag "@$p";
    is_deeply($paged, $r->{json}{events}, 'the feed in pages of 7: the same');
    my ($rest) = feed_pages($n, 31, 1000);
    is_deeply($rest, [ @{ $r->{json}{events} }[31 .. $#{ $r->{json}{events} }] ],
              'the feed after seq 31: its tail');
}

for my $k (@ITEMS) {
    my $r = $n->get("/v1/inventory/$k/events?limit=1000");
    is($r->{status}, 200, "$k: history 200");
    events_ok($r->{json}{events} // [], $E->{history}{$k},
              "$k: the history holds the old events, their data unchanged");
    is_deeply($E->{history}{$k}, $HIST{$k},
              "$k: the old history is the old feed's events of the item");
    my ($paged, $p) = event_pages($n, split(m{/}, $k), 2);
    is_deeply($p, [], "$k: the history in pages of 2: no problem") or diag "@$p";
    is_deeply($paged, $r->{json}{events}, "$k: the history in pages of 2: the same");
}

# ?as_of=: at every event time of the item, and 1 ms before the first.
# %skip_from: item => ms from which this release's own events stand
sub as_of_ok {
    my ($label, %skip_from) = @_;
    for my $k (@ITEMS) {
        my @p;
        my $n_asked = 0;
        for my $a (@{ $E->{as_of}{$k} }) {
            my ($t, $status, $old) = @$a;
            next if defined $skip_from{$k} && ts_ms($t) >= $skip_from{$k};
            $n_asked++;
            my $r = $n->get("/v1/inventory/$k?as_of=$t");
            if ($r->{status} != $status) {
                push @p, "$t: status $r->{status}, expected $status";
                next;
            }
            next unless $status == 200;
            my ($ev) = grep { $_->{version} == $old->{version} } @{ $HIST{$k} };
            my $want = upgraded($old, $ev->{seq});
            my @d = InvTest::item_problems($r->{json}, $want);
            push @p, map { "$t: $_" } @d;
        }
        ok(!@p && $n_asked > 1, "$k: ?as_of= at its $n_asked times answers "
                                . "as the old release did ($label)")
            or diag join "\n", @p;
    }
}
as_of_ok('before any write');

# --- reservations and keys ----------------------------------------------------------
for my $name (sort keys %{ $E->{reservations} }) {
    my $x = $E->{reservations}{$name};
    my $r = $n->get("/v1/reservations/$x->{id}");
    is($r->{status}, 200, "reservation $name: 200");
    is_deeply($r->{json}, $x->{answer}, "reservation $name reads the same")
        or diag $r->{body};
}

for my $key (sort keys %{ $E->{keys} }) {
    my $x = $E->{keys}{$key};
    my $r = $n->req($x->{method} => $x->{path}, json => $x->{body},
                    headers => { idem_key($key) });
    ok($r->{status} == $x->{status} && replayed($r),
       "key $key: replayed, status $x->{status}")
        or diag InvTest::show($r);
    is_deeply($r->{json}, $x->{answer}, "key $key: the first answer");
    my %other = (%{ $x->{body} }, reason => 'another request');
    problem_ok($n->req($x->{method} => $x->{path}, json => \%other,
                       headers => { idem_key($key) }),
               422, 'idempotency-key-reused',
               "key $key: another request under it is 422");
}
is(last_seq($n), $E->{last_seq}, 'reads and replays wrote nothing');

# --- writes on old items -------------------------------------------------------------
my $LAST = $E->{last_seq};
my $LAST_AT = ts_ms($E->{feed}[-1]{at});
my %FIRST_NEW_AT;    # item => ms of this release's first event on it

# step_ok($name, \%items): the events the write appended since the last
# step are, item by item, [type, data] as given, and nothing else; each
# item reads as before with the changes, its version advanced by its
# events and its seq its last event's; the last of them is the store's
# last seq; times never go back.
sub step_ok {
    my ($name, $items) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    my ($ev, $p) = feed_pages($n, $LAST, 1000);
    is_deeply($p, [], "$name: the feed pages well") or diag "@$p";
    my $want = 0;
    $want += @{ $_->[1] } for values %$items;
    is(scalar @$ev, $want, "$name: $want new events");
    my @p;
    for my $e (@$ev) {
        my $t = ts_ms($e->{at});
        push @p, "seq $e->{seq} at $e->{at}: before the event before it"
            unless defined $t && $t >= $LAST_AT;
        $LAST_AT = $t if defined $t && $t > $LAST_AT;
    }
    ok(!@p, "$name: event times never go back") or diag join "\n", @p;
    for my $k (sort keys %$items) {
        my ($changes, $events) = @{ $items->{$k} };
        my ($sku, $loc) = split m{/}, $k;
        my @mine = grep { $_->{sku} eq $sku && $_->{location} eq $loc } @$ev;
        my $v = $CUR{$k}{version};
        is_deeply([ map { [ $_->{type}, $_->{version}, $_->{data} ] } @mine ],
                  [ map { [ $_->[0], ++$v, $_->[1] ] } @$events ],
                  "$name: $k: its events") or diag encode_json(\@mine);
        next unless @mine;
        $FIRST_NEW_AT{$k} //= ts_ms($mine[0]{at});
        my %exp = (%{ $CUR{$k} }, %$changes, version => $v,
                   seq => $mine[-1]{seq}, updated_at => $mine[-1]{at});
        my $r = $n->get("/v1/inventory/$k");
        item_ok($r, 200, \%exp, "$name: $k reads with version $v, seq "
                                . "$mine[-1]{seq}");
        $CUR{$k} = $r->{json};
    }
    is(last_seq($n), $LAST + $want, "$name: the store's last seq is "
                                    . ($LAST + $want));
    is(@$ev ? $ev->[-1]{seq} : $LAST, $LAST + $want,
       "$name: the last event's seq is the last seq");
    $LAST += $want;
}

# the active reservations: one committed, one released
my %RES = map { $_ => $E->{reservations}{$_}{id} } keys %{ $E->{reservations} };
my $ODD = $E->{reservations}{cart_active}{answer}{reference};
is(length(do { my $s = $ODD; utf8::encode($s); $s }), 256,
   'cart_active\'s reference is 256 bytes');
{
    my $r = $n->commit($RES{single_active});
    is($r->{status}, 200, 'commit single_active: 200') or diag $r->{body};
    is($r->{json}{state}, 'committed', 'single_active: committed');
    is_deeply({ %{ $r->{json} }, state => 'active', ended_at => undef },
              { %{ $E->{reservations}{single_active}{answer} },
                ended_at => undef },
              'single_active: otherwise the same');
    step_ok('commit single_active', {
        'B-2/north' => [ { on_hand => 83, reserved => 5 },
                         [ [ ReservationCommitted => {
                             quantity => 7, reservation_id => $RES{single_active},
                             reference => 'order-2' } ] ] ],
    });

    $r = $n->release($RES{cart_active});
    is($r->{status}, 200, 'release cart_active: 200') or diag $r->{body};
    is($r->{json}{state}, 'released', 'cart_active: released');
    is($r->{json}{reference}, $ODD, 'cart_active: its reference kept');
    my $rel = sub { [ [ ReservationReleased => {
        quantity => $_[0], reservation_id => $RES{cart_active},
        reference => $ODD } ] ] };
    step_ok('release cart_active', {
        'A-1/north' => [ { reserved => 0, available => 6 }, $rel->(2) ],
        'B-2/north' => [ { reserved => 0, available => 83 }, $rel->(5) ],
        'D-4/west'  => [ { reserved => 0, available => 15 }, $rel->(4) ],
    });
    is($n->get("/v1/reservations/$RES{cart_active}")->{json}{reference}, $ODD,
       'cart_active reads with its reference');
}
for my $name (qw(single_committed cart_committed single_released
                 single_expired cart_expired)) {
    my $state = $E->{reservations}{$name}{answer}{state};
    problem_ok($n->commit($RES{$name}), 409, 'reservation-not-active',
               "commit of $name ($state) is refused");
    problem_ok($n->release($RES{$name}), 409, 'reservation-not-active',
               "release of $name ($state) is refused");
}
step_ok('refused commits and releases', {});

# an adjustment of a state
{
    my $r = $n->adjust('A-1', 'south', { delta => 2, state => 'damaged',
                                         reason => 'found damaged' });
    is($r->{status}, 200, 'adjust A-1/south damaged +2: 200') or diag $r->{body};
    step_ok('adjust A-1/south damaged +2', {
        'A-1/south' => [ { on_hand => 8, damaged => 2 },
                         [ [ StockAdjusted => { delta => 2, state => 'damaged',
                                                reason => 'found damaged' } ] ] ],
    });
    is_deeply($r->{json}, $CUR{'A-1/south'}, 'the answer is the item');
}

# a move
{
    my $r = $n->req(POST => '/v1/inventory/B-2/south/moves',
                    json => { from => 'available', to => 'damaged',
                              quantity => 1 });
    is($r->{status}, 200, 'move B-2/south available to damaged: 200')
        or diag $r->{body};
    step_ok('move B-2/south', {
        'B-2/south' => [ { damaged => 1, available => 29 },
                         [ [ StockMoved => { from => 'available',
                                             to => 'damaged',
                                             quantity => 1 } ] ] ],
    });
    is_deeply($r->{json}, $CUR{'B-2/south'}, 'the answer is the item');
}

# PUTs with safety_stock: one plain, one that makes the item low
{
    my $r = $n->put_item('E-5', 'north', { on_hand => 10, safety_stock => 3 });
    is($r->{status}, 200, 'PUT E-5/north with safety_stock: 200')
        or diag $r->{body};
    step_ok('PUT E-5/north', {
        'E-5/north' => [ { on_hand => 10, safety_stock => 3, available => 7 },
                         [ [ StockCounted => { on_hand => 10, min_level => 0,
                                               safety_stock => 3,
                                               backorder_limit => 0 } ] ] ],
    });
    is_deeply($r->{json}, $CUR{'E-5/north'}, 'the answer is the item');

    $r = $n->put_item('C-3', 'east', { on_hand => 3, safety_stock => 2 });
    is($r->{status}, 200, 'PUT C-3/east with safety_stock: 200')
        or diag $r->{body};
    step_ok('PUT C-3/east (low)', {
        'C-3/east' => [ { safety_stock => 2, available => 1,
                          low_stock => JSON::PP::true },
                        [ [ StockCounted => { on_hand => 3, min_level => 2,
                                              safety_stock => 2,
                                              backorder_limit => 0 } ],
                          [ LowStockDetected => { available => 1,
                                                  min_level => 2 } ] ] ],
    });
    is_deeply($r->{json}, $CUR{'C-3/east'}, 'the answer is the item');
}

# a keyed write beside the old keys
{
    my %req = (json => { delta => 1 }, headers => { idem_key('v2-adjust') });
    my $r = $n->req(POST => '/v1/inventory/D-4/west/adjustments', %req);
    is($r->{status}, 200, 'keyed adjustment of D-4/west: 200') or diag $r->{body};
    step_ok('keyed adjustment of D-4/west', {
        'D-4/west' => [ { on_hand => 16, available => 16 },
                        [ [ StockAdjusted => { delta => 1,
                                               state => 'available' } ] ] ],
    });
    my $again = $n->req(POST => '/v1/inventory/D-4/west/adjustments', %req);
    ok(replayed($again) && $again->{body} eq $r->{body},
       'the new key replays its answer');
    my $x = $E->{keys}{'v1-adjust'};
    $again = $n->req($x->{method} => $x->{path}, json => $x->{body},
                     headers => { idem_key('v1-adjust') });
    ok(replayed($again), 'an old key still replays');
    is_deeply($again->{json}, $x->{answer}, 'its first answer');
    step_ok('replays', {});
}

# the old items not written to are as they were; ?as_of= still answers
# the old history at the old times
for my $k (@ITEMS) {
    next if $FIRST_NEW_AT{$k};
    item_ok($n->get("/v1/inventory/$k"), 200,
            upgraded($E->{items}{$k}, $LAST_SEQ{$k}),
            "$k, not written to, reads as the old release answered");
}
as_of_ok('after the writes', %FIRST_NEW_AT);
for my $k (sort keys %FIRST_NEW_AT) {
    item_ok($n->get("/v1/inventory/$k?as_of=" . $CUR{$k}{updated_at}), 200,
            $CUR{$k}, "$k: ?as_of= its last event's time is the item now");
}

# --- a restart ---------------------------------------------------------------------
my ($feed) = feed_pages($n, 0, 1000);
$n->restart;
for my $k (@ITEMS) {
    my $r = $n->get("/v1/inventory/$k");
    is_deeply($r->{json}, $CUR{$k}, "$k reads the same after a restart");
}
my ($feed2) = feed_pages($n, 0, 1000);
is_deeply($feed2, $feed, 'the feed is the same after a restart');
{
    my $r = $n->adjust('E-5', 'east', { delta => 1 });
    is($r->{status}, 200, 'a write after the restart: 200');
    step_ok('adjust E-5/east after the restart', {
        'E-5/east' => [ { on_hand => 10, available => 10 },
                        [ [ StockAdjusted => { delta => 1,
                                               state => 'available' } ] ] ],
    });
    ($feed) = feed_pages($n, 0, 1000);
}
$n->stop;

# --- the admin tool ------------------------------------------------------------------
verify_ok($D, $LAST, 'the upgraded store, after the stop');
{
    my ($rc, $out, $err) = admin_run('dump', $D);
    is($rc, 0, 'inventory-admin dump: exit 0') or diag $err;
    my @lines = map { eval { decode_json($_) } // $_ } split /\n/, $out;
    is(scalar @lines, $LAST, "dump: $LAST lines");
    is_deeply(\@lines, $feed, 'dump: each line is the feed\'s event');
    ($rc, $out, $err) = admin_run('dump', '--all', $D);
    ok($rc == 0 && $err eq '' && length $out, 'inventory-admin dump --all: exit 0')
        or diag $err;
    my %len;
    for (split /\n/, $out) {
        my ($db, undef, $v) = split /\t/;
        $len{ length($v) / 2 } = 1 if $db eq 'items';
    }
    ok(%len && !grep({ $_ != 40 && $_ != 88 } keys %len),
       'dump --all: the items are records of 40 or 88 bytes')
        or diag join ' ', sort keys %len;
}

done_testing;
